"""qontak.testing: the helpers our users put in their own tests."""

from __future__ import annotations

import pytest

from qontak import AsyncQontak, Qontak, UnprocessableEntityError, messages
from qontak.sandbox import FaultConfig, Sandbox, SandboxConfig
from qontak.testing import (  # the fixtures, as `pytest -p qontak.testing` would provide
    async_qontak_client,  # noqa: F401
    async_sandbox_client,
    qontak_client,  # noqa: F401
    qontak_sandbox,  # noqa: F401
    sandbox_client,
)

TO = "0812-3456-7890"


def test_context_manager_sends_and_reads_without_sleeping() -> None:
    with sandbox_client(config=SandboxConfig(faults=FaultConfig())) as (client, sandbox):
        channel = client.channels.list()[0]
        template = client.templates.find("order_update", language="id")
        msg = messages.text(TO, ["Budi", "INV-1"], template=template, channel=channel)
        sent = client.broadcasts.send_direct(msg)
        rows = client.broadcasts.wait(sent.id)  # the wait advances the sandbox clock
        assert [r.status for r in rows] == ["read"]
        [truth] = sandbox.messages()
        assert truth["to_number"] == "6281234567890"
        assert truth["rendered"]["body"].startswith("Halo Budi, pesanan Anda untuk INV-1")


def test_server_side_validation_reaches_the_client() -> None:
    with sandbox_client(config=SandboxConfig(faults=FaultConfig())) as (client, _):
        raw = {
            "to_name": "Budi",
            "to_number": "6281234567890",
            "message_template_id": "d3e1083c-66ea-410b-b807-1d84182ffa82",
            "channel_integration_id": "56b60c3c-0123-46af-958b-32f3ad12ee37",
            "language": {"code": "id"},
            "parameters": {"body": []},
        }
        with pytest.raises(UnprocessableEntityError) as info:
            client.broadcasts.send_direct(raw, validate=False)
        assert "Message Template has 2 variable" in str(info.value)


def test_fixtures_give_a_client_bound_to_the_sandbox(
    qontak_client: Qontak,  # noqa: F811
    qontak_sandbox: Sandbox,  # noqa: F811
) -> None:
    channel = qontak_client.channels.list()[0]
    cta = qontak_client.templates.find("cta_phone", language="en")
    sent = qontak_client.broadcasts.send_direct(
        messages.text(TO, [], template=cta, channel=channel)
    )
    qontak_sandbox.advance(3)
    assert [r.status for r in qontak_client.broadcasts.log(sent.id)] == ["read"]
    assert len(qontak_sandbox.messages()) == 1


@pytest.mark.anyio
async def test_async_context_manager() -> None:
    async with async_sandbox_client(config=SandboxConfig(faults=FaultConfig())) as (
        client,
        sandbox,
    ):
        channel = (await client.channels.list())[0]
        otp = await client.templates.find("login_otp", language="en")
        sent = await client.broadcasts.send_direct(
            messages.otp(TO, "424242", template=otp, channel=channel)
        )
        rows = await client.broadcasts.wait(sent.id)
        assert [r.status for r in rows] == ["read"]
        assert sandbox.messages()[0]["rendered"]["body"].startswith("*424242* is your")


@pytest.mark.anyio
async def test_async_fixture(
    async_qontak_client: AsyncQontak,  # noqa: F811
    qontak_sandbox: Sandbox,  # noqa: F811
) -> None:
    templates = await async_qontak_client.templates.list()
    assert {t.name for t in templates} >= {"login_otp", "product_video", "pending_promo"}
