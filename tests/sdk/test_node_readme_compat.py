"""The seven Node README payloads, unchanged, through ``qontak.compat`` against the sandbox.

People port from the Node client by pasting its README's dicts. Each must be accepted and sent
exactly as written: the SDK refuses only what Qontak or WhatsApp would refuse. The OTP example
has different codes in its body (123454321) and button (123456); Qontak accepts that, so it is
sent with a ``QontakWarning`` (and a note in the preview), not refused.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest

from qontak import QontakClient, QontakWarning
from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, SyncASGITransport

FIXTURES = Path(__file__).parent.parent / "fixtures" / "node_readme"
# The README's runnable examples (the other two use "YOUR_TEMPLATE_ID" placeholders).
SEVEN = ["cta_phone", "cta_url", "document", "image", "otp", "text_with_variable", "video"]


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


def _readme(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def test_there_are_seven_runnable_readme_payloads() -> None:
    assert all((FIXTURES / f"{name}.json").is_file() for name in SEVEN)


@pytest.mark.parametrize("name", SEVEN)
def test_readme_payload_is_sent_unchanged_through_compat(name: str, api_and_sandbox) -> None:
    api, sandbox = api_and_sandbox
    data = _readme(name)
    original = copy.deepcopy(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        envelope = api.broadcast.create_broadcast_direct(data)
    assert envelope["status"] == "success"
    assert data == original  # the caller's dict is not touched
    [stored] = sandbox.messages()
    for key in ("to_name", "to_number", "channel_integration_id", "parameters"):
        assert stored[key] == data[key], key
    assert stored["template"]["id"] == data["message_template_id"]
    notes = [w for w in caught if issubclass(w.category, QontakWarning)]
    if name == "otp":
        [note] = notes
        assert note.message.code == "mismatch"  # type: ignore[union-attr]
        assert note.message.field == "parameters.buttons[0].value"  # type: ignore[union-attr]
        assert note.filename == __file__  # blamed on the caller's line, not on qontak's
    else:
        assert notes == []


def test_readme_otp_preview_shows_the_note(api_and_sandbox) -> None:
    api, sandbox = api_and_sandbox
    text = api.client.preview(_readme("otp"))
    assert "*123454321*" in text
    assert "⚠ note: parameters.buttons[0].value" in text and "'123456'" in text
    assert sandbox.messages() == []  # a preview sends nothing


def test_readme_otp_can_be_made_an_error_by_the_caller(api_and_sandbox) -> None:
    """Callers who want mismatched codes refused turn the warning into an error, and then
    nothing is sent."""
    api, sandbox = api_and_sandbox
    with warnings.catch_warnings():
        warnings.simplefilter("error", QontakWarning)
        with pytest.raises(QontakWarning):
            api.broadcast.create_broadcast_direct(_readme("otp"))
    assert sandbox.messages() == []
