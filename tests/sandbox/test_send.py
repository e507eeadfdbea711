"""Direct sends: documented examples are accepted and read; bad ones get Qontak's error."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from qontak.sandbox import Sandbox

from .conftest import BASE, FakeClock
from .examples import EXAMPLES, RENDERED, TEXT

SEND = BASE + "/broadcasts/whatsapp/direct"


def _log(http: httpx.Client, broadcast_id: str) -> list[dict[str, Any]]:
    response = http.get(f"{BASE}/broadcasts/{broadcast_id}/whatsapp/log")
    assert response.status_code == 200
    rows: list[dict[str, Any]] = response.json()["data"]
    return rows


def _send_and_read(http: httpx.Client, clock: FakeClock, payload: dict[str, Any]) -> str:
    response = http.post(SEND, json=payload)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "success"
    broadcast_id: str = body["data"]["id"]
    assert body["data"]["message_template"]["id"] == payload["message_template_id"]
    assert body["data"]["channel_integration_id"] == payload["channel_integration_id"]
    [row] = _log(http, broadcast_id)
    assert row["status"] == "pending"
    assert row["whatsapp_message_id"].startswith("wamid.")
    clock.advance(0.5)
    assert _log(http, broadcast_id)[0]["status"] == "sent"
    clock.advance(0.5)
    assert _log(http, broadcast_id)[0]["status"] == "delivered"
    clock.advance(1.0)
    [row] = _log(http, broadcast_id)
    assert row["status"] == "read"
    assert row["contact_phone_number"] == payload["to_number"]
    assert row["contact_full_name"] == payload["to_name"]
    assert row["whatsapp_error_message"] == "n/a"
    assert row["messages_broadcast_id"] == broadcast_id
    return broadcast_id


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_documented_example_is_accepted_and_read_in_process(
    client: httpx.Client, sandbox: Sandbox, clock: FakeClock, name: str
) -> None:
    _send_and_read(client, clock, EXAMPLES[name])
    [message] = sandbox.messages()
    assert message["status"] == "read"
    assert [h["status"] for h in message["status_history"]] == [
        "pending",
        "sent",
        "delivered",
        "read",
    ]
    for key, expected in RENDERED[name].items():
        if isinstance(expected, dict) and isinstance(message["rendered"][key], dict):
            assert expected.items() <= message["rendered"][key].items()
        else:
            assert message["rendered"][key] == expected


def test_every_documented_example_through_real_uvicorn(
    live: httpx.Client, sandbox: Sandbox, clock: FakeClock
) -> None:
    ids = [_send_and_read(live, clock, payload) for payload in EXAMPLES.values()]
    truth = sandbox.messages()
    assert [m["broadcast_id"] for m in truth] == ids
    assert {m["status"] for m in truth} == {"read"}


def test_send_response_and_broadcast_detail_shapes(client: httpx.Client, clock: FakeClock) -> None:
    sent = client.post(SEND, json=TEXT).json()["data"]
    expected_keys = [
        "id", "name", "organization_id", "channel_integration_id", "contact_list_id",
        "contact_id", "target_channel", "send_at", "execute_status", "execute_type",
        "parameters", "created_at", "message_status_count", "contact_extra",
        "message_template", "division_id", "message_broadcast_error", "sender_name",
        "sender_email", "channel_account_name", "channel_phone_number",
    ]  # fmt: skip
    assert list(sent) == expected_keys
    assert sent["message_status_count"] == {
        "failed": 0,
        "delivered": 0,
        "read": 0,
        "pending": 1,
        "sent": 0,
    }
    assert sent["parameters"]["body"] == {"1": "name", "2": "lagu"}
    clock.advance(5)
    detail = client.get(f"{BASE}/broadcasts/{sent['id']}/whatsapp").json()["data"]
    assert detail["message_status_count"]["read"] == 1
    assert "contact_list_name" in detail
    assert detail["id"] == sent["id"]


def test_log_row_shape_matches_the_openapi_example(client: httpx.Client) -> None:
    sent = client.post(SEND, json=EXAMPLES["video"]).json()["data"]
    response = client.get(f"{BASE}/broadcasts/{sent['id']}/whatsapp/log").json()
    [row] = response["data"]
    assert list(row) == [
        "id", "organization_id", "messages_broadcast_id", "contact_phone_number",
        "contact_full_name", "status", "whatsapp_message_id", "whatsapp_error_message",
        "messages_response", "messages", "created_at", "is_pacing", "channel_integration_id",
    ]  # fmt: skip
    assert row["messages"]["body"]["type"] == "body"
    assert row["messages"]["header"]["parameters"][0]["type"] == "video"
    assert response["meta"]["pagination"]["total"] == 1


def _send(client: httpx.Client, payload: Any) -> httpx.Response:
    return client.post(SEND, json=payload)


def _error(status: int, *messages: str) -> dict[str, Any]:
    return {"status": "error", "error": {"code": status, "messages": list(messages)}}


def _changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with ``path`` (dotted, list indexes allowed) set or removed."""
    payload = copy.deepcopy(base)
    *parents, last = path.split(".")
    target: Any = payload
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key: Any = int(last) if isinstance(target, list) else last
    if value is _REMOVE:
        del target[key]
    else:
        target[key] = value
    return payload


_REMOVE = object()
WHITESPACE = "cannot have new-line/tab characters or more than 4 consecutive spaces"

BAD_SENDS: list[tuple[str, dict[str, Any], int, list[str]]] = [
    ("missing to_number", _changed(TEXT, "to_number", _REMOVE), 422, ["to_number is missing"]),
    ("blank to_name", _changed(TEXT, "to_name", ""), 422, ["to_name is missing"]),
    (
        "missing template and channel",
        _changed(_changed(TEXT, "message_template_id", _REMOVE), "channel_integration_id", None),
        422,
        ["message_template_id is missing", "channel_integration_id is missing"],
    ),
    ("missing language", _changed(TEXT, "language", _REMOVE), 422, ["language is missing"]),
    ("missing language code", _changed(TEXT, "language", {}), 422, ["language.code is missing"]),
    ("missing parameters", _changed(TEXT, "parameters", _REMOVE), 422, ["parameters is missing"]),
    (
        "number as integer",
        _changed(TEXT, "to_number", 6281234567890),
        422,
        ["to_number is invalid"],
    ),
    *[
        (
            f"bad phone {number}",
            _changed(TEXT, "to_number", number),
            422,
            [
                "to_number is invalid, use digits only with the country code and no + "
                "(e.g. 6281234567890)"
            ],
        )
        for number in ("+6281234567890", "081234567890", "62 812 3456 7890", "62812-3456", "123")
    ],
    (
        "unknown channel",
        _changed(TEXT, "channel_integration_id", "00000000-0000-0000-0000-000000000000"),
        422,
        ["Couldn't find channel integration with 'id'=00000000-0000-0000-0000-000000000000"],
    ),
    (
        "unknown template",
        _changed(TEXT, "message_template_id", "11111111-1111-1111-1111-111111111111"),
        422,
        ["Couldn't find message template with 'id'=11111111-1111-1111-1111-111111111111"],
    ),
    (
        "pending template",
        _changed(TEXT, "message_template_id", "5a4db0c0-0009-4d00-8000-00000000d009"),
        422,
        ["Message template pending_promo is not approved (status: PENDING)"],
    ),
    (
        "rejected template",
        _changed(TEXT, "message_template_id", "5a4db0c0-000a-4d00-8000-00000000d00a"),
        422,
        ["Message template rejected_promo is not approved (status: REJECTED)"],
    ),
    (
        "language mismatch",
        _changed(TEXT, "language.code", "en"),
        422,
        ["Language code en does not match the message template language id"],
    ),
    (
        "too few body variables",
        _changed(TEXT, "parameters.body", TEXT["parameters"]["body"][:1]),
        422,
        ["Message Template has 2 variable, please adjust your payload."],
    ),
    (
        "too many body variables",
        _changed(
            TEXT,
            "parameters.body",
            [*TEXT["parameters"]["body"], {"key": "3", "value_text": "x", "value": "x"}],
        ),
        422,
        ["Message Template has 2 variable, please adjust your payload."],
    ),
    (
        "variables for a template without any",
        _changed(EXAMPLES["cta_phone"], "parameters.body", TEXT["parameters"]["body"]),
        422,
        ["Message Template has 0 variable, please adjust your payload."],
    ),
    (
        "wrong body keys",
        _changed(TEXT, "parameters.body.1.key", "3"),
        422,
        ["Message Template has 2 variable, please adjust your payload."],
    ),
    (
        "body item without value_text",
        _changed(TEXT, "parameters.body.0.value_text", _REMOVE),
        422,
        ["parameters.body[0].value_text is missing"],
    ),
    (
        "blank value_text",
        _changed(TEXT, "parameters.body.0.value_text", "  "),
        422,
        ["parameters.body[0].value_text can't be blank"],
    ),
    (
        "newline in value_text",
        _changed(TEXT, "parameters.body.0.value_text", "Test\nUser"),
        422,
        [f"parameters.body[0].value_text {WHITESPACE}"],
    ),
    (
        "tab in value_text",
        _changed(TEXT, "parameters.body.1.value_text", "a\tb"),
        422,
        [f"parameters.body[1].value_text {WHITESPACE}"],
    ),
    (
        "five spaces in value_text",
        _changed(TEXT, "parameters.body.0.value_text", "Test     User"),
        422,
        [f"parameters.body[0].value_text {WHITESPACE}"],
    ),
    (
        "value_text too long",
        _changed(TEXT, "parameters.body.0.value_text", "x" * 1025),
        422,
        ["parameters.body[0].value_text is too long (maximum is 1024 characters)"],
    ),
    (
        "missing media header",
        _changed(EXAMPLES["image"], "parameters.header", _REMOVE),
        422,
        ["Message Template has IMAGE header, please add header parameters."],
    ),
    (
        "wrong header format",
        _changed(EXAMPLES["image"], "parameters.header.format", "VIDEO"),
        422,
        ["parameters.header.format VIDEO does not match the message template header IMAGE"],
    ),
    (
        "header without url",
        _changed(
            EXAMPLES["document"],
            "parameters.header.params",
            [{"key": "filename", "value": "a.pdf"}],
        ),
        422,
        ["parameters.header.params url is missing"],
    ),
    (
        "header url not http",
        _changed(EXAMPLES["video"], "parameters.header.params.0.value", "ftp://x/y.mp4"),
        422,
        ["parameters.header.params url is invalid"],
    ),
    (
        "header for a template without one",
        _changed(TEXT, "parameters.header", EXAMPLES["image"]["parameters"]["header"]),
        422,
        ["Message Template has no header, please remove header parameters."],
    ),
    (
        "missing URL button suffix",
        _changed(EXAMPLES["cta_url"], "parameters.buttons", []),
        422,
        [
            "Message Template has a URL button with a variable at index 0, "
            "please add it to buttons parameters."
        ],
    ),
    (
        "missing OTP button",
        _changed(EXAMPLES["otp"], "parameters.buttons", _REMOVE),
        422,
        [
            "Message Template has a URL button with a variable at index 0, "
            "please add it to buttons parameters."
        ],
    ),
    (
        "button for a static template",
        _changed(
            EXAMPLES["cta_phone"],
            "parameters.buttons",
            [{"index": "0", "type": "url", "value": "x"}],
        ),
        422,
        ["parameters.buttons[0].index 0 does not match a URL button with a variable"],
    ),
    (
        "button without index",
        _changed(EXAMPLES["cta_url"], "parameters.buttons.0.index", _REMOVE),
        422,
        ["parameters.buttons[0].index is missing"],
    ),
    (
        "button value with newline",
        _changed(EXAMPLES["cta_url"], "parameters.buttons.0.value", "a\nb"),
        422,
        [f"parameters.buttons[0].value {WHITESPACE}"],
    ),
    # Every field that ends up in the rendered message or the broadcast object must be a
    # string: anything else used to be stored as sent and echoed back.
    (
        "body key as a number",
        _changed(TEXT, "parameters.body.0.key", 1),
        422,
        ["parameters.body[0].key is invalid"],
    ),
    (
        "body value as an object",
        _changed(TEXT, "parameters.body.0.value", {"x": [1, 2]}),
        422,
        ["parameters.body[0].value is invalid"],
    ),
    (
        "body value_text as a number",
        _changed(TEXT, "parameters.body.1.value_text", 7),
        422,
        ["parameters.body[1].value_text is invalid"],
    ),
    (
        "button index as a number",
        _changed(EXAMPLES["cta_url"], "parameters.buttons.0.index", 0),
        422,
        ["parameters.buttons[0].index is invalid"],
    ),
    (
        "button type as a list",
        _changed(EXAMPLES["cta_url"], "parameters.buttons.0.type", ["url"]),
        422,
        ["parameters.buttons[0].type is invalid"],
    ),
    (
        "button value as a number",
        _changed(EXAMPLES["cta_url"], "parameters.buttons.0.value", 12),
        422,
        ["parameters.buttons[0].value is invalid"],
    ),
    (
        "header format as a number",
        _changed(EXAMPLES["image"], "parameters.header.format", 1),
        422,
        ["parameters.header.format is invalid"],
    ),
    (
        "header param value as an object",
        _changed(EXAMPLES["image"], "parameters.header.params.0.value", {"u": 1}),
        422,
        ["parameters.header.params is invalid"],
    ),
    (
        "header param key as a number",
        _changed(EXAMPLES["image"], "parameters.header.params.1.key", 1),
        422,
        ["parameters.header.params is invalid"],
    ),
]


@pytest.mark.parametrize(
    ("payload", "status", "messages"),
    [pytest.param(p, s, m, id=case) for case, p, s, m in BAD_SENDS],
)
def test_bad_send_gets_qontak_error(
    client: httpx.Client,
    sandbox: Sandbox,
    payload: dict[str, Any],
    status: int,
    messages: list[str],
) -> None:
    response = _send(client, payload)
    assert response.status_code == status
    assert response.json() == _error(status, *messages)
    assert sandbox.messages() == []


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_malformed_json_is_400(client: httpx.Client, raw: bytes) -> None:
    response = client.post(SEND, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == _error(400, "Invalid JSON payload")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_400_and_leave_the_sandbox_working(
    client: httpx.Client, sandbox: Sandbox, constant: str
) -> None:
    # Python's json accepts these, but they are not JSON: stored, they made every later
    # list response fail to serialize (500) until a reset.
    payload = _changed(TEXT, "parameters.body.0.value", "@@")
    raw = json.dumps(payload).replace('"@@"', constant).encode()
    response = client.post(SEND, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == _error(400, "Invalid JSON payload")
    assert sandbox.messages() == []
    assert client.get("/_sandbox/messages").status_code == 200
    assert client.get(BASE + "/broadcasts/whatsapp").status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 200_000, id="200000 open brackets"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="50000 nested objects"),
    ],
)
def test_deeply_nested_json_is_400_not_a_crash(client: httpx.Client, raw: bytes) -> None:
    assert len(raw) < 1024 * 1024  # under the size limit: only the nesting is at fault
    response = client.post(SEND, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == _error(400, "Invalid JSON payload")


def test_nesting_beyond_rails_limit_is_400(client: httpx.Client, sandbox: Sandbox) -> None:
    def nested(depth: int) -> bytes:
        # ``depth`` levels in total: the send object, "parameters", then lists.
        payload = _changed(TEXT, "parameters.extra", "@@")
        inner = "[" * (depth - 2) + "]" * (depth - 2)
        return json.dumps(payload).replace('"@@"', inner).encode()

    assert client.post(SEND, content=nested(100)).status_code == 201
    response = client.post(SEND, content=nested(101))
    assert response.status_code == 400
    assert response.json() == _error(400, "Invalid JSON payload")
    assert len(sandbox.messages()) == 1


def test_body_over_one_mebibyte_is_413(client: httpx.Client, sandbox: Sandbox) -> None:
    payload = _changed(TEXT, "to_name", "x" * (1024 * 1024))
    response = client.post(SEND, content=json.dumps(payload).encode())
    assert response.status_code == 413
    assert response.json() == _error(413, "Request Entity Too Large")
    assert sandbox.messages() == []


def test_streamed_body_over_the_limit_is_413_without_content_length(
    client: httpx.Client,
) -> None:
    def chunks() -> Any:
        for _ in range(20):
            yield b" " * 65536

    response = client.post(SEND, content=chunks())
    assert response.status_code == 413


def test_bad_sends_through_real_uvicorn(
    live: httpx.Client, sandbox: Sandbox, clock: FakeClock
) -> None:
    for _case, payload, status, messages in BAD_SENDS[:12]:
        clock.advance(1)  # stay under the 10/s burst limit
        response = live.post(SEND, json=payload)
        assert (response.status_code, response.json()) == (status, _error(status, *messages))
    too_big = live.post(SEND, content=b"{" + b" " * (1024 * 1024 + 1) + b"}")
    assert too_big.status_code == 413
    assert live.post(SEND, content=b"{oops").status_code == 400
    assert sandbox.messages() == []


def test_unknown_api_route_is_qontak_404(client: httpx.Client) -> None:
    response = client.get(BASE + "/nothing/here")
    assert response.status_code == 404
    assert response.json() == _error(404, "Resource not found.")
