"""The SDK end to end against the real sandbox on loopback: every kind, sent and read."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from qontak import (
    AsyncQontak,
    DeliveryUnknownError,
    Qontak,
    UnprocessableEntityError,
    ValidationError,
    messages,
)
from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, FaultConfig, Sandbox

TO = "0812-3456-7890"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(faults=FaultConfig())
    yield box
    box.close()


@pytest.fixture(scope="module")
def url(sandbox: Sandbox) -> Iterator[str]:
    with sandbox.run_in_thread() as base:
        yield base


@pytest.fixture
def client(url: str, sandbox: Sandbox) -> Iterator[Qontak]:
    sandbox.set_faults(FaultConfig())
    with Qontak(
        SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, base_url=url, env_file=None, rate_limits=False
    ) as c:
        yield c


def build_all(client: Qontak) -> dict[str, object]:
    channel = client.channels.list()[0]

    def t(name: str):
        return client.templates.find(name, language="id")

    return {
        "otp": messages.otp(TO, "123456", template=t("login_otp"), channel=channel, name="Budi"),
        "text": messages.text(
            TO, {"name": "Budi", "order": "INV-1"}, template=t("order_update"), channel=channel
        ),
        "image": messages.image(
            TO, "https://cdn.qontak.com/x/promo.jpeg", template=t("promo_image"), channel=channel
        ),
        "document": messages.document(
            TO,
            "https://cdn.qontak.com/x/invoice.pdf",
            template=t("invoice_document"),
            channel=channel,
        ),
        "video": messages.video(
            TO,
            "https://cdn.qontak.com/x/clip.mp4",
            variables=["Valent", "Qontak", "Qontak"],
            template=t("product_video"),
            channel=channel,
        ),
        "cta_url": messages.cta_url(
            TO, "fitur/personalisasi-report-sales", template=t("cta_url"), channel=channel
        ),
        "cta_phone": messages.cta_phone(TO, template=t("cta_phone"), channel=channel),
    }


def test_every_kind_is_accepted_and_reaches_read(client: Qontak, sandbox: Sandbox) -> None:
    before = len(sandbox.messages())
    sent = {kind: client.broadcasts.send_direct(msg) for kind, msg in build_all(client).items()}
    sandbox.advance(10)
    for kind, broadcast in sent.items():
        rows = client.broadcasts.log(broadcast.id)
        assert [r.status for r in rows] == ["read"], kind
        assert rows[0].contact_phone_number == "6281234567890"
        assert rows[0].whatsapp_message_id and rows[0].whatsapp_message_id.startswith("wamid.")
        assert client.broadcasts.get(broadcast.id).id == broadcast.id
    truth = sandbox.messages()[before:]
    assert len(truth) == len(sent)
    assert {m["broadcast_id"] for m in truth} == {b.id for b in sent.values()}


def test_preview_shows_what_the_recipient_sees(client: Qontak) -> None:
    text = client.preview(build_all(client)["cta_url"])
    assert "https://qontak.com/fitur/personalisasi-report-sales" in text


def test_message_built_from_ids_is_validated_against_the_fetched_template(
    client: Qontak, sandbox: Sandbox
) -> None:
    before = len(sandbox.messages())
    tpl = client.templates.find("order_update", language="id")
    channel = client.channels.list()[0]
    msg = messages.text(TO, ["only one"], template=tpl.id, channel=channel.id, language="id")
    with pytest.raises(ValidationError, match=r"parameters\.body"):
        client.broadcasts.send_direct(msg)
    assert len(sandbox.messages()) == before


def test_pending_template_is_refused_locally_and_by_the_server(
    client: Qontak, sandbox: Sandbox
) -> None:
    tpl = client.templates.find("pending_promo", language="id")
    channel = client.channels.list()[0]
    msg = messages.template_message(TO, template=tpl, channel=channel)
    with pytest.raises(ValidationError, match="PENDING"):
        client.broadcasts.send_direct(msg)
    # Without the client-side check the sandbox refuses it too, in Qontak's words.
    with pytest.raises(UnprocessableEntityError):
        client.broadcasts.send_direct(msg, validate=False)


def test_lost_response_is_unknown_then_reconciled(client: Qontak, sandbox: Sandbox) -> None:
    msg = build_all(client)["text"]
    sandbox.set_faults(FaultConfig(seed=1, lost_response=1.0, scope="send"))
    before = len(sandbox.messages())
    with pytest.raises(DeliveryUnknownError) as info:
        client.broadcasts.send_direct(msg)
    sandbox.set_faults(FaultConfig())
    assert len(sandbox.messages()) == before + 1  # it was accepted, exactly once
    err = info.value
    found = client.broadcasts.find_sent(
        err.to_number or "", message_template_id=err.message_template_id, since=err.sent_at
    )
    assert sandbox.messages()[-1]["broadcast_id"] in {b.id for b in found}


def test_template_categories_and_languages_are_typed(client: Qontak) -> None:
    languages = client.templates.languages()
    assert "id" in languages and all(isinstance(x, str) and "{" not in x for x in languages)
    assert any(c.value == "ACCOUNT_UPDATE" for c in client.templates.categories())


def test_file_upload_returns_a_url_the_sandbox_serves(client: Qontak, tmp_path) -> None:
    f = tmp_path / "menu.pdf"
    f.write_bytes(b"%PDF-1.4 sandbox")
    uploaded = client.file_uploader.upload(f)
    assert httpx.get(uploaded.url).content == b"%PDF-1.4 sandbox"


@pytest.mark.anyio
async def test_async_client_in_process_through_asgi(sandbox: Sandbox) -> None:
    transport = httpx.ASGITransport(app=sandbox.app)
    async with AsyncQontak(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        base_url="http://sandbox.local",
        http_client=httpx.AsyncClient(transport=transport),
        env_file=None,
    ) as client:
        channel = (await client.channels.list())[0]
        tpl = await client.templates.find("order_update", language="id")
        msg = messages.text(TO, ["Budi", "INV-2"], template=tpl, channel=channel)
        sent = await client.broadcasts.send_direct(msg)
        sandbox.advance(10)
        rows = await client.broadcasts.wait(sent.id, timeout=5, interval=0.01)
    assert rows[0].status == "read"


def test_wrong_secret_is_an_authentication_error(url: str) -> None:
    from qontak import AuthenticationError

    with (
        Qontak(SANDBOX_CLIENT_ID, "wrong", base_url=url, env_file=None) as c,
        pytest.raises(AuthenticationError, match="Unauthorized"),
    ):
        c.channels.list()
