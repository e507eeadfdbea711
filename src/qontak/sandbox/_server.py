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
- **body timeout**: once its head is in, a request's body must arrive within
  ``body_timeout`` seconds plus one second per ``min_body_rate`` bytes received (so a big
  upload at a fair speed is never cut, and a body trickled a byte at a time is). The time
  counted is the time the app spends waiting for the client, in :class:`BodyTimeout`, the
  ASGI layer :func:`uvicorn_config` wraps the app in; past it the client gets 408 in the
  sandbox's JSON error envelope and the connection is closed, freeing its slot (uvicorn's
  ``limit_concurrency`` counts it until then).
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
import json
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import h11
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from ._admin import host_is_local

__all__ = ["BodyTimeout", "ServerLimits", "binds_loopback_only", "uvicorn_config"]

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
    body_timeout: float = 10.0
    """Seconds a request body may take on top of what its size allows (see
    ``min_body_rate``)."""
    min_body_rate: float = 16 * 1024
    """Bytes per second a body must average once ``body_timeout`` is used up."""
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
        for name in ("header_timeout", "body_timeout", "min_body_rate", "drain_timeout"):
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


class _BodyTimedOut(Exception):
    """Raised into the app when its request body did not arrive in time."""


def _has_body(scope: Scope) -> bool:
    """Whether the request head announces a body (as h11 reads it: chunked, or a
    ``Content-Length`` other than 0)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class BodyTimeout:
    """ASGI layer: a request body that does not arrive in time ends in 408 and a closed
    connection (see the module docs for the allowance).

    Only time spent waiting for the client counts (the app may take its time between reads),
    and only until the body is complete: a later wait for the client to hang up (a held-back
    answer, :mod:`._faults`) is not limited. When time runs out, the app's wait raises; what
    the app answers after that is discarded, and the client gets the 408 instead (or, if an
    answer had already started, the connection is cut).
    """

    def __init__(self, app: ASGIApp, timeout: float, min_rate: float) -> None:
        self.app = app
        self.timeout = timeout
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a deadline on reading its request body."""
        if scope["type"] != "http" or not _has_body(scope):
            # Nothing to wait for (and a timer per receive costs ~20 µs: GETs skip it).
            await self.app(scope, receive, send)
            return
        received = 0
        waited = 0.0
        complete = False
        timed_out = False
        started = False

        async def timed_receive() -> Message:
            nonlocal received, waited, complete, timed_out
            if timed_out:
                return {"type": "http.disconnect"}  # an app that asks again must not wait
            if complete:
                return await receive()
            allowed = self.timeout + received / self.min_rate - waited
            began = time.monotonic()
            try:
                with anyio.fail_after(max(allowed, 0.0)):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise _BodyTimedOut from None
            finally:
                waited += time.monotonic() - began
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            else:
                complete = True  # the client is gone: nothing more to wait for
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return  # the app's answer to an exception it did not cause
            started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except _BodyTimedOut:
            pass
        except Exception:
            if not timed_out:
                raise
        if not timed_out:
            return
        _log.info(
            "request body not received in time (%d bytes in %.1f s): %s %s",
            received,
            waited,
            scope.get("method", ""),
            scope.get("path", ""),
        )
        if started:
            return  # mid-answer: uvicorn closes a connection whose answer was left unfinished
        body = json.dumps(
            {"status": "error", "error": {"code": 408, "messages": ["Request Timeout"]}}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the rest of the body is not worth waiting for
        ]
        await send({"type": "http.response.start", "status": 408, "headers": headers})
        await send({"type": "http.response.body", "body": body})


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
    """A ``uvicorn.Config`` serving ``app`` (inside :class:`BodyTimeout`) with ``limits``
    (defaults when None); ``options`` (``host``, ``port``…) go to uvicorn as they are."""
    limits = limits or ServerLimits()
    protocol = type("SandboxH11Protocol", (_GuardedH11,), {"limits": limits})
    return uvicorn.Config(
        BodyTimeout(app, limits.body_timeout, limits.min_body_rate),
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
