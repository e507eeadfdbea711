"""Fault injection: the outermost ASGI layer, so a fault looks like the network or gateway failed.

Only ``/qontak/chat/v1`` requests are affected, never ``/_sandbox`` admin routes or the
inbox. Outcomes (see :class:`~qontak.sandbox.FaultConfig`):

- ``error_before``  → 503 ``{"status":"error","error":{"code":503,"messages":
  ["Service Unavailable"]}}``; nothing done.
- ``drop_before``   → connection dropped; nothing done.
- ``rate_limit``    → 429 ``Too Many Requests`` with ``Retry-After: 1``; nothing done.
- ``error_after``   → the request is handled (a send is stored and delivered), then 500
  ``{"status":"error","error":{"code":500,"messages":["Internal Server Error"]}}``.
- ``lost_response`` → the request is handled (a send is stored), then the connection drops.
- ``accept_late``   → the request is handled (a send is stored), then the real answer is held
  back for ``accept_late_seconds`` (default 35: past the SDK's 30-second read timeout). A
  client that gives up first never learns that its message was accepted: the *late accept*
  that reconcile windows exist for. ``latency`` cannot produce it, since it delays the
  request before it is handled, so a client timing out there means "not stored".
- ``latency``       → ``latency_seconds`` of delay before any of the above.

Dropping a connection: the layer sends ``http.response.start`` and then raises
:class:`DroppedConnection`, a subclass of ``httpx.RemoteProtocolError``. uvicorn answers an
exception after the response started by closing the socket mid-response (the client sees an
incomplete message), and ``httpx.ASGITransport`` / Starlette's ``TestClient`` re-raise it in
process, so both paths look to a client like a dropped connection.

A late answer needs a clock the client's timeout runs on. Served by uvicorn (the sandbox's
lifespan marks each request's ``scope["state"]``), the layer really waits, stopping early if
the client hangs up. In process there is no socket and an ASGI transport never times out,
so after storing the layer raises :class:`LateAnswer`, an ``httpx.ReadTimeout``, which the
transport re-raises: the client sees the timeout it would have seen, without a real wait.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._config import FaultConfig

__all__ = [
    "API_PREFIX",
    "MAX_FAULT_EVENTS",
    "SERVED",
    "DroppedConnection",
    "FaultEvent",
    "FaultInjector",
    "FaultLayer",
    "LateAnswer",
    "quiet_dropped_connections",
]

#: Every Qontak API route lives under this prefix; faults, auth and limits apply only here.
API_PREFIX = "/qontak/chat/v1"
SEND_PATH = API_PREFIX + "/broadcasts/whatsapp/direct"

#: Fault events kept (the latest ones); older ones are only counted.
MAX_FAULT_EVENTS = 1000

# Appended in this order only: the position of an outcome decides which draws hit it, so a
# new outcome at the end leaves every existing seed's sequence as it was.
_OUTCOMES = (
    "error_before",
    "drop_before",
    "rate_limit",
    "error_after",
    "lost_response",
    "accept_late",
)

#: Key the lifespan puts in ``scope["state"]`` when a real server runs the app.
SERVED = "qontak_sandbox_served"


class DroppedConnection(httpx.RemoteProtocolError):
    """Raised by the sandbox to cut a connection in the middle of a response (a fault)."""

    def __init__(self, when: str) -> None:
        super().__init__(f"sandbox fault: connection dropped ({when})")


class LateAnswer(httpx.ReadTimeout):
    """Raised in process by an ``accept_late`` fault: the request was handled (a send is
    stored), and its answer comes after the client's timeout."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"sandbox fault: answer held back {delay:g}s after handling")


class _QuietDrops(logging.Filter):
    """Turn uvicorn's traceback for an injected drop into one line: it is not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (DroppedConnection, LateAnswer)):
            record.msg, record.args, record.exc_info = str(exc), None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_QUIET = _QuietDrops()


def quiet_dropped_connections() -> None:
    """Install the filter on uvicorn's error logger (idempotent)."""
    logger = logging.getLogger("uvicorn.error")
    if _QUIET not in logger.filters:
        logger.addFilter(_QUIET)


@dataclass(frozen=True)
class FaultEvent:
    """One request that was hit by a fault (kept so a run can be compared with a replay)."""

    seq: int
    method: str
    path: str
    fault: str | None
    latency: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "seq": self.seq,
            "method": self.method,
            "path": self.path,
            "fault": self.fault,
            "latency": self.latency,
        }


def is_send(method: str, path: str) -> bool:
    """Whether a request is a direct send (the only route that creates messages)."""
    return method == "POST" and path.rstrip("/") == SEND_PATH


class FaultInjector:
    """Seeded fault decisions, one per API request, in arrival order; thread-safe."""

    def __init__(self, config: FaultConfig, max_events: int = MAX_FAULT_EVENTS) -> None:
        self._lock = threading.Lock()
        self.config = config
        self._rng = random.Random(config.seed)
        self._seq = 0
        # A ring: a long run with faults on must not grow without end.
        self._events: deque[FaultEvent] = deque(maxlen=max_events)
        self.events_dropped = 0
        """Events pushed out of :attr:`events` by newer ones since the last (re)configure."""

    @property
    def events(self) -> list[FaultEvent]:
        """The latest requests a fault hit (at most ``max_events``), oldest first."""
        with self._lock:
            return list(self._events)

    def configure(self, config: FaultConfig) -> None:
        """Switch to new settings; the random sequence restarts from the new seed."""
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)
            self._seq = 0
            self._events.clear()
            self.events_dropped = 0

    def reset(self) -> None:
        """Restart the random sequence, as if the sandbox had just started."""
        self.configure(self.config)

    def applies(self, method: str, path: str) -> bool:
        """Whether this request is in scope for faults at all."""
        cfg = self.config
        if not cfg.enabled or not path.startswith(API_PREFIX):
            return False
        return cfg.scope == "all" or is_send(method, path)

    def draw(self, method: str, path: str) -> FaultEvent:
        """Decide the fate of one request (always two draws, so the sequence stays aligned)."""
        with self._lock:
            cfg = self.config
            outcome_roll = self._rng.random()
            latency_roll = self._rng.random()
            fault: str | None = None
            edge = 0.0
            for name in _OUTCOMES:
                edge += getattr(cfg, name)
                if outcome_roll < edge:
                    fault = name
                    break
            latency = cfg.latency_seconds if latency_roll < cfg.latency else 0.0
            self._seq += 1
            event = FaultEvent(self._seq, method, path, fault, latency)
            if fault is not None or latency:
                if len(self._events) == self._events.maxlen:
                    self.events_dropped += 1
                self._events.append(event)
            return event


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> list[Message]:
    payload = json.dumps(body).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return [
        {"type": "http.response.start", "status": status, "headers": raw_headers},
        {"type": "http.response.body", "body": payload},
    ]


def _error(status: int, text: str, headers: dict[str, str] | None = None) -> list[Message]:
    body = {"status": "error", "error": {"code": status, "messages": [text]}}
    return _json_response(status, body, headers)


async def _drain(receive: Receive) -> None:
    # Read the request body first: closing a socket with unread input makes the kernel send
    # a reset, which can destroy the response head before the client reads it.
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _answer_late(
    scope: Scope, receive: Receive, send: Send, answer: list[Message], delay: float
) -> None:
    """Send the captured ``answer`` after ``delay`` seconds, unless the client left first."""
    if not scope.get("state", {}).get(SERVED):
        raise LateAnswer(delay)
    with anyio.move_on_after(delay):
        while True:
            # The handler read the body, so this waits for the client to hang up (uvicorn
            # answers http.disconnect then) or discards what is left of an unread body.
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # it gave up; the message stays stored all the same
    for message in answer:
        await send(message)


async def _drop(send: Send, when: str) -> None:
    # Promise a body that never comes, then fail: the server closes the socket mid-response.
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
        }
    )
    raise DroppedConnection(when)


class FaultLayer:
    """ASGI middleware applying :class:`FaultInjector` decisions to API requests."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, rate_limit_headers: Any) -> None:
        self.app = app
        self.injector = injector
        # Callable returning the X-RateLimit-Limit value to advertise on injected 429s.
        self._limit_for = rate_limit_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through, or misbehave as the injector decides."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if not self.injector.applies(method, path):
            await self.app(scope, receive, send)
            return
        event = self.injector.draw(method, path)
        if event.latency:
            await anyio.sleep(event.latency)
        fault = event.fault
        if fault is None:
            await self.app(scope, receive, send)
        elif fault == "error_before":
            for message in _error(503, "Service Unavailable"):
                await send(message)
        elif fault == "drop_before":
            await _drain(receive)
            await _drop(send, "before handling")
        elif fault == "rate_limit":
            headers = {
                "X-RateLimit-Limit": str(self._limit_for(method, path)),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": "1",
                "Retry-After": "1",
            }
            for message in _error(429, "Too Many Requests", headers):
                await send(message)
        else:
            # Handle the request for real, keep its answer to ourselves, then fail.
            captured: list[Message] = []

            async def capture(message: Message) -> None:
                captured.append(message)

            await self.app(scope, receive, capture)
            if fault == "error_after":
                for message in _error(500, "Internal Server Error"):
                    await send(message)
            elif fault == "accept_late":
                delay = self.injector.config.accept_late_seconds
                await _answer_late(scope, receive, send, captured, delay)
            else:
                await _drop(send, "after handling")
