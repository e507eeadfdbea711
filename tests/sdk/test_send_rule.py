"""The send rule, pinned: which transport failures mean "nothing was sent".

That line separates a safe retry from a duplicate WhatsApp message. Every exception class a
transport can raise is listed here with its verdict, and each one is raised by a real
``httpx`` transport under a real client, for a direct send (POST, never repeated unless
nothing was sent) and for a read (GET, always safe to repeat). A new httpx exception class
fails :func:`test_table_covers_every_httpx_error` until someone decides where it belongs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpcore
import httpx
import pytest

from qontak import (
    APIConnectionError,
    APITimeoutError,
    AsyncQontak,
    DeliveryUnknownError,
    Qontak,
)

SENT = "may have been sent"  # the server may have acted: a send is never repeated
NOT_SENT = "not sent"  # provably never left: safe to repeat, even a send

MSG = {
    "to_name": "Budi",
    "to_number": "6281234567890",
    "message_template_id": "tpl",
    "channel_integration_id": "ch",
    "language": {"code": "id"},
    "parameters": {},
}
RETRIES = 2

#: Every ``httpx.HTTPError`` subclass (abstract bases too: a transport may raise them).
HTTPX_RULE: dict[type[Exception], str] = {
    httpx.HTTPError: SENT,
    httpx.RequestError: SENT,
    httpx.TransportError: SENT,
    httpx.TimeoutException: SENT,
    httpx.ConnectTimeout: NOT_SENT,
    httpx.ReadTimeout: SENT,
    httpx.WriteTimeout: SENT,  # part of the body may be on the server already
    httpx.PoolTimeout: NOT_SENT,
    httpx.NetworkError: SENT,
    httpx.ConnectError: NOT_SENT,
    httpx.ReadError: SENT,
    httpx.WriteError: SENT,
    httpx.CloseError: SENT,  # closing happens after the exchange
    httpx.ProxyError: NOT_SENT,
    httpx.UnsupportedProtocol: NOT_SENT,
    httpx.ProtocolError: SENT,
    httpx.LocalProtocolError: NOT_SENT,
    httpx.RemoteProtocolError: SENT,
    httpx.DecodingError: SENT,  # the answer came and could not be decoded
    httpx.TooManyRedirects: SENT,
    httpx.HTTPStatusError: SENT,
}

#: Errors from below httpx that a transport other than httpx's own may let through.
RAW_RULE: dict[type[BaseException], str] = {
    OSError: SENT,
    ConnectionResetError: SENT,
    ConnectionRefusedError: SENT,  # raw: we cannot tell which phase raised it
    BrokenPipeError: SENT,
    TimeoutError: SENT,
    ssl.SSLError: SENT,
    ssl.SSLEOFError: SENT,
    ssl.SSLCertVerificationError: SENT,
    anyio.BrokenResourceError: SENT,
    anyio.ClosedResourceError: SENT,
    anyio.EndOfStream: SENT,
}


def _subclasses(cls: type) -> set[type]:
    found = {cls}
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("httpx"):
            found |= _subclasses(sub)
    return found


def _make(cls: type[BaseException]) -> BaseException:
    if cls is httpx.HTTPStatusError:
        request = httpx.Request("GET", "https://x")
        return cls("boom", request=request, response=httpx.Response(500, request=request))
    if issubclass(cls, httpx.HTTPError):
        return cls("boom")
    return cls()


def _wrapped(outer: type[Exception], inner: Callable[[], BaseException]) -> Exception:
    """``outer`` raised ``from`` ``inner()``, as a transport that maps errors does."""
    try:
        try:
            raise inner()
        except BaseException as exc:
            raise outer("mapped") from exc
    except Exception as mapped:
        return mapped


def _aiohttp_error(name: str) -> Callable[[], BaseException]:
    aiohttp = pytest.importorskip("aiohttp")
    return lambda: getattr(aiohttp, name)("boom")


#: Wrapped errors: the outer httpx class is believed only if what it wraps agrees.
WRAPPED_RULE: dict[str, tuple[Callable[[], Exception], str]] = {
    "httpx ConnectError from httpcore ConnectError": (
        lambda: _wrapped(httpx.ConnectError, lambda: httpcore.ConnectError("refused")),
        NOT_SENT,
    ),
    "httpx PoolTimeout from httpcore PoolTimeout": (
        lambda: _wrapped(httpx.PoolTimeout, lambda: httpcore.PoolTimeout("pool")),
        NOT_SENT,
    ),
    "httpx ConnectError from httpcore ReadError (inconsistent)": (
        lambda: _wrapped(httpx.ConnectError, lambda: httpcore.ReadError("reset")),
        SENT,
    ),
    "httpx ConnectError from an unknown library's error": (
        lambda: _wrapped(httpx.ConnectError, lambda: ValueError("?")),
        SENT,
    ),
    # httpx-aiohttp maps every aiohttp.ClientConnectionError to httpx.ConnectTimeout
    "httpx-aiohttp ConnectTimeout from ServerDisconnectedError": (
        lambda: _wrapped(httpx.ConnectTimeout, _aiohttp_error("ServerDisconnectedError")),
        SENT,
    ),
    "httpx-aiohttp ConnectTimeout from SocketTimeoutError (read timeout)": (
        lambda: _wrapped(httpx.ConnectTimeout, _aiohttp_error("SocketTimeoutError")),
        SENT,
    ),
    "httpx-aiohttp ConnectTimeout from ServerTimeoutError": (
        lambda: _wrapped(httpx.ConnectTimeout, _aiohttp_error("ServerTimeoutError")),
        SENT,
    ),
    "httpx-aiohttp ConnectTimeout from ClientOSError (reset)": (
        lambda: _wrapped(httpx.ConnectTimeout, _aiohttp_error("ClientOSError")),
        SENT,
    ),
    "httpx-aiohttp ConnectTimeout from ConnectionTimeoutError (connect)": (
        lambda: _wrapped(httpx.ConnectTimeout, _aiohttp_error("ConnectionTimeoutError")),
        NOT_SENT,
    ),
    "httpx-aiohttp ReadError from ClientPayloadError": (
        lambda: _wrapped(httpx.ReadError, _aiohttp_error("ClientPayloadError")),
        SENT,
    ),
}


def _cases() -> list[Any]:
    cases: list[Any] = []
    for cls, verdict in {**HTTPX_RULE, **RAW_RULE}.items():
        cases.append(pytest.param(lambda cls=cls: _make(cls), verdict, id=cls.__qualname__))
    for name, (factory, verdict) in WRAPPED_RULE.items():
        cases.append(pytest.param(factory, verdict, id=name))
    return cases


class Raising(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """A transport whose every attempt fails with a fresh copy of one exception."""

    def __init__(self, factory: Callable[[], BaseException]) -> None:
        self.factory = factory
        self.attempts: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append(request.method)
        raise self.factory()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append(request.method)
        raise self.factory()


def _options() -> dict[str, Any]:
    return {
        "base_url": "https://api.mekari.com",
        "env_file": None,
        "max_retries": RETRIES,
        "rate_limits": False,
    }


def _expect(verdict: str, sample: BaseException, *, send: bool) -> tuple[type[Exception], int]:
    """The error class and the number of attempts the rule demands."""
    if send and verdict == SENT:
        return DeliveryUnknownError, 1
    timed_out = isinstance(sample, httpx.TimeoutException)
    return (APITimeoutError if timed_out else APIConnectionError), 1 + RETRIES


def test_table_covers_every_httpx_error() -> None:
    everything = _subclasses(httpx.HTTPError)
    assert everything - set(HTTPX_RULE) == set(), "decide the send rule for these classes"
    assert set(HTTPX_RULE) - everything == set()


@pytest.mark.parametrize(("factory", "verdict"), _cases())
@pytest.mark.parametrize("call", ["send", "read"])
def test_send_rule_sync(factory: Callable[[], BaseException], verdict: str, call: str) -> None:
    transport = Raising(factory)
    client = Qontak(
        "id",
        "secret",
        http_client=httpx.Client(transport=transport),
        sleep=lambda s: None,
        **_options(),
    )
    expected, attempts = _expect(verdict, factory(), send=call == "send")
    with pytest.raises(Exception) as info:
        if call == "send":
            client.broadcasts.send_direct(MSG, validate=False)
        else:
            client.channels.list()
    assert type(info.value) is expected, info.value
    assert len(transport.attempts) == attempts


@pytest.mark.anyio
@pytest.mark.parametrize(("factory", "verdict"), _cases())
@pytest.mark.parametrize("call", ["send", "read"])
async def test_send_rule_async(
    factory: Callable[[], BaseException], verdict: str, call: str
) -> None:
    transport = Raising(factory)

    async def no_sleep(seconds: float) -> None:
        return None

    client = AsyncQontak(
        "id",
        "secret",
        http_client=httpx.AsyncClient(transport=transport),
        sleep=no_sleep,
        **_options(),
    )
    expected, attempts = _expect(verdict, factory(), send=call == "send")
    with pytest.raises(Exception) as info:
        if call == "send":
            await client.broadcasts.send_direct(MSG, validate=False)
        else:
            await client.channels.list()
    assert type(info.value) is expected, info.value
    assert len(transport.attempts) == attempts
    await client.aclose()


def test_a_bug_in_a_transport_is_not_dressed_up_as_a_network_failure() -> None:
    transport = Raising(lambda: KeyError("bug"))
    client = Qontak("id", "secret", http_client=httpx.Client(transport=transport), **_options())
    with pytest.raises(KeyError):
        client.channels.list()
    assert len(transport.attempts) == 1


# -- over real sockets ----------------------------------------------------------------------


@contextlib.contextmanager
def hang_up_after_reading() -> Iterator[tuple[str, list[bytes]]]:
    """A TCP server that reads each whole request, then closes without answering: the
    server may have acted, the client can never know."""
    seen: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2.0)
                data = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    while len(body) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                if data:
                    seen.append(head.split(b"\r\n", 1)[0])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        stop.set()
        thread.join()
        listener.close()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_httpx_transport_server_hangs_up_after_a_send_is_unknown_not_resent() -> None:
    with hang_up_after_reading() as (url, seen):
        client = Qontak("id", "secret", base_url=url, env_file=None, rate_limits=False)
        with pytest.raises(DeliveryUnknownError):
            client.broadcasts.send_direct(MSG, validate=False)
        client.close()
    assert len(seen) == 1 and seen[0].startswith(b"POST ")


def _aiohttp_client(base_url: str) -> AsyncQontak:
    transport_mod = pytest.importorskip("httpx_aiohttp")

    async def no_sleep(seconds: float) -> None:
        return None

    http = httpx.AsyncClient(transport=transport_mod.AiohttpTransport())
    return AsyncQontak(
        "id",
        "secret",
        base_url=base_url,
        env_file=None,
        rate_limits=False,
        http_client=http,
        sleep=no_sleep,
        max_retries=RETRIES,
    )


@pytest.mark.anyio
async def test_aiohttp_transport_server_hangs_up_after_a_send_is_unknown_not_resent() -> None:
    # httpx-aiohttp reports this as httpx.ConnectTimeout; believing it would resend.
    with hang_up_after_reading() as (url, seen):
        client = _aiohttp_client(url)
        with pytest.raises(DeliveryUnknownError):
            await client.broadcasts.send_direct(MSG, validate=False)
        await client._http.aclose()
        await asyncio.sleep(0)
    assert len(seen) == 1 and seen[0].startswith(b"POST ")


@pytest.mark.anyio
async def test_aiohttp_transport_read_after_hang_up_is_retried() -> None:
    with hang_up_after_reading() as (url, seen):
        client = _aiohttp_client(url)
        with pytest.raises(APIConnectionError):
            await client.channels.list()
        await client._http.aclose()
    assert len(seen) >= 1 + RETRIES  # aiohttp itself also repeats a GET once


@pytest.mark.anyio
async def test_aiohttp_transport_refused_connection_is_retried_even_for_a_send() -> None:
    client = _aiohttp_client(_closed_port())
    with pytest.raises(APIConnectionError) as info:
        await client.broadcasts.send_direct(MSG, validate=False)
    assert not isinstance(info.value, DeliveryUnknownError)
    assert "3 attempts" in str(info.value)
    await client._http.aclose()


def test_httpx_transport_refused_connection_is_retried_even_for_a_send() -> None:
    client = Qontak(
        "id",
        "secret",
        base_url=_closed_port(),
        sleep=lambda s: None,
        **{k: v for k, v in _options().items() if k != "base_url"},
    )
    with pytest.raises(APIConnectionError) as info:
        client.broadcasts.send_direct(MSG, validate=False)
    assert type(info.value) is APIConnectionError
    assert f"after {1 + RETRIES} attempts (ConnectError)" in str(info.value)
    client.close()
