"""AsyncQontak makes the same decisions as Qontak (same pipeline, async I/O loop)."""

from __future__ import annotations

import httpx
import pytest

from qontak import AsyncQontak, DeliveryUnknownError, InternalServerError, ValidationError, messages
from qontak.sandbox import FaultConfig
from qontak.testing import async_sandbox_client

from ..conftest import CLIENT_ID, FakeClock, RecordingServer

pytestmark = pytest.mark.anyio

MSG = {
    "to_name": "Budi",
    "to_number": "0812-3456-7890",
    "message_template_id": "tpl",
    "channel_integration_id": "ch",
    "language": {"code": "id"},
    "parameters": {},
}


def make(server: RecordingServer, clock: FakeClock, **kw) -> AsyncQontak:
    return AsyncQontak(
        CLIENT_ID,
        server.secret,
        base_url="https://api.mekari.com",
        http_client=httpx.AsyncClient(transport=server.transport()),
        clock=clock,
        sleep=clock.asleep,
        env_file=None,
        **kw,
    )


async def test_async_send_is_not_retried_after_read_timeout(server, clock) -> None:
    server.replies = [httpx.ReadTimeout("t")]
    async with make(server, clock) as client:
        with pytest.raises(DeliveryUnknownError):
            await client.broadcasts.send_direct(MSG, validate=False)
    assert len(server.requests) == 1


async def test_async_send_normalises_number_and_retries_429(server, clock) -> None:
    server.replies = [
        httpx.Response(429, headers={"X-RateLimit-Reset": "4"}),
        httpx.Response(201, json={"status": "success", "data": {"id": "bc"}}),
    ]
    async with make(server, clock) as client:
        sent = await client.broadcasts.send_direct(MSG, validate=False)
    assert sent.id == "bc"
    assert [b["to_number"] for b in server.bodies()] == ["6281234567890"] * 2
    assert sum(clock.sleeps) >= 4


async def test_async_gets_retry_5xx_then_give_up(server, clock) -> None:
    server.replies = [httpx.Response(502)] * 3
    async with make(server, clock) as client:
        with pytest.raises(InternalServerError):
            await client.channels.list()
    assert len(server.requests) == 3


async def test_async_template_iteration_and_wait(server, clock) -> None:
    tpl = {"id": "t", "name": "n", "language": "id", "body": "hi", "status": "APPROVED"}
    rows = iter(["pending", "delivered", "read"])
    server.default = lambda r: (
        httpx.Response(200, json={"status": "success", "data": [tpl]})
        if "templates" in r.url.path
        else httpx.Response(
            200, json={"status": "success", "data": [{"id": "r", "status": next(rows)}]}
        )
    )
    async with make(server, clock) as client:
        assert [t.name async for t in client.templates.iter()] == ["n"]
        final = await client.broadcasts.wait("b", interval=1.0)
    assert final[0].status == "read"
    assert clock.sleeps.count(1.0) == 2


# --- against the in-process sandbox ------------------------------------------------------------


async def test_async_validation_blocks_the_request_and_preview_renders() -> None:
    async with async_sandbox_client() as (client, sandbox):
        tpl = await client.templates.find("order_update", language="id")
        channel = (await client.channels.list())[0]
        bad = messages.text(
            "0812-3456-7890", ["only one"], template=tpl.id, channel=channel.id, language="id"
        )
        with pytest.raises(ValidationError):
            await client.broadcasts.send_direct(bad)
        good = messages.text("0812-3456-7890", ["Budi", "INV-9"], template=tpl, channel=channel)
        assert "INV-9" in await client.preview(good)
        assert sandbox.messages() == []


async def test_async_upload_with_options_and_reconcile(tmp_path) -> None:
    async with async_sandbox_client() as (client, sandbox):
        f = tmp_path / "a.pdf"
        f.write_bytes(b"%PDF-1.4 async")
        uploaded = await client.file_uploader.upload(f)
        assert uploaded.url.endswith("a.pdf")
        tpl = await client.templates.find("invoice_document", language="id")
        channel = (await client.channels.list())[0]
        msg = messages.document("0812-3456-7890", uploaded.url, template=tpl, channel=channel)
        sandbox.set_faults(FaultConfig(lost_response=1.0, scope="send"))
        quick = client.with_options(max_retries=0)
        with pytest.raises(DeliveryUnknownError) as info:
            await quick.broadcasts.send_direct(msg)
        sandbox.set_faults(FaultConfig())
        found = await client.broadcasts.find_sent(
            "0812-3456-7890", message_template_id=tpl.id, since=info.value.sent_at
        )
        assert [b.id for b in found] == [m["broadcast_id"] for m in sandbox.messages()]
