"""The HTTP clients the SDK builds for itself: pool sizing and the optional aiohttp transport.

Why a pool as large as the concurrency: httpx keeps 20 idle connections by default, so with
more requests in flight than that, most requests pay for a new TCP connection (and, on the
real API, a TLS handshake). The SDK keeps as many idle connections as it may open.

Why aiohttp: under concurrency httpx's own async pool (httpcore) costs several times more
CPU per request than aiohttp's. ``qontak[aiohttp]`` installs ``httpx-aiohttp``, an httpx
transport backed by aiohttp (openai-python ships the same option), and :class:`AsyncQontak`
then uses it by default when it runs on asyncio: installing the extra is the opt-in.
``http_transport="httpx"`` keeps httpx's own pool; under trio (which aiohttp does not
support) httpx's pool is used anyway.

The aiohttp transport's exceptions are re-mapped here: ``httpx-aiohttp`` maps every
``aiohttp.ClientConnectionError``, including a connection dropped *after* the request was
sent, to ``httpx.ConnectTimeout``, which would tell the retry logic that an unanswered send
never left (and so could be sent twice). Here only failures to connect say "not sent".
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
from typing import Any, Literal

import httpx

from .errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "HTTP_TRANSPORTS",
    "HttpTransport",
    "aiohttp_available",
    "async_http_client",
    "check_pool_options",
    "pool_limits",
    "sync_http_client",
]

HttpTransport = Literal["auto", "httpx", "aiohttp"]
HTTP_TRANSPORTS: tuple[str, ...] = ("auto", "httpx", "aiohttp")

#: Connections a client may open (and keep idle) unless told otherwise.
DEFAULT_MAX_CONNECTIONS = 100


def aiohttp_available() -> bool:
    """Whether ``qontak[aiohttp]`` (``httpx-aiohttp`` and ``aiohttp``) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("aiohttp", "httpx_aiohttp"))


def check_pool_options(
    max_connections: int | None, http_transport: str, *, own_client: bool
) -> int:
    """Validate the pool options; returns the connection limit to use."""
    if http_transport not in HTTP_TRANSPORTS:
        raise ConfigurationError(
            f"http_transport: expected one of {', '.join(HTTP_TRANSPORTS)}, got {http_transport!r}",
            setting="http_transport",
            reason="unknown transport",
        )
    if max_connections is not None and (
        isinstance(max_connections, bool)
        or not isinstance(max_connections, int)
        or max_connections < 1
    ):
        raise ConfigurationError(
            f"max_connections: expected a whole number >= 1, got {max_connections!r}",
            setting="max_connections",
            reason="must be a whole number >= 1",
        )
    if not own_client and (max_connections is not None or http_transport != "auto"):
        setting = "max_connections" if max_connections is not None else "http_transport"
        raise ConfigurationError(
            f"{setting}: applies only to the HTTP client the SDK creates; configure the "
            "http_client you passed instead",
            setting=setting,
            reason="conflicts with http_client",
        )
    if http_transport == "aiohttp" and not aiohttp_available():
        raise ConfigurationError(
            "http_transport: 'aiohttp' needs the aiohttp extra: pip install 'qontak[aiohttp]'",
            setting="http_transport",
            reason="aiohttp extra not installed",
        )
    return max_connections if max_connections is not None else DEFAULT_MAX_CONNECTIONS


def pool_limits(max_connections: int) -> httpx.Limits:
    """A pool that keeps as many idle connections as it may open."""
    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing.

    The API authenticates every request by signature and sets no cookies, while reading
    ``Set-Cookie`` through the standard library's jar costs ~15 µs per response (a tenth
    of a bare client's whole request) even when there is none.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


_NO_COOKIES = _NoCookies()


class _Client(httpx.Client):
    """``httpx.Client`` without cookie handling (see :class:`_NoCookies`), whose requests
    go straight to its transport (see :class:`_AsyncClient`)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        return None

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        transport = self._transport
        if kwargs or self.is_closed or _has_proxy_routes(self):
            return super().send(request, **kwargs)
        response = transport.handle_request(request)
        response.request = request
        try:
            response.read()
        except BaseException:
            response.close()
            raise
        return response


def _has_proxy_routes(client: httpx.Client | httpx.AsyncClient) -> bool:
    # httpx keeps routes to proxies from the environment (HTTPS_PROXY…) in ``_mounts``;
    # requests that may need them take httpx's own path.
    return bool(getattr(client, "_mounts", True))


class _AsyncClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` without cookie handling (see :class:`_NoCookies`).

    A request goes straight to the transport: the SDK's requests need none of what
    ``AsyncClient.send`` adds (auth flows, redirects, event hooks, cookies), and those
    layers cost a quarter of the SDK's own CPU per request. Requests that proxies from the
    environment (``HTTPS_PROXY``…) may route keep httpx's own path.
    """

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        return None

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if kwargs or self.is_closed or _has_proxy_routes(self):
            return await super().send(request, **kwargs)
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response


def sync_http_client(timeout: httpx.Timeout, max_connections: int) -> httpx.Client:
    """The blocking client's own ``httpx.Client``."""
    return _Client(timeout=timeout, limits=pool_limits(max_connections))


def async_http_client(
    timeout: httpx.Timeout, max_connections: int, transport: str
) -> httpx.AsyncClient:
    """The async client's own ``httpx.AsyncClient`` on the chosen transport."""
    limits = pool_limits(max_connections)
    if transport == "httpx" or (transport == "auto" and not aiohttp_available()):
        return _AsyncClient(timeout=timeout, limits=limits)
    chosen: httpx.AsyncBaseTransport = (
        _aiohttp_transport(limits) if transport == "aiohttp" else _AutoTransport(limits)
    )
    return _AsyncClient(timeout=timeout, transport=chosen)


def _on_asyncio() -> bool:
    try:
        return asyncio.current_task() is not None
    except RuntimeError:  # no asyncio loop in this thread: trio (or another library)
        return False


class _AutoTransport(httpx.AsyncBaseTransport):
    """aiohttp on asyncio, httpx's own pool elsewhere; chosen at the first request (the
    client may be made before any event loop runs)."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._inner: httpx.AsyncBaseTransport | None = None

    @property
    def inner(self) -> httpx.AsyncBaseTransport | None:
        """The transport in use, once the first request has chosen it."""
        return self._inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._inner is None:
            self._inner = (
                _aiohttp_transport(self._limits)
                if _on_asyncio()
                else httpx.AsyncHTTPTransport(limits=self._limits)
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()


def _aiohttp_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    from httpx_aiohttp import AiohttpTransport

    class _AiohttpTransport(AiohttpTransport):
        """``httpx_aiohttp.AiohttpTransport`` that reads each answer whole (no per-chunk
        stream wrapper: Qontak's answers are small JSON) and maps aiohttp's exceptions so
        they say whether the request left."""

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            import aiohttp
            import yarl

            if not isinstance(self.client, aiohttp.ClientSession):
                self.client = self.get_client()
            timeout = request.extensions.get("timeout", {})
            data: Any
            try:
                data = request.content or None
            except httpx.RequestNotRead:  # a streamed (multipart) body
                data = request.stream
                request.headers.pop("transfer-encoding", None)
            proxy = self.proxy
            # Header pairs as aiohttp takes them: reading httpx.Headers as a mapping would
            # merge and re-decode every value.
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
            try:
                async with self.client.request(
                    request.method,
                    # encoded=True: sent exactly as signed. yarl would otherwise re-quote the
                    # query (%3A -> :), and the request line would no longer match the signature.
                    yarl.URL(str(request.url), encoded=True),
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                    auto_decompress=False,  # httpx decodes, as with its own transport
                    compress=False,
                    timeout=_client_timeout(
                        timeout.get("connect"), timeout.get("read"), timeout.get("pool")
                    ),
                    server_hostname=request.extensions.get("sni_hostname"),
                    proxy=str(proxy.url) if proxy else None,
                    proxy_auth=aiohttp.BasicAuth(*proxy.auth) if proxy and proxy.auth else None,
                    proxy_headers=proxy.headers if proxy else None,
                ) as answer:
                    content = await answer.read()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise _mapped(exc, request) from exc
            extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
            if answer.reason:
                extensions["reason_phrase"] = answer.reason.encode()
            response = httpx.Response(
                answer.status,
                headers=answer.raw_headers,
                stream=httpx.ByteStream(content),
                request=request,
                extensions=extensions,
            )
            if "Content-Encoding" in answer.headers:
                response.read()  # httpx decodes it
            else:
                # Nothing to decode: the body is the bytes read. Setting them directly skips
                # httpx's chunk-and-decode pipeline, the largest cost of building a response.
                response._content = content
            return response

    return _AiohttpTransport(limits=limits)


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> Any:
    """aiohttp's timeout for httpx's (``pool`` bounds waiting for a connection and
    connecting; aiohttp has no write timeout). Immutable, so shared."""
    import aiohttp

    return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


def _mapped(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception that tells the truth about an aiohttp failure: only a failure to
    connect says "not sent"; anything later may have reached the server."""
    import aiohttp

    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return httpx.ProxyError(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)  # refused, DNS, TLS
    connect_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)
    if connect_timeout is not None and isinstance(exc, connect_timeout):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, asyncio.TimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message, request=request)
    return httpx.ReadError(message, request=request)  # dropped or reset: outcome unknown
