"""A synchronous in-process transport: ``httpx.Client`` → an ASGI app, no socket.

httpx ships only an async ASGI transport. Starlette's ``TestClient`` fills the gap but warns
that its httpx support is deprecated, so the sandbox has its own: each request runs through
``httpx.ASGITransport`` on an event loop in a helper thread (an anyio blocking portal),
which keeps sync and async clients on exactly the same code path. App exceptions, such as
:class:`~qontak.sandbox.DroppedConnection`, are re-raised in the caller's thread.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.types import ASGIApp

__all__ = ["SyncASGITransport"]


class SyncASGITransport(httpx.BaseTransport):
    """Serve ``httpx.Client`` requests from an ASGI app in process.

    >>> client = httpx.Client(transport=SyncASGITransport(app), base_url="http://sandbox.local")
    ... # doctest: +SKIP
    """

    def __init__(self, app: ASGIApp) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._lock = threading.Lock()
        self._stack: contextlib.ExitStack | None = None
        self._portal: BlockingPortal | None = None

    def _get_portal(self) -> BlockingPortal:
        with self._lock:
            if self._portal is None:
                stack = contextlib.ExitStack()
                self._portal = stack.enter_context(start_blocking_portal())
                self._stack = stack
            return self._portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Run one request through the app and return the complete response."""
        body = request.read()

        async def call() -> tuple[int, httpx.Headers, bytes, dict[str, Any]]:
            inner_request = httpx.Request(
                request.method,
                request.url,
                headers=request.headers,
                content=body,
                extensions=request.extensions,
            )
            response = await self._inner.handle_async_request(inner_request)
            content = await response.aread()
            return response.status_code, response.headers, content, dict(response.extensions)

        status, headers, content, extensions = self._get_portal().call(call)
        return httpx.Response(status, headers=headers, content=content, extensions=extensions)

    def close(self) -> None:
        """Stop the helper event loop."""
        with self._lock:
            stack, self._stack, self._portal = self._stack, None, None
        if stack is not None:
            stack.close()
