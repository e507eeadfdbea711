"""Assembling the ASGI app: routes, the admin guard, the gateway (auth, limits), then faults.

Layer order matters: faults sit outside everything so an injected failure looks like the
network or the gateway failed; the gateway sits outside the routes so no handler ever runs
for an unauthenticated or over-limit request; the admin guard (:class:`~._admin.AdminGuard`)
does the same for the ``/_sandbox`` routes. Outermost, a client that hangs up while its body
is being read is logged as one line instead of a ``ClientDisconnect`` traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ._admin import AdminGuard, admin_routes
from ._api import api_routes, error_response, mark_served_loop
from ._faults import API_PREFIX, SEND_PATH, SERVED, FaultLayer
from ._gateway import GatewayLayer
from ._interactions import interaction_routes

if TYPE_CHECKING:
    from . import Sandbox

__all__ = ["build_app"]


def _inbox_routes() -> list[BaseRoute]:
    # The web inbox is built separately; the API must work without it.
    try:
        from ._inbox import routes as inbox_routes
    except ImportError:
        return []
    return list(inbox_routes())


async def _http_error(request: Request, exc: Exception) -> Response:
    """404/405 of a path no route serves (or not with this method), in the error envelope
    every other sandbox answer uses: API paths with Qontak's own wording, the sandbox's own
    paths (``/_sandbox/…``, the inbox) with the HTTP reason."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        refused = error_response(405, ["Method Not Allowed"])
        # RFC 9110 §15.5.6: a 405 names the methods the path does serve.
        allow = (exc.headers or {}).get("Allow") if isinstance(exc, HTTPException) else None
        if allow:
            refused.headers["Allow"] = allow
        return refused
    if request.url.path.startswith(API_PREFIX):
        return error_response(404, ["Resource not found."])
    return error_response(404, ["Not Found"])


async def _server_error(request: Request, exc: Exception) -> Response:
    # A bug: Starlette still re-raises, so uvicorn logs the traceback; the client gets the
    # same envelope as every other error instead of a plain-text page.
    return error_response(500, ["Internal Server Error"])


class QuietDisconnects:
    """ASGI layer: a client gone before its request was read is one log line, not a 500
    traceback (nothing can be answered to it anyway)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger("uvicorn.error")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; log a client disconnect in one line."""
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            self.log.info(
                "client disconnected before its request was read: %s %s",
                scope.get("method", ""),
                scope.get("path", ""),
            )


class CountRequests:
    """ASGI layer: count every API request as ``(method, path)`` in ``counts`` (what a client
    spent, refused ones included), so tests can tell e.g. how many logs were polled."""

    def __init__(self, app: ASGIApp, counts: Counter[tuple[str, str]]) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count, then run the app."""
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            self.counts[(scope["method"], scope["path"])] += 1
        await self.app(scope, receive, send)


def build_app(sandbox: Sandbox) -> tuple[Starlette, ASGIApp]:
    """The Starlette app (routes only) and the full ASGI stack to serve."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # Webhooks need a running server; in-process transports never start a lifespan.
        mark_served_loop()
        sandbox.start_webhooks()
        try:
            # Copied into every request's scope["state"]: a real server with a real clock
            # runs this app (late answers really wait, see _faults).
            yield {SERVED: True}
        finally:
            sandbox.stop_webhooks()

    routes: list[BaseRoute] = [
        *api_routes(sandbox),
        *interaction_routes(sandbox),
        *admin_routes(sandbox),
        *_inbox_routes(),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={404: _http_error, 405: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox

    def advertised_limit(method: str, path: str) -> int:
        limits = sandbox.limiter.config
        if method == "POST" and path.rstrip("/") == SEND_PATH:
            return limits.direct_per_minute
        return limits.overall_per_minute

    guarded = AdminGuard(app, token=sandbox.config.admin_token, allowed_hosts=sandbox.admin_hosts)
    gateway = GatewayLayer(
        guarded, secret_for=sandbox.secret_for, limiter=sandbox.limiter, clock=sandbox.now
    )
    faulty = FaultLayer(gateway, sandbox.faults, advertised_limit)
    stack: Any = QuietDisconnects(CountRequests(faulty, sandbox.requests))
    return app, stack
