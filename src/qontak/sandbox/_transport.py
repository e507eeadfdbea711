"""A synchronous in-process transport: ``httpx.Client`` → an ASGI app, no socket.

httpx ships only an async ASGI transport, and Starlette's ``TestClient`` warns that its httpx
support is deprecated, so the sandbox has its own. Each request runs the app on a private
event loop *in the caller's thread* (``loop.run_until_complete``): handing every request to
a loop in a helper thread and waiting for the answer cost more than the sandbox's own work.
Requests from several threads take turns on that loop; a caller whose thread already runs an
event loop (sync code called from async code) is served by a helper thread instead, started
on first need. App exceptions, such as :class:`~qontak.sandbox.DroppedConnection`, are
raised in the caller's thread. :meth:`close` stops the loop and any helper thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

import httpx
from starlette.types import ASGIApp, Message

__all__ = ["SyncASGITransport"]

_Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


class SyncASGITransport(httpx.BaseTransport):
    """Serve ``httpx.Client`` requests from an ASGI app in process.

    >>> client = httpx.Client(transport=SyncASGITransport(app), base_url="http://sandbox.local")
    ... # doctest: +SKIP
    """

    def __init__(self, app: ASGIApp, client: tuple[str, int] = ("127.0.0.1", 123)) -> None:
        self.app = app
        self.client = client
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._helper: _HelperLoop | None = None
        self._closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Run one request through the app and return the complete response."""
        scope = _scope(request, self.client)
        body = request.read()
        if _running_loop() is None:
            with self._lock:
                loop = self._own_loop()
                status, headers, content = loop.run_until_complete(self._call(scope, body))
        else:
            status, headers, content = self._helper_loop().run(self._call(scope, body))
        return httpx.Response(status, headers=headers, content=content, request=request)

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise RuntimeError("the transport is closed")
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def _helper_loop(self) -> _HelperLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("the transport is closed")
            if self._helper is None:
                self._helper = _HelperLoop()
            return self._helper

    async def _call(self, scope: dict[str, Any], body: bytes) -> _Answer:
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        parts: list[bytes] = []
        sent_body = False
        done = asyncio.Event()

        async def receive() -> Message:
            nonlocal sent_body
            if sent_body:
                await done.wait()
                return {"type": "http.disconnect"}
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if chunk and scope["method"] != "HEAD":
                    parts.append(chunk)
                if not message.get("more_body", False):
                    done.set()

        try:
            await self.app(scope, receive, send)
        finally:
            done.set()
        return status, headers, b"".join(parts)

    def close(self) -> None:
        """Stop the event loop (and the helper thread, if one was started)."""
        with self._lock:
            self._closed = True
            loop, self._loop = self._loop, None
            helper, self._helper = self._helper, None
        if loop is not None:
            _close_loop(loop)
        if helper is not None:
            helper.close()


def _scope(request: httpx.Request, client: tuple[str, int]) -> dict[str, Any]:
    url = request.url
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
        "scheme": url.scheme,
        "path": url.path,
        "raw_path": url.raw_path.split(b"?")[0],
        "query_string": url.query,
        "server": (url.host, url.port),
        "client": client,
        "root_path": "",
    }


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    with contextlib.suppress(RuntimeError):
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()


class _HelperLoop:
    """An event loop in a thread of its own, for callers whose thread is running one."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="qontak-sandbox-transport", daemon=True
        )
        self._thread.start()

    def run(self, coro: Any) -> _Answer:
        answer: _Answer = asyncio.run_coroutine_threadsafe(coro, self._loop).result()
        return answer

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        _close_loop(self._loop)
