"""HTTP transports: the async client on httpx's pool and on aiohttp against a real loopback
sandbox, a keep-alive pool as large as the concurrency, honest "not sent" on both
transports, and the in-process sync transport (no helper thread unless needed, none left
after close)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import uvicorn

from qontak import (
    APIConnectionError,
    AsyncQontak,
    ConfigurationError,
    DeliveryUnknownError,
    Qontak,
    messages,
)
from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    RateLimitConfig,
    Sandbox,
)
from qontak.testing import sandbox_client

pytestmark = pytest.mark.anyio
TRANSPORTS = ["httpx", "aiohttp"]
TO = "0812-3456-7890"


class ConnectionLog:
    """ASGI wrapper that remembers each request's client port (one per TCP connection)
    and holds requests briefly, so a burst really is in flight at once."""

    def __init__(self, app: Any, hold: float = 0.0) -> None:
        self.app = app
        self.hold = hold
        self.ports: list[int] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("client"):
            self.ports.append(scope["client"][1])
            if self.hold:
                await asyncio.sleep(self.hold)
        await self.app(scope, receive, send)


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """uvicorn on a free loopback port in a thread; yields the API base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.005)  # waiting for a real socket, not for a clock
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/qontak/chat/v1"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    sandbox = Sandbox(faults=FaultConfig(), rate_limits=RateLimitConfig(enabled=False))
    yield sandbox
    sandbox.close()


@pytest.fixture(scope="module")
def log(box: Sandbox) -> ConnectionLog:
    return ConnectionLog(box.app)


@pytest.fixture(scope="module")
def url(log: ConnectionLog) -> Iterator[str]:
    with serve(log) as base:
        yield base


async def _no_sleep(seconds: float) -> None:
    return None


def _client(url: str, transport: str, **options: Any) -> AsyncQontak:
    return AsyncQontak(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        base_url=url,
        env_file=None,
        rate_limits=False,
        http_transport=transport,  # type: ignore[arg-type]
        sleep=_no_sleep,
        **options,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_send_read_and_upload_on_each_transport(
    transport: str, url: str, box: Sandbox, tmp_path: Any
) -> None:
    box.set_faults(FaultConfig())
    async with _client(url, transport) as client:
        channel = (await client.channels.list())[0]
        tpl = await client.templates.find("order_update", language="id")
        sent = await client.broadcasts.send_direct(
            messages.text(TO, ["Budi", "INV-7"], template=tpl, channel=channel)
        )
        assert (await client.broadcasts.get(sent.id)).id == sent.id
        assert sent.response is not None and sent.response.envelope["data"]["id"] == sent.id
        pdf = tmp_path / "menu.pdf"
        pdf.write_bytes(b"%PDF-1.4 transport")
        uploaded = await client.file_uploader.upload(pdf)
    assert box.messages()[-1]["broadcast_id"] == sent.id
    assert uploaded.url


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_query_that_needs_quoting_is_sent_as_signed(transport: str, url: str) -> None:
    # The gateway verifies the request line byte for byte: a transport that re-quotes the
    # query (yarl turns %3A back into ':') gets every dated list refused with 401.
    async with _client(url, transport) as client:
        page = await client.broadcasts.list(start_date="2026-12-02T10:00:00+07:00", query="a b/c")
    assert page.response is not None and page.response.status_code == 200


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_lost_answer_is_unknown_and_never_resent(
    transport: str, url: str, box: Sandbox
) -> None:
    box.set_faults(FaultConfig(seed=3, lost_response=1.0, scope="send"))
    before = len(box.messages())
    try:
        async with _client(url, transport, max_retries=3) as client:
            tpl = await client.templates.find("order_update", language="id")
            msg = messages.text(TO, ["Budi", "INV-8"], template=tpl, channel="c")
            msg = msg.model_copy(
                update={"channel_integration_id": "56b60c3c-0123-46af-958b-32f3ad12ee37"}
            )
            with pytest.raises(DeliveryUnknownError):
                await client.broadcasts.send_direct(msg)
    finally:
        box.set_faults(FaultConfig())
    assert len(box.messages()) == before + 1  # stored once, not sent again


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refused_connection_is_not_sent_and_retried(transport: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with _client(f"http://127.0.0.1:{port}", transport, max_retries=2) as client:
        with pytest.raises(APIConnectionError, match=r"could not reach Qontak.*after 3 attempts"):
            await client.channels.list()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_keep_alive_pool_holds_the_whole_concurrency(transport: str, box: Sandbox) -> None:
    held = ConnectionLog(box.app, hold=0.05)
    in_flight = 30  # above httpx's default keep-alive pool of 20
    with serve(held) as base:
        async with _client(base, transport, max_connections=in_flight) as client:
            for _ in range(2):
                await asyncio.gather(*(client.channels.list() for _ in range(in_flight)))
    first, second = held.ports[:in_flight], held.ports[in_flight:]
    assert len(set(first)) == in_flight  # the burst really needed that many connections
    assert set(second) <= set(first)  # and the second burst opened none


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_compressed_answer_is_decoded(transport: str) -> None:
    body = gzip.compress(json.dumps({"status": "success", "data": [], "meta": {}}).encode())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    with serve(app) as base:
        async with _client(base, transport) as client:
            page = await client.channels.list()
    assert list(page) == []
    assert page.response is not None and page.response.envelope["status"] == "success"


async def test_auto_picks_aiohttp_on_asyncio(url: str) -> None:
    async with _client(url, "auto") as client:
        await client.channels.list()
        inner = client._http._transport.inner  # type: ignore[attr-defined]
    assert type(inner).__module__ == "qontak._http"
    assert "aiohttp" in type(inner).__mro__[1].__module__


def test_pool_options_are_checked() -> None:
    base = {"base_url": "http://127.0.0.1:9", "env_file": None}
    for bad in (0, -1, True, 2.5, "8"):
        with pytest.raises(ConfigurationError) as err:
            AsyncQontak("id", "secret", max_connections=bad, **base)  # type: ignore[arg-type]
        assert err.value.setting == "max_connections"
        with pytest.raises(ConfigurationError):
            Qontak("id", "secret", max_connections=bad, **base)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as err:
        AsyncQontak("id", "secret", http_transport="curl", **base)  # type: ignore[arg-type]
    assert err.value.setting == "http_transport"
    with pytest.raises(ConfigurationError, match="http_client"):
        Qontak("id", "secret", max_connections=4, http_client=httpx.Client(), **base)


# -- the in-process sync transport --------------------------------------------------------------
def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def test_in_process_client_runs_in_the_callers_thread_and_leaves_nothing() -> None:
    before = _threads()
    with sandbox_client() as (client, _):
        client.channels.list()
        assert _threads() == before  # no helper thread for a plain call

        async def from_async_code() -> int:
            return len(client.channels.list())

        assert asyncio.run(from_async_code()) >= 1  # served by a helper thread
    assert _threads() == before


def test_in_process_client_serves_several_threads() -> None:
    with sandbox_client(rate_limits=False) as (client, box):
        channel = client.channels.list()[0]
        tpl = client.templates.find("order_update", language="id")

        def send(i: int) -> str:
            msg = messages.text(TO, ["Budi", f"INV-{i}"], template=tpl, channel=channel)
            return client.broadcasts.send_direct(msg).id

        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(send, range(20)))
        assert sorted(ids) == sorted(m["broadcast_id"] for m in box.messages())
