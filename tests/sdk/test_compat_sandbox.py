"""The Node README's dicts, passed unchanged to the porting client, against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from qontak import QontakClient
from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, SyncASGITransport

FIXTURES = Path(__file__).parent.parent / "fixtures" / "node_readme"
# The sandbox is seeded under the README's own template and channel ids; these two use the
# README's placeholders ("YOUR_TEMPLATE_ID") or the OpenAPI's doc slip, checked separately.
RUNNABLE = sorted(
    p.stem
    for p in FIXTURES.glob("*.json")
    if p.stem not in {"quickstart_otp", "otp", "text_without_variable"}
)


@pytest.fixture
def api_and_sandbox():
    sandbox = Sandbox()
    api = QontakClient(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        base_url="http://sandbox.local",
        http_client=httpx.Client(transport=SyncASGITransport(sandbox.app)),
        env_file=None,
        rate_limits=False,
    )
    yield api, sandbox
    sandbox.close()


@pytest.mark.parametrize("fixture", RUNNABLE)
def test_node_readme_dict_is_sent_unchanged_and_read(fixture: str, api_and_sandbox) -> None:
    api, sandbox = api_and_sandbox
    data = json.loads((FIXTURES / f"{fixture}.json").read_text())
    envelope = api.broadcast.create_broadcast_direct(data)
    assert envelope["status"] == "success"
    truth = sandbox.messages()
    assert len(truth) == 1 and truth[0]["parameters"] == data["parameters"]
    sandbox.advance(10)
    log = api.broadcast.get_broadcast_log(envelope["data"]["id"])
    assert [row["status"] for row in log["data"]] == ["read"]
