"""Admin routes, seed files, the Python API and webhooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from qontak.sandbox import FaultConfig, Sandbox, SandboxConfig, SyncASGITransport

from .conftest import BASE, CHANNEL_ID, FakeClock, HmacAuth
from .examples import TEXT

SEND = BASE + "/broadcasts/whatsapp/direct"

SEED_YAML = """
organization_id: 11111111-2222-4333-8444-555555555555
credentials:
  - {client_id: team-b, client_secret: team-b-secret, name: Team B}
channels:
  - id: 0f0f0f0f-0000-4000-8000-000000000001
    target_channel: wa_cloud
    settings: {account_name: Shop, phone_number: "+6289900000000"}
templates:
  - id: 0f0f0f0f-0000-4000-8000-0000000000aa
    name: shipping_notice
    language: id
    category: UTILITY
    body: "Paket {{1}} sedang dikirim."
    footer: Toko Kami
"""


def test_reset_forgets_traffic_but_keeps_configuration(
    client: httpx.Client, sandbox: Sandbox, clock: FakeClock
) -> None:
    sandbox.add_template(name="extra", language="id", body="Hi")
    assert client.post(SEND, json=TEXT).status_code == 201
    assert client.post("/_sandbox/reset", json={}).json() == {"status": "success"}
    assert client.get("/_sandbox/messages").json() == {"data": [], "next": None}
    assert client.get(BASE + "/broadcasts/whatsapp").json()["data"] == []
    assert any(t["name"] == "extra" for t in sandbox.templates())
    client.post("/_sandbox/reset", json={"full": True})
    assert not any(t["name"] == "extra" for t in sandbox.templates())
    assert len(sandbox.templates()) == 20


def test_reset_also_clears_rate_limit_counts(client: httpx.Client, sandbox: Sandbox) -> None:
    for _ in range(10):
        client.get(BASE + "/integrations")
    assert client.get(BASE + "/integrations").status_code == 429
    sandbox.reset()
    assert client.get(BASE + "/integrations").status_code == 200


def test_yaml_seed_file_adds_credentials_channels_templates(
    tmp_path: Path, clock: FakeClock
) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED_YAML)
    box = Sandbox(SandboxConfig(clock=clock, faults=FaultConfig(), seed_files=(seed,)))
    assert box.organization_id == "11111111-2222-4333-8444-555555555555"
    with httpx.Client(
        transport=SyncASGITransport(box.app),
        base_url="http://x",
        auth=HmacAuth(clock, "team-b", "team-b-secret"),
    ) as http:
        template = http.get(BASE + "/templates/0f0f0f0f-0000-4000-8000-0000000000aa/whatsapp")
        data = template.json()["data"]
        assert data["status"] == "APPROVED"
        assert data["footer"] == "Toko Kami"
        payload = {
            **TEXT,
            "message_template_id": data["id"],
            "channel_integration_id": "0f0f0f0f-0000-4000-8000-000000000001",
            "parameters": {"body": [{"key": "1", "value_text": "INV-9", "value": "awb"}]},
        }
        sent = http.post(SEND, json=payload)
        assert sent.status_code == 201
        assert sent.json()["data"]["sender_name"] == "Team B"
        assert sent.json()["data"]["channel_phone_number"] == "6289900000000"
        assert box.messages()[0]["rendered"]["body"] == "Paket INV-9 sedang dikirim."
    box.close()


def test_json_seed_and_python_api(tmp_path: Path, clock: FakeClock) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"templates": [{"name": "j", "language": "en", "body": "Hey"}]}))
    box = Sandbox(SandboxConfig(clock=clock, faults=FaultConfig(), seed=False))
    assert box.templates() == []
    box.load_seed(seed)
    [template] = box.templates()
    assert template["id"] and template["quality_rating_text"] == "Neutral"
    pending = box.add_template(name="p", language="id", body="x", status="PENDING")
    assert pending["quality_rating_text"] is None
    channel = box.add_channel(target_channel="wa", settings={"account_name": "Legacy"})
    assert channel["is_active"] and channel["settings"]["account_name"] == "Legacy"
    with pytest.raises(ValueError):
        box.add_template(name="no body", language="id")
    box.close()


def test_sqlite_file_keeps_state_across_restarts(tmp_path: Path, clock: FakeClock) -> None:
    db = tmp_path / "sandbox.db"
    config = SandboxConfig(clock=clock, faults=FaultConfig(), db=db)
    first = Sandbox(config)
    with httpx.Client(
        transport=SyncASGITransport(first.app), base_url="http://x", auth=HmacAuth(clock)
    ) as http:
        assert http.post(SEND, json=TEXT).status_code == 201
    first.close()
    second = Sandbox(config)
    assert len(second.messages()) == 1
    assert len(second.templates()) == 20  # the seed is upserted, not duplicated
    second.close()


def test_inactive_channel_is_refused(client: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.add_channel(id=CHANNEL_ID, is_active=False)
    response = client.post(SEND, json=TEXT)
    assert response.status_code == 422
    assert response.json()["error"]["messages"] == [
        f"Channel integration {CHANNEL_ID} is not active"
    ]


def test_webhooks_post_each_status_change_once(clock: FakeClock) -> None:
    box = Sandbox(
        SandboxConfig(clock=clock, faults=FaultConfig(), webhook_url="http://hooks.local/in")
    )
    received: list[dict[str, Any]] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(json.loads(request.content))
        return httpx.Response(200)

    hooks = httpx.Client(transport=httpx.MockTransport(receiver))
    with httpx.Client(
        transport=SyncASGITransport(box.app), base_url="http://x", auth=HmacAuth(clock)
    ) as http:
        http.post(SEND, json=TEXT)
        clock.advance(1)
        http.post(SEND, json={**TEXT, "to_number": "6281234131026"})
    assert box.webhooks.deliver_due(hooks) == 2  # sent+delivered of the first message
    clock.advance(5)
    assert box.webhooks.deliver_due(hooks) == 2  # read of the first, failed of the second
    assert box.webhooks.deliver_due(hooks) == 0
    wamid = box.messages()[0]["whatsapp_message_id"]
    first = [r["status"] for r in received if r["external_id"] == wamid]
    assert first == ["sent", "delivered", "read"]
    failed = received[-1]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == 131026
    assert all(r["is_campaign"] and r["participant_type"] == "bot" for r in received)
    assert received[0]["sender_type"] == "Models::SystemAccount"
    assert received[0]["room"]["account_uniq_id"] == TEXT["to_number"]
    hooks.close()
    box.close()


def test_webhook_receiver_down_is_retried_later(clock: FakeClock) -> None:
    box = Sandbox(SandboxConfig(clock=clock, faults=FaultConfig(), webhook_url="http://h/in"))
    up = False

    def receiver(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if up else 503)

    hooks = httpx.Client(transport=httpx.MockTransport(receiver))
    with httpx.Client(
        transport=SyncASGITransport(box.app), base_url="http://x", auth=HmacAuth(clock)
    ) as http:
        http.post(SEND, json=TEXT)
    clock.advance(5)
    assert box.webhooks.deliver_due(hooks) == 0
    up = True
    assert box.webhooks.deliver_due(hooks) == 0  # the message waits for its backoff
    clock.advance(box.webhooks.retries.policy.initial)
    assert box.webhooks.deliver_due(hooks) == 3
    hooks.close()
    box.close()


def test_webhook_thread_runs_with_the_real_server(clock: FakeClock) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got: list[dict[str, Any]] = []
    three = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            got.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()
            if len(got) >= 3:
                three.set()

        def log_message(self, *args: Any) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    box = Sandbox(
        SandboxConfig(clock=clock, faults=FaultConfig(), webhook_url=url, webhook_poll_seconds=0.01)
    )
    try:
        with box.run_in_thread() as base, httpx.Client(base_url=base, auth=HmacAuth(clock)) as http:
            assert http.post(SEND, json=TEXT).status_code == 201
            clock.advance(5)
            assert three.wait(5), got
    finally:
        receiver.shutdown()
        receiver.server_close()
        box.close()
    assert [g["status"] for g in got] == ["sent", "delivered", "read"]


# -- uploaded files are served so they can never run script on the sandbox's origin --------

_INLINE = [
    ("photo.jpg", "image/jpeg", "image/jpeg"),
    ("photo.png", "image/png", "image/png"),
    ("photo.webp", "IMAGE/WEBP", "image/webp"),
    ("clip.mp4", "video/mp4", "video/mp4"),
    ("clip.3gp", "video/3gpp", "video/3gpp"),
    ("voice.ogg", "audio/ogg; codecs=opus", "audio/ogg"),
    ("invoice.pdf", "application/pdf", "application/pdf"),
    ("notes.txt", "text/plain; charset=latin-1", "text/plain"),
]
_ATTACHMENT = [
    ("page.html", "text/html"),
    ("page.xhtml", "application/xhtml+xml"),
    ("logo.svg", "image/svg+xml"),
    ("app.js", "application/javascript"),
    ("data.xml", "text/xml"),
    ("odd.bin", "text/plain, text/html"),
]


def _upload(client: httpx.Client, filename: str, content_type: str, data: bytes) -> str:
    response = client.post(BASE + "/file_uploader", files={"file": (filename, data, content_type)})
    assert response.status_code == 201, response.text
    url: str = response.json()["data"]["url"]
    return url


def _assert_locked_down(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # falls back to default-src 'none': no script at all


@pytest.mark.parametrize(("filename", "sent", "served"), _INLINE)
def test_safe_media_is_served_inline_with_its_type(
    client: httpx.Client, filename: str, sent: str, served: str
) -> None:
    response = client.get(_upload(client, filename, sent, b"data"))
    assert response.status_code == 200
    assert response.content == b"data"
    assert response.headers["content-type"].split(";")[0] == served
    assert response.headers["content-disposition"].startswith("inline")
    _assert_locked_down(response)


@pytest.mark.parametrize(("filename", "sent"), _ATTACHMENT)
def test_other_types_are_served_as_a_download(
    client: httpx.Client, filename: str, sent: str
) -> None:
    html = b"<script>fetch('/_sandbox/reset', {method: 'POST'})</script>"
    response = client.get(_upload(client, filename, sent, html))
    assert response.status_code == 200
    assert response.content == html
    assert response.headers["content-type"] == "application/octet-stream"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert "filename" in disposition
    _assert_locked_down(response)


def test_download_name_cannot_break_the_header(client: httpx.Client) -> None:
    url = _upload(client, "a; b=é.html", "text/html", b"x")
    disposition = client.get(url).headers["content-disposition"]
    assert disposition == "attachment; filename*=UTF-8''a%3B%20b%3D%C3%A9.html"


# -- admin POSTs refuse what a cross-site page could send -----------------------------------


def test_cross_site_form_post_cannot_switch_faults(client: httpx.Client, sandbox: Sandbox) -> None:
    # What an HTML form (enctype=text/plain) on another site can send without a preflight.
    response = client.post(
        "/_sandbox/faults",
        content='{"spec": "error_before=1"}',
        headers={"Content-Type": "text/plain", "Origin": "http://evil.example"},
    )
    assert response.status_code in (403, 415)
    assert sandbox.faults.config.error_before == 0.0


@pytest.mark.parametrize("path", ["/_sandbox/faults", "/_sandbox/reset"])
@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_admin_post_without_json_content_type_is_415(
    client: httpx.Client, sandbox: Sandbox, path: str, content_type: str | None
) -> None:
    assert client.post(SEND, json=TEXT).status_code == 201
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post(path, content=b"{}", headers=headers)
    assert response.status_code == 415
    assert response.json() == {
        "status": "error",
        "error": {"code": 415, "messages": ["Content-Type must be application/json"]},
    }
    assert len(sandbox.messages()) == 1  # the reset did not happen


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://sandbox.local.evil.example", "http://sandbox"]
)
def test_admin_post_from_another_origin_is_403(
    client: httpx.Client, sandbox: Sandbox, origin: str
) -> None:
    response = client.post(
        "/_sandbox/faults", json={"spec": "error_before=1"}, headers={"Origin": origin}
    )
    assert response.status_code == 403
    assert response.json()["error"]["messages"] == ["Cross-origin request refused"]
    assert sandbox.faults.config.error_before == 0.0


def test_admin_post_from_the_same_origin_or_a_script_is_accepted(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    same = client.post(
        "/_sandbox/faults",
        json={"error_before": 0.5},
        headers={"Origin": "http://sandbox.local"},
    )
    assert same.status_code == 200
    assert sandbox.faults.config.error_before == 0.5
    # Scripts and test clients send no Origin at all.
    assert client.post("/_sandbox/reset", json={}).json() == {"status": "success"}
    with httpx.Client(
        base_url="http://sandbox.local:8765", transport=SyncASGITransport(sandbox.app)
    ) as other:
        ported = other.post(
            "/_sandbox/reset", json={}, headers={"Origin": "http://sandbox.local:8765"}
        )
        assert ported.status_code == 200
        elsewhere = other.post(
            "/_sandbox/reset", json={}, headers={"Origin": "http://sandbox.local:9999"}
        )
        assert elsewhere.status_code == 403


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"seed": [1]}, "seed must be an integer"),
        ({"seed": "abc"}, "seed must be an integer"),
        ({"seed": True}, "seed must be an integer"),
        ({"error_before": "0.5"}, "error_before must be a number"),
        ({"latency_seconds": None}, "latency_seconds must be a number"),
        ({"scope": 1}, "scope must be 'all' or 'send'"),
        ({"spec": 5}, "spec must be a string"),
        ({"bogus": 1}, "unknown fault setting 'bogus'"),
    ],
)
def test_fault_settings_of_the_wrong_type_are_400(
    client: httpx.Client, sandbox: Sandbox, body: dict[str, Any], text: str
) -> None:
    response = client.post("/_sandbox/faults", json=body)
    assert response.status_code == 400, response.text
    [message] = response.json()["error"]["messages"]
    assert message.startswith(text)
    assert sandbox.faults.config == FaultConfig()


def test_fault_config_checks_types_in_python_too() -> None:
    with pytest.raises(TypeError, match="seed must be an integer"):
        FaultConfig(seed="abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="error_after must be a number"):
        FaultConfig(error_after="0.1")  # type: ignore[arg-type]
    assert FaultConfig(seed=3, error_before=1).error_before == 1


@pytest.mark.parametrize("body", [b'{"full": "yes"}', b'{"full": NaN}', b"[1]", b"{"])
def test_reset_with_a_bad_body_is_400(client: httpx.Client, body: bytes) -> None:
    response = client.post(
        "/_sandbox/reset", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_fault_settings_with_nan_are_400(client: httpx.Client, sandbox: Sandbox) -> None:
    response = client.post(
        "/_sandbox/faults",
        content=b'{"latency_seconds": Infinity}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert client.get("/_sandbox/faults").status_code == 200


# -- webhooks keep going whatever happens between two polls ---------------------------------


def _webhook_box(clock: FakeClock, **config: Any) -> tuple[Sandbox, httpx.Client]:
    box = Sandbox(
        SandboxConfig(clock=clock, faults=FaultConfig(), webhook_url="http://h/in", **config)
    )
    http = httpx.Client(
        transport=SyncASGITransport(box.app), base_url="http://x", auth=HmacAuth(clock)
    )
    return box, http


def test_webhook_skips_messages_a_reset_removed_mid_poll(clock: FakeClock) -> None:
    box, http = _webhook_box(clock)
    http.post(SEND, json=TEXT)
    http.post(SEND, json={**TEXT, "to_number": "6281234567891"})
    clock.advance(5)
    posted: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content)["status"])
        box.reset()  # lands while the poll is still working through its list
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(receiver)) as hooks:
        assert box.webhooks.deliver_due(hooks) == 1
        assert box.webhooks.deliver_due(hooks) == 0
    assert posted == ["sent"]
    http.close()
    box.close()


def test_webhook_poll_reads_the_messages_once(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    box, http = _webhook_box(clock)
    for number in ("6281234567890", "6281234567891", "6281234567892"):
        http.post(SEND, json={**TEXT, "to_number": number})
    clock.advance(5)
    reads = 0
    real = box.store.messages

    def counting(broadcast_id: str | None = None) -> Any:
        nonlocal reads
        reads += 1
        return real(broadcast_id)

    monkeypatch.setattr(box.store, "messages", counting)
    with httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as hooks:
        assert box.webhooks.deliver_due(hooks) == 9  # 3 messages × sent, delivered, read
    assert reads == 0  # it reads the change feed past its high-water mark, never every message
    http.close()
    box.close()


def test_webhook_payload_that_cannot_be_encoded_is_logged_and_skipped(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    from dataclasses import replace

    box, http = _webhook_box(clock)
    http.post(SEND, json=TEXT)
    [good] = box.store.messages()
    # A row from an older database, stored before sends were parsed strictly.
    poison = replace(good, id="poison", wamid="wamid.poison", rendered={"body": float("nan")})
    box.store.add_send(broadcast={"id": "b-poison"}, client_id="sandbox-client-id", message=poison)
    clock.advance(5)
    ids: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        ids.append(json.loads(request.content)["id"])
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(receiver)) as hooks:
        assert box.webhooks.deliver_due(hooks) == 3
        assert box.webhooks.deliver_due(hooks) == 0  # skipped for good, not retried
    assert ids == [good.id] * 3
    assert "poison" in caplog.text
    http.close()
    box.close()


def test_webhook_thread_survives_an_unexpected_error(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    box, http = _webhook_box(clock, webhook_poll_seconds=0.01)
    calls = 0
    third = threading.Event()

    def flaky(client: httpx.Client | None = None) -> int:
        nonlocal calls
        calls += 1
        if calls >= 3:
            third.set()
        if calls == 1:
            raise StopIteration  # what a reset between two store reads used to raise
        if calls == 2:
            raise RuntimeError("boom")
        return 0

    monkeypatch.setattr(box.webhooks, "deliver_due", flaky)
    box.start_webhooks()
    try:
        assert third.wait(5), calls
    finally:
        box.stop_webhooks()
    assert "boom" in caplog.text
    http.close()
    box.close()
