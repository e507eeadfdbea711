"""Read endpoints: paths, envelopes, filters and pagination as documented."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qontak.sandbox import Sandbox

from .conftest import BASE, CHANNEL_ID, FakeClock
from .examples import TEXT

NOT_FOUND = {"status": "error", "error": {"code": 404, "messages": ["Resource not found."]}}
TEMPLATE_KEYS = [
    "id", "organization_id", "name", "language", "header", "body", "footer", "buttons",
    "status", "category", "quality_rating", "quality_rating_text", "type",
]  # fmt: skip


def _data(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


def _pagination(response: httpx.Response) -> dict[str, Any]:
    meta: dict[str, Any] = response.json()["meta"]["pagination"]
    assert set(meta) == {"cursor", "offset", "limit", "total", "target_offset"}
    assert set(meta["cursor"]) == {"next", "prev", "pit"}
    return meta


def test_integrations_list_and_filter(client: httpx.Client, sandbox: Sandbox) -> None:
    response = client.get(BASE + "/integrations", params={"target_channel": "wa_cloud"})
    [channel] = _data(response)
    assert channel["id"] == CHANNEL_ID
    assert list(channel) == [
        "id", "target_channel", "webhook", "settings", "organization_id", "created_at",
        "is_active",
    ]  # fmt: skip
    assert channel["settings"]["account_name"] == "Qontak Sandbox"
    assert _pagination(response)["total"] == 1
    sandbox.add_channel(target_channel="wa")
    assert len(_data(client.get(BASE + "/integrations"))) == 2
    assert _data(client.get(BASE + "/integrations", params={"target_channel": "email"})) == []


def test_integration_detail_and_404(client: httpx.Client) -> None:
    assert _data(client.get(f"{BASE}/integrations/{CHANNEL_ID}"))["id"] == CHANNEL_ID
    missing = client.get(BASE + "/integrations/nope")
    assert (missing.status_code, missing.json()) == (404, NOT_FOUND)


def test_templates_are_seeded_in_both_languages(client: httpx.Client) -> None:
    templates = _data(client.get(BASE + "/templates/whatsapp"))
    assert all(list(t) == TEMPLATE_KEYS for t in templates)
    names = {(t["name"], t["language"]) for t in templates}
    kinds = ["login_otp", "order_update", "promo_image", "invoice_document", "product_video",
             "cta_url", "cta_phone", "pending_promo", "rejected_promo"]  # fmt: skip
    assert {(k, lang) for k in kinds for lang in ("id", "en")} <= names
    otp = next(t for t in templates if t["name"] == "login_otp" and t["language"] == "en")
    assert otp["body"] == (
        "*{{1}}* is your verification code. For your security, do not share this code."
    )
    assert otp["footer"] == "This code expires in 10 minutes."
    assert otp["category"] == "AUTHENTICATION"
    [button] = otp["buttons"]
    assert (button["type"], button["text"]) == ("URL", "Copy code")
    assert button["url"].endswith("{{1}}")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"query": "otp"}, {"login_otp"}),
        ({"status": "PENDING"}, {"pending_promo"}),
        ({"statuses[]": ["PENDING", "REJECTED"]}, {"pending_promo", "rejected_promo"}),
        ({"category[]": "AUTHENTICATION"}, {"login_otp"}),
        (
            {"category[]": "UTILITY", "excluded_category[]": "MARKETING"},
            {"order_update", "invoice_document", "cta_phone", "welcome_message"},
        ),
        ({"hsm_chat": "true"}, set()),
    ],
)
def test_template_filters(client: httpx.Client, params: dict[str, Any], expected: set[str]) -> None:
    templates = _data(client.get(BASE + "/templates/whatsapp", params=params))
    assert {t["name"] for t in templates} == expected


def test_template_detail_and_404(client: httpx.Client) -> None:
    template_id = TEXT["message_template_id"]
    assert _data(client.get(f"{BASE}/templates/{template_id}/whatsapp"))["name"] == "order_update"
    missing = client.get(BASE + "/templates/unknown/whatsapp")
    assert (missing.status_code, missing.json()) == (404, NOT_FOUND)


def test_offset_is_a_one_based_page_index(client: httpx.Client) -> None:
    everything = _data(client.get(BASE + "/templates/whatsapp"))
    total = len(everything)
    page1 = client.get(BASE + "/templates/whatsapp", params={"limit": 3})
    page2 = client.get(BASE + "/templates/whatsapp", params={"limit": 3, "offset": 2})
    assert _data(page1) == everything[:3]
    assert _data(page2) == everything[3:6]
    meta = _pagination(page2)
    assert (meta["offset"], meta["limit"], meta["total"], meta["target_offset"]) == (
        2,
        3,
        total,
        0,
    )
    zero = client.get(BASE + "/templates/whatsapp", params={"limit": 3, "offset": 0})
    assert _data(zero) == everything[:3]


def test_cursors_walk_every_page(client: httpx.Client) -> None:
    everything = _data(client.get(BASE + "/templates/whatsapp"))
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 4}
    while True:
        response = client.get(BASE + "/templates/whatsapp", params=params)
        seen.extend(_data(response))
        cursor = _pagination(response)["cursor"]
        if cursor["next"] is None:
            break
        params = {"limit": 4, "cursor": cursor["next"]}
    assert seen == everything
    back = client.get(
        BASE + "/templates/whatsapp",
        params={"limit": 4, "cursor": cursor["prev"], "cursor_direction": "before"},
    )
    last_page_start = (len(everything) - 1) // 4 * 4
    assert _data(back) == everything[last_page_start - 4 : last_page_start]


@pytest.mark.parametrize("params", [{"limit": "x"}, {"limit": 0}, {"cursor": "%%%"}])
def test_bad_pagination_is_422(client: httpx.Client, params: dict[str, Any]) -> None:
    response = client.get(BASE + "/templates/whatsapp", params=params)
    assert response.status_code == 422
    assert response.json()["status"] == "error"


def test_categories_and_languages(client: httpx.Client) -> None:
    categories = _data(client.get(BASE + "/templates/category"))
    assert {"name": "Account Update", "value": "ACCOUNT_UPDATE"} in categories
    language = _data(client.get(BASE + "/templates/language"))
    assert {"name": "Indonesian", "value": "id"} in language
    response = client.get(BASE + "/templates/languages", params={"limit": 10})
    assert len(_data(response)) == 10
    assert _pagination(response)["total"] == 63
    found = _data(client.get(BASE + "/templates/languages", params={"query": "indo"}))
    assert [x["code"] for x in found] == ["id"]


def _send(client: httpx.Client, clock: FakeClock, **changes: Any) -> str:
    clock.advance(1)
    response = client.post(BASE + "/broadcasts/whatsapp/direct", json={**TEXT, **changes})
    assert response.status_code == 201
    broadcast_id: str = response.json()["data"]["id"]
    return broadcast_id


def test_broadcast_list_newest_first_with_date_filters(
    client: httpx.Client, clock: FakeClock
) -> None:
    first = _send(client, clock, name="first")
    clock.advance(86400)
    second = _send(client, clock, name="second")
    response = client.get(BASE + "/broadcasts/whatsapp")
    assert [b["id"] for b in _data(response)] == [second, first]
    assert _pagination(response)["total"] == 2
    day_one = _data(client.get(BASE + "/broadcasts/whatsapp"))[1]["created_at"][:10]
    only_first = client.get(
        BASE + "/broadcasts/whatsapp", params={"start_date": day_one, "end_date": day_one}
    )
    assert [b["id"] for b in _data(only_first)] == [first]
    asc = client.get(BASE + "/broadcasts/whatsapp", params={"order_direction": "asc"})
    assert [b["id"] for b in _data(asc)] == [first, second]
    named = client.get(BASE + "/broadcasts/whatsapp", params={"query": "sec"})
    assert [b["id"] for b in _data(named)] == [second]
    bad = client.get(BASE + "/broadcasts/whatsapp", params={"start_date": "someday"})
    assert bad.status_code == 422


def test_broadcast_detail_and_log_404(client: httpx.Client) -> None:
    for path in ("/broadcasts/nope/whatsapp", "/broadcasts/nope/whatsapp/log"):
        response = client.get(BASE + path)
        assert (response.status_code, response.json()) == (404, NOT_FOUND)


def test_upload_stores_the_file_and_serves_it(client: httpx.Client) -> None:
    content = b"%PDF-1.4 sandbox"
    response = client.post(
        BASE + "/file_uploader", files={"file": ("invoice 01.pdf", content, "application/pdf")}
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["filename"] == "invoice 01.pdf"
    assert data["url"].startswith("http://sandbox.local/_sandbox/files/")
    served = client.get(data["url"])
    assert served.status_code == 200
    assert served.content == content
    assert served.headers["content-type"] == "application/pdf"


def test_upload_without_a_file_is_422(client: httpx.Client) -> None:
    response = client.post(BASE + "/file_uploader", data={"other": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["messages"] == ["file is missing"]


def test_uploaded_url_works_as_a_header_through_real_uvicorn(
    live: httpx.Client, sandbox: Sandbox, clock: FakeClock
) -> None:
    uploaded = live.post(
        BASE + "/file_uploader", files={"file": ("promo.png", b"\x89PNG", "image/png")}
    ).json()["data"]
    assert uploaded["url"].startswith(str(live.base_url).rstrip("/"))
    assert live.get(uploaded["url"]).content == b"\x89PNG"
    payload = {
        **TEXT,
        "message_template_id": "34d95207-0b48-4ce0-b589-2b7c1519d457",
        "parameters": {
            "header": {
                "format": "IMAGE",
                "params": [
                    {"key": "url", "value": uploaded["url"]},
                    {"key": "filename", "value": "promo.png"},
                ],
            }
        },
    }
    assert live.post(BASE + "/broadcasts/whatsapp/direct", json=payload).status_code == 201
    assert sandbox.messages()[0]["rendered"]["header"]["url"] == uploaded["url"]
