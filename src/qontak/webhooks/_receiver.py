"""The webhook receiver: a small ASGI app that keeps every status callback before answering.

Plain ASGI, no framework: mount it in FastAPI/Starlette (``app.mount("/qontak", receiver)``),
in Django's ASGI router, or run it alone (``qontak webhooks serve``). Requests are checked in
this order, and nothing is stored unless all pass: the source IP (optional allow-list) → 403,
the method → 405, the token → 401, the size → 413, strict JSON with a known status → 400.
Then the event is written (idempotently) and only then answered 200; user callbacks run after
the answer so a slow callback never makes Qontak retry or drop us.

Qontak documents no signature on webhooks, so the secret travels in the URL: the last path
segment (``https://you.example/qontak/<token>``) or ``?token=``; it is compared in constant
time and never logged.
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread

from ..errors import ConfigurationError, ValidationError
from ._events import MAX_EVENT_BYTES, StatusEvent, parse_event
from ._store import WebhookStore

__all__ = ["StatusCallback", "WebhookReceiver", "new_token"]

_log = logging.getLogger("qontak.webhooks")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
StatusCallback = Callable[[StatusEvent], Any]

_MIN_TOKEN_LENGTH = 16


def new_token() -> str:
    """A fresh random URL token (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


class _Reject(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body


class WebhookReceiver:
    """ASGI app receiving Qontak's ``status_message`` callbacks.

    ``store`` keeps the events (:class:`~qontak.webhooks.SQLiteWebhookStore`); ``token`` is the
    URL secret (at least 16 characters); ``allowed_ips`` an optional list of addresses or
    networks (``"203.0.113.0/24"``) allowed to post.

    >>> from qontak.webhooks import SQLiteWebhookStore, WebhookReceiver
    >>> receiver = WebhookReceiver(SQLiteWebhookStore(":memory:"), token="s3cret-token-0123456789")
    >>> @receiver.on_status
    ... def delivered(event):
    ...     print(event.external_id, event.status)
    """

    def __init__(
        self,
        store: WebhookStore,
        *,
        token: str,
        allowed_ips: Iterable[str] | None = None,
        max_body: int = MAX_EVENT_BYTES,
    ) -> None:
        if not isinstance(token, str) or len(token) < _MIN_TOKEN_LENGTH:
            raise ConfigurationError(
                f"token: must be a string of at least {_MIN_TOKEN_LENGTH} characters",
                setting="token",
                reason="too short",
            )
        if not token.isascii() or any(c in token for c in "/?#& %"):
            raise ConfigurationError(
                "token: must be URL-safe (letters, digits, '-', '_', '.', '~')",
                setting="token",
                reason="not URL-safe",
            )
        self.store = store
        self._token = token.encode()
        self._networks = [ipaddress.ip_network(ip, strict=False) for ip in (allowed_ips or ())]
        self.max_body = max_body
        self._callbacks: list[StatusCallback] = []
        self.received = 0
        self.duplicates = 0

    def __repr__(self) -> str:
        return f"WebhookReceiver(store={self.store!r}, token=<redacted>)"

    def on_status(self, func: StatusCallback) -> StatusCallback:
        """Register ``func(event)`` (sync or async) to run after each *new* event is stored."""
        self._callbacks.append(func)
        return func

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            event = await self._accept(scope, receive)
        except _Reject as rej:
            await _respond(send, rej.status, rej.body)
            return
        is_new = await anyio.to_thread.run_sync(self.store.record, event)
        self.received += 1
        if not is_new:
            self.duplicates += 1
        await _respond(send, 200, {"status": "ok", "duplicate": not is_new})
        if is_new:
            await self._run_callbacks(event)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _accept(self, scope: Scope, receive: Receive) -> StatusEvent:
        if self._networks and not self._ip_allowed(scope):
            raise _Reject(403, {"message": "Forbidden"})
        if scope.get("method") != "POST":
            raise _Reject(405, {"message": "Method Not Allowed"})
        if not self._token_ok(scope):
            raise _Reject(401, {"message": "Unauthorized"})
        body = await self._read_body(scope, receive)
        try:
            return parse_event(body)
        except ValidationError as exc:
            raise _Reject(400, {"error": {"field": exc.field, "reason": exc.reason}}) from None

    def _ip_allowed(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in net for net in self._networks)

    def _token_ok(self, scope: Scope) -> bool:
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", ""))
        if root and path.startswith(root):
            path = path[len(root) :]
        candidates = [path.rstrip("/").rsplit("/", 1)[-1]]
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        candidates += query.get("token", [])
        # compare_digest on every candidate: the time taken does not depend on the secret.
        ok = False
        for candidate in candidates:
            ok |= hmac.compare_digest(candidate.encode("utf-8", "replace"), self._token)
        return ok

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise _Reject(400, {"message": "bad Content-Length"}) from None
                if declared > self.max_body:
                    raise _Reject(413, {"message": "Payload Too Large"})
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Reject(400, {"message": "client disconnected"})
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _Reject(413, {"message": "Payload Too Large"})
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _run_callbacks(self, event: StatusEvent) -> None:
        for callback in self._callbacks:
            try:
                if inspect.iscoroutinefunction(callback):
                    await callback(event)
                else:
                    await anyio.to_thread.run_sync(callback, event)
            except Exception:
                # Already stored and acknowledged: a failing callback is the caller's bug to see.
                _log.exception("webhook callback %r failed for %s", callback, event.dedupe_key)


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
