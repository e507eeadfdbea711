"""What goes on the wire: method, path, query, signed headers and body for each endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from qontak import Broadcast, DeliveryUnknownError, QontakClient, ValidationError, messages
from qontak.models import Template

from ..conftest import CLIENT_ID, expected_signature

FIXTURES = Path(__file__).parent.parent / "fixtures" / "node_readme"

TEMPLATE = {
    "id": "d3e1083c-66ea-410b-b807-1d84182ffa82",
    "organization_id": "org",
    "name": "order_update",
    "language": "id",
    "header": None,
    "body": "Halo {{1}}, lagu favoritmu {{2}} sudah tersedia.",
    "footer": None,
    "buttons": [],
    "status": "APPROVED",
    "category": "MARKETING",
    "quality_rating": None,
    "quality_rating_text": "Neutral",
    "type": "campaign",
    "brand_new_field": {"kept": True},
}


def envelope(data: Any, **meta: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "success", "data": data}
    if meta:
        body["meta"] = meta
    return body


def test_every_request_is_signed_over_its_exact_path_and_query(make_client, server) -> None:
    client = make_client()
    client.channels.list()
    client.templates.list(statuses=["APPROVED", "PENDING"], query="a b", hsm_chat=False)
    for request in server.requests:
        raw = request.url.raw_path.decode()
        date = request.headers["date"]
        sig = expected_signature(server.secret, request.method, raw, date)
        assert request.headers["authorization"] == (
            f'hmac username="{CLIENT_ID}", algorithm="hmac-sha256", '
            f'headers="date request-line", signature="{sig}"'
        )
        assert date.endswith(" GMT")
    assert (
        server.requests[0].url.raw_path == b"/qontak/chat/v1/integrations?target_channel=wa_cloud"
    )
    assert server.requests[1].url.raw_path == (
        b"/qontak/chat/v1/templates/whatsapp?query=a%20b&statuses[]=APPROVED"
        b"&statuses[]=PENDING&hsm_chat=false"
    )


def test_channel_list_and_detail(make_client, server) -> None:
    item = {
        "id": "56b60c3c-0123-46af-958b-32f3ad12ee37",
        "target_channel": "wa_cloud",
        "webhook": "w",
        "settings": {"account_name": "Toko Budi", "phone_number": "6281100000000", "pin": "9999"},
        "organization_id": "org",
        "created_at": "2024-01-16T03:35:55.634Z",
        "is_active": True,
    }
    server.replies = [
        httpx.Response(
            200, json=envelope([item], pagination={"offset": 1, "limit": 10, "total": 1})
        ),
        httpx.Response(200, json=envelope(item), headers={"x-request-id": "req-42"}),
    ]
    client = make_client()
    page = client.channels.list()
    assert page[0].id == item["id"] and page[0].account_name == "Toko Budi"
    assert "9999" not in repr(page[0])  # settings may hold secrets
    channel = client.channels.get(item["id"])
    assert server.requests[1].url.path == f"/qontak/chat/v1/integrations/{item['id']}"
    assert channel.phone_number == "6281100000000"
    assert channel.response is not None and channel.response.request_id == "req-42"


def test_template_detail_keeps_unknown_fields_and_envelope(make_client, server) -> None:
    server.replies = [httpx.Response(200, json=envelope(TEMPLATE))]
    t = make_client().templates.get(TEMPLATE["id"])
    assert server.requests[0].method == "GET"
    assert server.requests[0].url.path == f"/qontak/chat/v1/templates/{TEMPLATE['id']}/whatsapp"
    assert t.body_placeholders == ["1", "2"]
    assert t.model_extra == {"brand_new_field": {"kept": True}}
    assert t.response is not None and t.response.envelope["data"]["name"] == "order_update"


def test_template_iteration_follows_offset_pages(make_client, server) -> None:
    def page(n: int, names: list[str]) -> httpx.Response:
        data = [{**TEMPLATE, "id": f"id-{x}", "name": x} for x in names]
        return httpx.Response(
            200, json=envelope(data, pagination={"offset": n, "limit": 2, "total": 5})
        )

    server.replies = [page(1, ["a", "b"]), page(2, ["c", "d"]), page(3, ["e"])]
    names = [t.name for t in make_client().templates.iter(limit=2)]
    assert names == ["a", "b", "c", "d", "e"]
    offsets = [r.url.params.get("offset") for r in server.requests]
    assert offsets == [None, "2", "3"]


def test_log_follows_cursor_pages(make_client, server) -> None:
    row = {"id": "r1", "contact_phone_number": "6281234567890", "status": "read"}
    server.replies = [
        httpx.Response(
            200, json=envelope([row], pagination={"cursor": {"next": "CUR2"}, "limit": 1})
        ),
        httpx.Response(
            200, json=envelope([{**row, "id": "r2"}], pagination={"cursor": {"next": None}})
        ),
    ]
    rows = make_client().broadcasts.log("b-1")
    assert [r.id for r in rows] == ["r1", "r2"]
    assert server.requests[1].url.raw_path == (
        b"/qontak/chat/v1/broadcasts/b-1/whatsapp/log?cursor=CUR2&cursor_direction=after"
    )


def test_find_template_by_name_and_language(make_client, server) -> None:
    en = {**TEMPLATE, "id": "t-en", "language": "en"}
    server.default = lambda r: httpx.Response(200, json=envelope([TEMPLATE, en]))
    client = make_client()
    assert client.templates.find("order_update", language="en").id == "t-en"
    with pytest.raises(Exception, match="language"):
        client.templates.find("order_update")


def test_send_direct_posts_the_builder_json_and_returns_the_broadcast(make_client, server) -> None:
    broadcast = {"id": "bc-1", "name": "Test User", "message_status_count": {"pending": 1}}
    server.replies = [httpx.Response(201, json=envelope(broadcast))]
    template = Template.model_validate(TEMPLATE)
    msg = messages.text(
        "0812-3456-7890",
        {"name": "Test User", "lagu": "lagu nusantara"},
        name="Test User",
        template=template,
        channel="56b60c3c-0123-46af-958b-32f3ad12ee37",
    )
    sent = make_client().broadcasts.send_direct(msg)
    assert isinstance(sent, Broadcast) and sent.id == "bc-1"
    request = server.requests[0]
    assert request.method == "POST"
    assert request.url.raw_path == b"/qontak/chat/v1/broadcasts/whatsapp/direct"
    assert request.headers["content-type"] == "application/json"
    expected = json.loads((FIXTURES / "text_with_variable.json").read_text())
    expected["message_template_id"] = TEMPLATE["id"]
    assert request.content.decode() == json.dumps(expected, ensure_ascii=False)


@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_node_readme_dicts_go_on_the_wire_unchanged(fixture: str, make_client, server) -> None:
    """The Node README's dicts, sent through the porting client, are posted byte for byte."""
    data = json.loads((FIXTURES / f"{fixture}.json").read_text())
    server.replies = [httpx.Response(201, json=envelope({"id": "bc"}))]
    api = QontakClient(
        CLIENT_ID,
        server.secret,
        base_url="https://api.mekari.com",
        http_client=httpx.Client(transport=server.transport()),
        env_file=None,
    )
    # Templates here are ids from the README, unknown to this server: skip the fetch.
    sent = api.client.broadcasts.send_direct(data, validate=False)
    assert sent.id == "bc"
    assert server.requests[-1].content.decode() == json.dumps(data, ensure_ascii=False)


def test_compat_client_calls_the_node_paths(server) -> None:
    server.default = lambda r: httpx.Response(200, json=envelope([]))
    api = QontakClient(
        CLIENT_ID,
        server.secret,
        base_url="https://api.mekari.com",
        http_client=httpx.Client(transport=server.transport()),
        env_file=None,
    )
    assert api.template.get_list_whatsapp_template() == {"status": "success", "data": []}
    api.template.get_whatsapp_template_by_id("t1")
    api.template.get_list_template_category()
    api.template.get_list_template_language()
    api.template.get_list_template_languages({"limit": 5})
    api.integration.get_integration_list({"target_channel": "wa_cloud"})
    api.integration.get_integration_by_id("i1")
    api.broadcast.get_broadcast_log("b1")
    api.broadcast.get_broadcast_detail("b1")
    api.broadcast.get_broadcast_list({"limit": 1})
    paths = [r.url.raw_path.decode() for r in server.requests]
    assert paths == [
        "/qontak/chat/v1/templates/whatsapp",
        "/qontak/chat/v1/templates/t1/whatsapp",
        "/qontak/chat/v1/templates/category",
        "/qontak/chat/v1/templates/language",
        "/qontak/chat/v1/templates/languages?limit=5",
        "/qontak/chat/v1/integrations?target_channel=wa_cloud",
        "/qontak/chat/v1/integrations/i1",
        "/qontak/chat/v1/broadcasts/b1/whatsapp/log",
        "/qontak/chat/v1/broadcasts/b1/whatsapp",
        "/qontak/chat/v1/broadcasts/whatsapp?limit=1",
    ]


def test_compat_write_methods_send_their_bodies_once(server) -> None:
    server.default = lambda r: httpx.Response(200, json=envelope({}))
    api = QontakClient(
        CLIENT_ID,
        server.secret,
        base_url="https://api.mekari.com",
        http_client=httpx.Client(transport=server.transport()),
        env_file=None,
    )
    api.template.create_whatsapp_template({"name": "t"})
    api.template.create_whatsapp_hsm_template({"name": "h"})
    api.contact.get_contacts_list("cl1")
    api.contact.get_contact_list_detail("cl1")
    api.contact.override_contact_name({"enabled": True})
    api.contact_block.block_contact({"room_id": "r", "reason": "spam"})
    api.contact_block.remove_block_contact({"room_id": "r"}, "c1")
    api.user.get_list_user({"limit": 2})
    calls = [(r.method, r.url.raw_path.decode()) for r in server.requests]
    assert calls == [
        ("POST", "/qontak/chat/v1/templates/whatsapp"),
        ("POST", "/qontak/chat/v1/templates/whatsapp/hsm_chat"),
        ("GET", "/qontak/chat/v1/contacts/contact_lists/contacts/cl1"),
        ("GET", "/qontak/chat/v1/contacts/contact_lists/cl1"),
        ("PUT", "/qontak/chat/v1/contacts/contact_lists/override_contact_by_upload"),
        ("POST", "/qontak/chat/v1/contact_block"),
        ("DELETE", "/qontak/chat/v1/contact_block/c1"),
        ("GET", "/qontak/chat/v1/users?limit=2"),
    ]
    assert server.bodies()[4] == {"enabled": True}
    assert server.bodies()[6] == {"room_id": "r"}
    # a write that timed out is not repeated
    server.replies = [httpx.ReadTimeout("t")]
    with pytest.raises(DeliveryUnknownError, match="request may or may not have taken effect"):
        api.contact_block.block_contact({"room_id": "r", "reason": "x"})
    assert len(server.requests) == 9


def test_file_upload_is_multipart_with_file_field(make_client, server, tmp_path) -> None:
    f = tmp_path / "invoice.pdf"
    f.write_bytes(b"%PDF-1.4 test")
    server.replies = [
        httpx.Response(201, json=envelope({"filename": "invoice.pdf", "url": "https://cdn/x.pdf"}))
    ]
    uploaded = make_client().file_uploader.upload(f)
    assert uploaded.url == "https://cdn/x.pdf"
    request = server.requests[0]
    assert request.url.raw_path == b"/qontak/chat/v1/file_uploader"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="invoice.pdf"' in request.content
    assert b"%PDF-1.4 test" in request.content


def test_ids_are_escaped_so_they_cannot_change_the_path(make_client, server) -> None:
    server.replies = [httpx.Response(200, json=envelope({**TEMPLATE}))]
    make_client().templates.get("../integrations?x=1")
    assert server.requests[0].url.raw_path == (
        b"/qontak/chat/v1/templates/..%2Fintegrations%3Fx%3D1/whatsapp"
    )


def test_request_id_falls_back_to_meta_log_id(make_client, server) -> None:
    server.replies = [
        httpx.Response(200, json={"status": "success", "data": TEMPLATE, "meta": {"log_id": "L-7"}})
    ]
    template = make_client().templates.get(TEMPLATE["id"])
    assert template.response is not None and template.response.request_id == "L-7"


def test_template_fetched_for_validation_is_reused_not_fetched_per_send(
    make_client, server, clock
) -> None:
    server.default = lambda r: httpx.Response(
        201 if r.method == "POST" else 200,
        json=envelope({"id": "bc"} if r.method == "POST" else TEMPLATE),
    )
    client = make_client()
    msg = messages.text(
        "0812-3456-7890", ["Budi", "INV-1"], template=TEMPLATE["id"], channel="ch", language="id"
    )
    client.broadcasts.send_direct(msg)
    client.broadcasts.send_direct(msg)
    assert [r.method for r in server.requests] == ["GET", "POST", "POST"]
    clock.now += 301  # the cache trusts a template for five minutes
    client.broadcasts.send_direct(msg)
    assert [r.method for r in server.requests][3:] == ["GET", "POST"]


def test_the_size_rule_measures_the_bytes_that_are_posted(make_client, server) -> None:
    """The body limit is checked on the encoded body itself (encoded once, then checked
    and posted): one at the limit goes out byte for byte, one byte more is refused
    before any request."""
    from qontak.models import HeaderParam, TemplateHeader
    from qontak.validation import MAX_REQUEST_BYTES, request_size

    server.default = lambda request: httpx.Response(201, json=envelope({"id": "bc-1"}))
    template = Template(
        id="t-image",
        name="promo",
        language="id",
        header=TemplateHeader(format="IMAGE"),
        body="Hi",
        status="APPROVED",
        category="MARKETING",
    )

    def message(size: int) -> Any:
        """An image message of exactly ``size`` bytes: extra header params (no rule of
        their own) filled with two-byte characters, each within the per-text limit."""
        msg = messages.image(
            "0812-3456-7890", "https://x.co/a.jpg", template=template, channel="c-1", name="B"
        )
        extra = [HeaderParam(key=f"n{i}", value="") for i in range(9)]
        msg.parameters.header.params += extra
        left = size - request_size(msg)
        for param in extra:
            chars = min(65_536, left // 2)
            param.value = "é" * chars
            left -= 2 * chars
        extra[-1].value += "x" * left
        assert request_size(msg) == size
        return msg

    client = make_client()
    client.broadcasts.send_direct(message(MAX_REQUEST_BYTES))
    [request] = server.requests
    assert len(request.content) == MAX_REQUEST_BYTES
    assert json.loads(request.content)["parameters"]["header"]["params"][2]["value"][:2] == "éé"

    with pytest.raises(ValidationError) as caught:
        client.broadcasts.send_direct(message(MAX_REQUEST_BYTES + 1))
    assert (caught.value.field, caught.value.code) == ("message", "too_large")
    assert len(server.requests) == 1


def test_every_attempt_posts_the_same_bytes_under_a_fresh_date_and_signature(
    make_client, server, clock
) -> None:
    """The body is encoded once, before the first attempt; what changes per attempt (the
    Date, and the signature over it) is computed again for each one. The server checks
    every signature against its own Date, so a stale one would be a 401."""
    msg = messages.text("0812-3456-7890", ["Budi"], template="t-1", channel="c-1", language="id")
    server.replies = [
        httpx.ConnectError("refused"),  # provably not sent: a send may be retried
        httpx.Response(429, headers={"Retry-After": "3"}, json={"message": "slow down"}),
    ]
    server.default = lambda request: httpx.Response(201, json=envelope({"id": "bc-1"}))
    client = make_client(max_retries=3)
    client.broadcasts.send_direct(msg, validate=False)
    posts = [r for r in server.requests if r.method == "POST"]
    assert len(posts) == 3
    assert len({r.content for r in posts}) == 1
    assert json.loads(posts[0].content)["to_name"] == msg.to_name
    dates = [r.headers["date"] for r in posts]
    assert dates[1] != dates[2], "an attempt after a 3-second wait reused the old Date"
    for r in posts:
        want = expected_signature(server.secret, "POST", r.url.raw_path.decode(), r.headers["date"])
        assert want in r.headers["authorization"]

    # An idempotent read retried after a 503: no body on any attempt, a fresh Date each time.
    server.replies = [
        httpx.Response(503, headers={"Retry-After": "2"}, json={"message": "busy"}),
    ]
    server.default = None
    before = len(server.requests)
    client.templates.list()
    gets = server.requests[before:]
    assert [r.method for r in gets] == ["GET", "GET"]
    assert [r.content for r in gets] == [b"", b""]
    assert gets[0].headers["date"] != gets[1].headers["date"]
