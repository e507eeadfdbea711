"""The gateway in front of the API routes: HMAC check, then per-client rate limits.

Mirrors what Mekari's gateway does before a request reaches Qontak: an unsigned, wrongly
signed or stale request never reaches a handler (401 ``{"message":"Unauthorized"}``), and a
client over its limits gets 429 without the handler running. Authenticated responses carry
``X-RateLimit-*`` headers (see :mod:`._ratelimit`). The verified client id is put in
``scope["state"]["client_id"]`` for the handlers.

A 401 carries **no** ``X-RateLimit-*`` headers, on purpose (issue 4 says "on every response";
this is the one exception). The limits are per client, and a request that fails the
signature check has no verified client: reporting the claimed client's remaining budget
would tell an unauthenticated caller about someone else's quota, and any other number
(say, a full overall window) would be invented. It also matches the gateway Mekari appears
to run: the ``Authorization: hmac username=…, algorithm=…, headers=…, signature=…`` format
and the ``{"message":"Unauthorized"}`` body are those of Kong's ``hmac-auth`` plugin, and
Kong runs authentication plugins before ``rate-limiting``, so a refused request never
reaches the limiter (an inference: Mekari does not document its gateway). An unauthenticated
request does not count against any limit either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._faults import API_PREFIX, is_send
from ._ratelimit import RateLimiter
from ._signature import request_target, verify_request

__all__ = ["GatewayLayer"]


async def _send_json(send: Send, status: int, body: object, headers: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class GatewayLayer:
    """ASGI middleware: authenticate and rate-limit ``/qontak/chat/v1`` requests."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret_for: Callable[[str], str | None],
        limiter: RateLimiter,
        clock: Callable[[], float],
    ) -> None:
        self.app = app
        self.secret_for = secret_for
        self.limiter = limiter
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the signature and limits, then call the app with the client id in state."""
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # Sign-check the bytes as received; ASGI servers that omit raw_path get the
        # re-encoded path, which is what a well-behaved client sent anyway.
        raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
        target = request_target(raw_path, scope.get("query_string", b""))
        now = self.clock()
        client_id = verify_request(
            method=scope["method"],
            target=target,
            authorization=headers.get("authorization"),
            date=headers.get("date"),
            secret_for=self.secret_for,
            now=now,
        )
        if client_id is None:
            await _send_json(send, 401, {"message": "Unauthorized"}, {})
            return
        decision = self.limiter.check(
            client_id, is_send=is_send(scope["method"], scope["path"]), now=now
        )
        limit_headers = decision.headers()
        if not decision.allowed:
            body = {"status": "error", "error": {"code": 429, "messages": ["Too Many Requests"]}}
            await _send_json(send, 429, body, limit_headers)
            return
        scope.setdefault("state", {})["client_id"] = client_id
        extra = [(k.lower().encode(), v.encode()) for k, v in limit_headers.items()]

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_limits)
