"""Assembling the ASGI app: routes, then the gateway (auth, limits), then faults outermost.

Layer order matters: faults sit outside everything so an injected failure looks like the
network or the gateway failed; the gateway sits outside the routes so no handler ever runs
for an unauthenticated or over-limit request.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from ._admin import admin_routes
from ._api import api_routes, error_response
from ._faults import API_PREFIX, SEND_PATH, FaultLayer
from ._gateway import GatewayLayer

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
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if request.url.path.startswith(API_PREFIX):
        if status == 405:
            return error_response(405, ["Method Not Allowed"])
        return error_response(404, ["Resource not found."])
    return PlainTextResponse("Not Found" if status == 404 else "Method Not Allowed", status)


def build_app(sandbox: Sandbox) -> tuple[Starlette, ASGIApp]:
    """The Starlette app (routes only) and the full ASGI stack to serve."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Webhooks need a running server; in-process transports never start a lifespan.
        sandbox.start_webhooks()
        try:
            yield
        finally:
            sandbox.stop_webhooks()

    routes: list[BaseRoute] = [*api_routes(sandbox), *admin_routes(sandbox), *_inbox_routes()]
    app = Starlette(
        routes=routes,
        exception_handlers={404: _http_error, 405: _http_error},
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox

    def advertised_limit(method: str, path: str) -> int:
        limits = sandbox.limiter.config
        if method == "POST" and path.rstrip("/") == SEND_PATH:
            return limits.direct_per_minute
        return limits.overall_per_minute

    gateway = GatewayLayer(
        app, secret_for=sandbox.store.secret_for, limiter=sandbox.limiter, clock=sandbox.now
    )
    stack: Any = FaultLayer(gateway, sandbox.faults, advertised_limit)
    return app, stack
