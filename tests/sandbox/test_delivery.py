"""Delivery simulation: statuses follow the clock; magic numbers fail with WhatsApp errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qontak.sandbox import MAGIC_ERRORS, FaultConfig, Sandbox, SandboxConfig, SyncASGITransport

from .conftest import BASE, FakeClock, HmacAuth
from .examples import TEXT

SEND = BASE + "/broadcasts/whatsapp/direct"


def _send(client: httpx.Client, **changes: Any) -> str:
    response = client.post(SEND, json={**TEXT, **changes})
    assert response.status_code == 201, response.text
    broadcast_id: str = response.json()["data"]["id"]
    return broadcast_id


def _row(client: httpx.Client, broadcast_id: str) -> dict[str, Any]:
    [row] = client.get(f"{BASE}/broadcasts/{broadcast_id}/whatsapp/log").json()["data"]
    return dict(row)


@pytest.mark.parametrize(
    ("code", "refused"),
    [("131026", False), ("131047", False), ("131056", True), ("131049", False),
     ("131050", False), ("132001", True), ("133010", True)],
)  # fmt: skip
def test_magic_number_is_accepted_then_fails_with_the_whatsapp_error(
    client: httpx.Client, sandbox: Sandbox, clock: FakeClock, code: str, refused: bool
) -> None:
    number = "6281234" + code
    broadcast_id = _send(client, to_number=number)
    assert _row(client, broadcast_id)["status"] == "pending"
    clock.advance(10)
    row = _row(client, broadcast_id)
    error = MAGIC_ERRORS[code]
    assert row["status"] == "failed"
    assert row["whatsapp_error_message"] == error.details
    assert row["messages_response"]["errors"] == [
        {"code": int(code), "title": error.title, "details": error.details}
    ]
    assert row["messages_response"]["code"] == "400"
    if refused:
        assert row["whatsapp_message_id"] == "n/a"
    else:
        assert row["whatsapp_message_id"].startswith("wamid.")
    [truth] = sandbox.messages()
    assert truth["status"] == "failed"
    assert truth["error"] == {"code": int(code), "title": error.title, "details": error.details}
    assert [h["status"] for h in truth["status_history"]] == ["pending", "failed"]
    detail = client.get(f"{BASE}/broadcasts/{broadcast_id}/whatsapp").json()["data"]
    assert detail["message_status_count"]["failed"] == 1


def test_magic_error_shows_no_error_before_it_happens(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    _send(client, to_number="6281234131026")
    [truth] = sandbox.messages()
    assert truth["status"] == "pending"
    assert truth["error"] is None


def test_ordinary_number_is_read_after_the_configured_delays(clock: FakeClock) -> None:
    box = Sandbox(SandboxConfig(clock=clock, faults=FaultConfig(), delivery_delays=(1, 5, 60)))
    with httpx.Client(
        transport=SyncASGITransport(box.app), base_url="http://x", auth=HmacAuth(clock)
    ) as http:
        broadcast_id = _send(http)
        seen = []
        for step in (0.99, 0.01, 3.99, 0.01, 54.99, 0.01):
            clock.advance(step)
            seen.append(_row(http, broadcast_id)["status"])
    assert seen == ["pending", "sent", "sent", "delivered", "delivered", "read"]
    box.close()


def test_ground_truth_message_contract(
    client: httpx.Client, sandbox: Sandbox, clock: FakeClock
) -> None:
    broadcast_id = _send(client)
    clock.advance(0.75)
    [message] = sandbox.messages()
    assert list(message) == [
        "id", "broadcast_id", "whatsapp_message_id", "to_number", "to_name",
        "channel_integration_id", "status", "status_history", "error", "created_at",
        "template", "parameters", "rendered",
    ]  # fmt: skip
    assert message["broadcast_id"] == broadcast_id
    assert message["status"] == "sent"
    assert message["status_history"][0]["at"].endswith("Z")
    assert message["parameters"] == TEXT["parameters"]
    assert message["template"]["id"] == TEXT["message_template_id"]
    assert set(message["rendered"]) == {"header", "body", "footer", "buttons"}
    assert client.get("/_sandbox/messages").json() == {"data": [message], "next": None}


def test_each_message_gets_its_own_wamid(client: httpx.Client, clock: FakeClock) -> None:
    ids = set()
    for _ in range(5):
        clock.advance(1)
        ids.add(_row(client, _send(client))["whatsapp_message_id"])
    assert len(ids) == 5
