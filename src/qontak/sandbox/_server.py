"""How the sandbox is served by uvicorn: limits that shed slow or hostile clients.

uvicorn on its own has no header timeout and no cap on open connections: a client that
opens a connection and sends half a request head (slowloris) holds a file descriptor
forever, and about a thousand of them exhaust the process's descriptors, after which normal
requests time out. :class:`ServerLimits` and the protocol built by :func:`uvicorn_config`
add what is missing, on uvicorn's own h11 protocol:

- **header timeout**: a connection waiting for a request head (new, or idle between
  requests with some bytes of the next head received) is closed after
  ``header_timeout`` seconds. uvicorn's keep-alive timer (``keep_alive_timeout``) still
  closes connections that stay silent after a response.
- **drain timeout**: after an early answer (a 413 sent before the body was read), the rest
  of the body is read and discarded for at most ``drain_timeout`` seconds.
- **connection cap**: when more than ``max_connections`` are open, the oldest connection
  still waiting for its request head is closed to make room; when every open connection is
  busy with a request, the new one is closed instead. Slow clients are shed, and a normal
  request still gets in.
- uvicorn's own limits: ``limit_concurrency`` (503 beyond it, a backstop), the keep-alive
  timeout, the largest request head h11 buffers (``max_header_bytes``) and the listen
  ``backlog``.

The default cap is half the process's soft descriptor limit (``RLIMIT_NOFILE``), between 32
and 1000, so the cap is reached long before descriptors run out.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._admin import host_is_local

__all__ = ["ServerLimits", "binds_loopback_only", "uvicorn_config"]

_log = logging.getLogger("uvicorn.error")


def _default_max_connections() -> int:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows has no RLIMIT_NOFILE
        return 500
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(32, min(1000, soft // 2))


@dataclass(frozen=True)
class ServerLimits:
    """Limits of the uvicorn server that serves a sandbox (see the module docs)."""

    max_connections: int = field(default_factory=_default_max_connections)
    """Open connections beyond which slow ones are closed to make room."""
    header_timeout: float = 10.0
    """Seconds a connection may take to send a complete request head."""
    drain_timeout: float = 30.0
    """Seconds spent discarding the rest of a body the answer did not need."""
    keep_alive_timeout: int = 5
    """Seconds an idle connection stays open after a response (uvicorn's own)."""
    max_header_bytes: int = 16 * 1024
    """Largest request head (request line and headers) buffered; beyond it, 400."""
    backlog: int = 256
    """Connections the kernel queues before the server accepts them."""

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        for name in ("header_timeout", "drain_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")

    @property
    def limit_concurrency(self) -> int:
        """uvicorn's ``limit_concurrency``: above the cap, so it only catches what the cap
        cannot (requests still running on connections that were closed)."""
        return self.max_connections + 16


class _GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a header timeout, a drain timeout and a connection cap."""

    limits: ServerLimits = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._opened_at = 0.0

    # -- waiting on the client ------------------------------------------------------------
    def _waiting(self) -> float | None:
        """How long the connection may wait in its current state, or None when it is not
        waiting on the client (a request is being handled, or the connection is closing)."""
        theirs, ours = self.conn.their_state, self.conn.our_state
        if theirs is h11.IDLE:
            return self.limits.header_timeout
        if ours is h11.DONE and theirs is h11.SEND_BODY:
            return self.limits.drain_timeout
        return None

    def _sync_timer(self) -> None:
        if self.transport is None or self.transport.is_closing():
            self._cancel_timer()
            return
        timeout = self._waiting()
        if timeout is None:
            self._cancel_timer()
        elif self._timer is None:
            self._timer = self.loop.call_later(timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._waiting() is not None and not self.transport.is_closing():
            _log.debug("closing a connection that sent no complete request in time")
            self.transport.close()

    # -- the connection cap ---------------------------------------------------------------
    def _make_room(self) -> None:
        if len(self.connections) <= self.limits.max_connections:
            return
        idle = [
            c
            for c in self.connections
            if isinstance(c, _GuardedH11) and c is not self and c._waiting() is not None
        ]
        victim: H11Protocol = min(idle, key=lambda c: c._opened_at) if idle else self
        _log.debug("too many open connections: closing one that is waiting on its client")
        self.connections.discard(victim)
        victim.transport.close()

    # -- protocol events ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Register the connection, make room under the cap, start the header timer."""
        super().connection_made(transport)
        self._opened_at = self.loop.time()
        self._make_room()
        self._sync_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the timer with the connection."""
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed h11, then (re)arm or cancel the timer for the state it is in now."""
        super().data_received(data)
        self._sync_timer()

    def on_response_complete(self) -> None:
        """After a response the connection waits on its client again."""
        super().on_response_complete()
        self._sync_timer()


def binds_loopback_only(host: str) -> bool:
    """Whether listening on ``host`` is reachable from this machine only.

    Loopback names and addresses are; ``0.0.0.0``, ``::`` and any other address are not. A
    name counts as loopback only if every address it resolves to is one.
    """
    if host_is_local(host):
        return True
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(host_is_local(str(info[4][0])) for info in infos)


def uvicorn_config(
    app: Any,
    limits: ServerLimits | None = None,
    *,
    log_level: str = "warning",
    **options: Any,
) -> uvicorn.Config:
    """A ``uvicorn.Config`` serving ``app`` with ``limits`` (defaults when None);
    ``options`` (``host``, ``port``…) go to uvicorn as they are."""
    limits = limits or ServerLimits()
    protocol = type("SandboxH11Protocol", (_GuardedH11,), {"limits": limits})
    return uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        loop="asyncio",
        http=protocol,
        limit_concurrency=limits.limit_concurrency,
        timeout_keep_alive=limits.keep_alive_timeout,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        backlog=limits.backlog,
        **options,
    )
