"""The webhook receiver: what it keeps, what it refuses, and that nothing is kept twice."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qontak import ConfigurationError, ValidationError
from qontak.webhooks import SQLiteWebhookStore, StatusEvent, WebhookReceiver, parse_event

TOKEN = "tok-0123456789abcdef-canary"

pytestmark = pytest.mark.anyio


def event(status: str = "read", wamid: str = "wamid.A", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"ev-{wamid}-{status}",
        "type": "text",
        "is_campaign": True,
        "status": status,
        "external_id": wamid,
        "created_at": "2026-12-01T10:00:00.000Z",
        "room": {"account_uniq_id": "6281234567890", "channel_integration_id": "ch-1"},
        **extra,
    }


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> SQLiteWebhookStore:
    return SQLiteWebhookStore(tmp_path / "events.db")


@pytest.fixture
async def post(store: SQLiteWebhookStore) -> AsyncIterator[Any]:
    receiver = WebhookReceiver(store, token=TOKEN, allowed_ips=["127.0.0.0/8"])
    seen: list[StatusEvent] = []
    receiver.on_status(seen.append)
    transport = httpx.ASGITransport(app=receiver, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as http:

        async def send(body: Any, path: str = f"/{TOKEN}") -> httpx.Response:
            content = body if isinstance(body, bytes | AsyncIterator) else json.dumps(body).encode()
            return await http.post(path, content=content)

        send.seen = seen  # type: ignore[attr-defined]
        send.receiver = receiver  # type: ignore[attr-defined]
        yield send


async def test_event_is_stored_once_and_callbacks_run_once(post: Any, store: Any) -> None:
    first = await post(event())
    again = await post(event())
    assert (first.status_code, first.json()) == (200, {"status": "ok", "duplicate": False})
    assert (again.status_code, again.json()) == (200, {"status": "ok", "duplicate": True})
    assert store.count() == 1
    assert [e.status for e in post.seen] == ["read"]


async def test_status_never_moves_backwards(post: Any, store: Any) -> None:
    for status in ("sent", "read", "delivered"):
        assert (await post(event(status))).status_code == 200
    assert store.status("wamid.A").status == "read"
    assert [e.status for e in store.history("wamid.A")] == ["sent", "read", "delivered"]


async def test_token_in_query_string_also_works(post: Any, store: Any) -> None:
    assert (await post(event(), path=f"/?token={TOKEN}")).status_code == 200
    assert store.count() == 1


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/wrong-token-0123456789", event(), 401),
        ("/", event(), 401),
        (f"/{TOKEN}x", event(), 401),
        (f"/{TOKEN}", b"{not json", 400),
        (f"/{TOKEN}", b'{"status": "read", "id": NaN}', 400),
        (f"/{TOKEN}", b"[1, 2]", 400),
        (f"/{TOKEN}", event("teleported"), 400),
        (f"/{TOKEN}", b"\xff\xfe", 400),
        (f"/{TOKEN}", json.dumps(event(pad="x" * 70_000)).encode(), 413),
    ],
)
async def test_forged_malformed_and_oversized_are_refused_and_not_kept(
    post: Any, store: Any, path: str, body: Any, status: int
) -> None:
    response = await post(body, path=path)
    assert response.status_code == status
    assert store.count() == 0
    assert post.seen == []


async def test_oversized_chunked_body_is_refused_without_content_length(
    post: Any, store: Any
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    response = await post(chunks())
    assert response.status_code == 413
    assert store.count() == 0


async def test_source_outside_the_allow_list_is_forbidden(store: Any) -> None:
    receiver = WebhookReceiver(store, token=TOKEN, allowed_ips=["10.9.0.0/16"])
    transport = httpx.ASGITransport(app=receiver, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as http:
        response = await http.post(f"/{TOKEN}", json=event())
    assert response.status_code == 403
    assert store.count() == 0


async def test_mounted_under_a_prefix(store: Any) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    receiver = WebhookReceiver(store, token=TOKEN)
    app = Starlette(routes=[Mount("/qontak", app=receiver)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
        response = await http.post(f"/qontak/{TOKEN}", json=event())
    assert response.status_code == 200
    assert store.status("wamid.A") is not None


async def test_token_never_logged_or_shown(post: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def boom(_: StatusEvent) -> None:
        raise RuntimeError("callback bug")

    post.receiver.on_status(boom)
    await post(event())
    await post(event(), path="/bad-token-0123456789")
    ours = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if r.name.startswith("qontak")
    )
    assert TOKEN not in ours
    assert "failed for wamid.A|read" in ours  # a failing callback is logged, the event was kept
    assert TOKEN not in repr(post.receiver)


def test_weak_or_unsafe_tokens_are_refused(store: Any) -> None:
    for bad in ("short", "has/slash-0123456789", 12345678901234567890):
        with pytest.raises(ConfigurationError) as info:
            WebhookReceiver(store, token=bad)  # type: ignore[arg-type]
        assert info.value.setting == "token"


def test_parse_event_is_strict_and_framework_free() -> None:
    parsed = parse_event(json.dumps(event("delivered")).encode())
    assert (parsed.status, parsed.external_id, parsed.to_number) == (
        "delivered",
        "wamid.A",
        "6281234567890",
    )
    assert parsed.occurred_at == pytest.approx(1796119200.0)
    for bad in (b"", b"null", b'{"status": 5, "id": "x"}', b'{"status": "read"}'):
        with pytest.raises(ValidationError):
            parse_event(bad)


def test_events_survive_reopening_the_store(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    first = SQLiteWebhookStore(path)
    assert first.record(parse_event(event("sent")))
    first.close()
    second = SQLiteWebhookStore(path)
    assert not second.record(parse_event(event("sent")))
    assert second.status("wamid.A").status == "sent"
    assert [seq for seq, _ in second.events_after(0)] == [1]
