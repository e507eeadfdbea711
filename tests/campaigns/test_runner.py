"""The runner against the real sandbox in process: opt-outs (at import and mid-campaign) are
never contacted, failures that would repeat for every row pause the campaign instead of
burning the list, a stop records the requests in flight, and every template kind sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from qontak import AsyncQontak, campaigns
from qontak.campaigns import CampaignState, RowState
from qontak.sandbox import SANDBOX_CLIENT_ID, FaultConfig, RateLimitConfig, Sandbox
from qontak.testing import SANDBOX_BASE_URL, SANDBOX_HOST, async_sandbox_client

from .conftest import (
    CHANNEL_ID,
    advancing,
    assert_ledger_matches_ground_truth,
    normalised,
    write_customers,
)

MAP = {"phone": "to_number", "nama": "1", "order": "2"}


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore]]:
    box = Sandbox(rate_limits=RateLimitConfig(enabled=False), faults=FaultConfig())
    store = campaigns.SQLiteStore(tmp_path / "l.db", durable=False)
    async with async_sandbox_client(box) as (client, sandbox):
        yield client, sandbox, store
    store.close()
    box.close()


async def _campaign(
    client: AsyncQontak, store: campaigns.SQLiteStore, path: Path, name: str = "order_update"
) -> str:
    template = await client.templates.find(name, language="id")
    created = campaigns.create(store, path, template=template, channel=CHANNEL_ID, mapping=MAP)
    return created.campaign.id


def _options(sandbox: Sandbox, **kw: Any) -> campaigns.RunOptions:
    return campaigns.RunOptions(clock=sandbox.now, sleep=advancing(sandbox), **kw)


@pytest.mark.anyio
async def test_opted_out_numbers_are_never_contacted(
    tmp_path: Path, env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore]
) -> None:
    client, sandbox, store = env
    store.add_optouts([normalised(3)], reason="STOP before import", now=0.0)
    cid = await _campaign(client, store, write_customers(tmp_path / "c.csv", 40))
    late = normalised(30)

    def on_event(event: dict[str, Any]) -> None:
        # The customer replies STOP while the campaign runs: the next claim must see it.
        if event["event"] == "progress" and event["counts"]["accepted"] == 5:
            store.add_optouts([late], reason="STOP mid-campaign", now=0.0)

    result = await campaigns.run(
        client, store, cid, _options(sandbox, concurrency=1, on_event=on_event, progress_every=0)
    )
    contacted = {m["to_number"] for m in sandbox.messages()}
    assert normalised(3) not in contacted and late not in contacted
    assert len(contacted) == 38 and result.counts["skipped"] == 1
    assert [r.code for r in store.iter_rejects(cid)] == ["opted_out"]


@pytest.mark.anyio
async def test_rejected_credentials_pause_the_campaign_and_nothing_is_burnt(
    tmp_path: Path, env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore]
) -> None:
    client, sandbox, store = env
    cid = await _campaign(client, store, write_customers(tmp_path / "c.csv", 20))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url=SANDBOX_HOST)
    async with AsyncQontak(
        SANDBOX_CLIENT_ID,
        "wrong-secret",
        base_url=SANDBOX_BASE_URL,
        http_client=http,
        env_file=None,
        clock=sandbox.now,
    ) as bad:
        result = await campaigns.run(bad, store, cid, _options(sandbox))
    await http.aclose()
    assert result.state is CampaignState.PAUSED
    assert (result.pause_reason or "").startswith("credentials rejected")
    assert result.pause_code == "auth"  # what the CLI's exit code 3 is read from
    assert result.counts["pending"] == 20 and not sandbox.messages()
    # The ledger says it was the runner's pause (running again lifts it), not a user's.
    paused = store.get_campaign(cid)
    assert paused is not None and paused.pause_code == "auth"
    # Running again (credentials fixed) lifts a runner's pause.
    again = await campaigns.run(client, store, cid, _options(sandbox))
    assert again.state is CampaignState.DONE and again.counts["accepted"] == 20
    done = store.get_campaign(cid)
    assert done is not None and done.pause_code is None


@pytest.mark.anyio
async def test_a_template_paused_mid_campaign_pauses_the_campaign(
    tmp_path: Path, env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore]
) -> None:
    client, sandbox, store = env
    cid = await _campaign(client, store, write_customers(tmp_path / "c.csv", 30))
    stored = next(
        t for t in sandbox.templates() if t["name"] == "order_update" and t["language"] == "id"
    )

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "progress" and event["counts"]["accepted"] == 10:
            sandbox.add_template({**stored, "status": "PAUSED"})

    result = await campaigns.run(
        client, store, cid, _options(sandbox, concurrency=1, on_event=on_event, progress_every=0)
    )
    assert result.state is CampaignState.PAUSED
    assert "PAUSED" in (result.pause_reason or "")
    assert result.counts == {**result.counts, "accepted": 10, "pending": 20, "failed": 0}
    # Approved again: resume sends the rest, nobody twice.
    sandbox.add_template({**stored, "status": "APPROVED"})
    again = await campaigns.run(client, store, cid, _options(sandbox))
    assert again.state is CampaignState.DONE and again.counts["accepted"] == 30
    assert len({m["to_number"] for m in sandbox.messages()}) == len(sandbox.messages()) == 30


@pytest.mark.anyio
async def test_a_stop_finishes_the_requests_in_flight_and_resume_continues(
    tmp_path: Path, env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore]
) -> None:
    client, sandbox, store = env
    cid = await _campaign(client, store, write_customers(tmp_path / "c.csv", 50))
    stopper = campaigns.Stopper()

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "progress" and event["counts"]["accepted"] >= 12:
            stopper.stop("interrupted")

    result = await campaigns.run(
        client,
        store,
        cid,
        _options(sandbox, concurrency=4, stopper=stopper, on_event=on_event, progress_every=0),
    )
    assert result.stopped and result.state is CampaignState.PAUSED
    assert result.counts["sending"] == 0 and result.counts["unknown"] == 0
    assert result.counts["accepted"] == len(sandbox.messages()) < 50
    done = await campaigns.run(client, store, cid, _options(sandbox))
    assert done.counts["accepted"] == 50 and len(sandbox.messages()) == 50


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "columns", "values"),
    [
        ("login_otp", ["phone", "code"], ["123456"]),
        ("promo_image", ["phone", "header"], ["https://x.co/promo.png"]),
        ("promo_image", ["phone", "header"], ["promo.png"]),  # a local file: uploaded once
        ("invoice_document", ["phone", "header", "header_filename"], ["inv.pdf", "Invoice.pdf"]),
        (
            "product_video",
            ["phone", "header", "1", "2", "3"],
            ["https://x.co/v.mp4", "Budi", "Sepatu", "Rp 100"],
        ),
        ("cta_url", ["phone", "button"], ["promo/123"]),
        ("cta_phone", ["phone"], []),
        ("welcome_message", ["phone"], []),
    ],
)
async def test_every_template_kind_is_accepted_by_the_sandbox(
    tmp_path: Path,
    env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore],
    name: str,
    columns: list[str],
    values: list[str],
) -> None:
    client, sandbox, store = env
    (tmp_path / "promo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    (tmp_path / "inv.pdf").write_bytes(b"%PDF-1.4\n" + b"0" * 64)
    path = tmp_path / "c.csv"
    lines = [",".join(columns)] + [",".join([f"0812-2000-{i:04d}", *values]) for i in range(3)]
    path.write_text("\n".join(lines) + "\n")
    template = await client.templates.find(name, language="id")
    mapping = {"code": "1"} if name == "login_otp" else {}
    uploads: list[Path] = []

    def uploader(file: Path) -> str:
        uploads.append(file)
        return f"https://files.example.com/{file.name}"

    created = campaigns.create(
        store,
        path,
        template=template,
        channel=CHANNEL_ID,
        uploader=uploader,
        mapping={"phone": "to_number", **mapping},
    )
    assert created.summary.rows == 3, list(store.iter_rejects(created.campaign.id))
    result = await campaigns.run(client, store, created.campaign.id, _options(sandbox))
    assert result.counts["accepted"] == 3, list(store.iter_rows(created.campaign.id))
    assert {m["template"]["name"] for m in sandbox.messages()} == {name}
    local = "header" in columns and not values[0].startswith("http")
    assert len(uploads) == (1 if local else 0)
    rows = list(store.iter_rows(created.campaign.id, [RowState.ACCEPTED]))
    assert len(rows) == 3


@pytest.mark.anyio
async def test_a_run_cancelled_mid_request_leaves_those_rows_unknown_never_pending(
    tmp_path: Path,
) -> None:
    # Each request takes 0.2 s of real time in the sandbox; the run is cancelled mid-send,
    # with requests in flight whose outcome nobody can know.
    box = Sandbox(
        rate_limits=RateLimitConfig(enabled=False),
        faults=FaultConfig(latency=1.0, latency_seconds=0.2),
    )
    store = campaigns.SQLiteStore(tmp_path / "l.db", durable=False)
    async with async_sandbox_client(box) as (client, sandbox):
        cid = await _campaign(client, store, write_customers(tmp_path / "c.csv", 20))
        with anyio.move_on_after(0.75):  # 0.4 s of template and channel checks first
            await campaigns.run(client, store, cid, _options(sandbox, concurrency=3))
        counts = store.counts(cid)
        assert counts["sending"] == 0 and counts["unknown"] >= 1, counts
        assert counts["pending"] + counts["unknown"] + counts["accepted"] == 20
        sandbox.set_faults(FaultConfig())
        sandbox.advance(120)
        await campaigns.reconcile(client, store, cid, settle_after=60, now=sandbox.now())
        await campaigns.run(client, store, cid, _options(sandbox))
        assert_ledger_matches_ground_truth(store, cid, sandbox.messages())
    store.close()
    box.close()


@pytest.mark.anyio
async def test_rows_failing_the_same_way_five_times_in_a_row_pause_the_campaign(
    tmp_path: Path, env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore]
) -> None:
    client, sandbox, store = env
    cid = await _campaign(client, store, write_customers(tmp_path / "c.csv", 20))
    # Rows no longer fit their template (as if the ledger were edited by hand).
    store._db.execute("UPDATE campaign_rows SET parameters = '{\"body\": []}'")
    result = await campaigns.run(client, store, cid, _options(sandbox, concurrency=1))
    assert result.state is CampaignState.PAUSED
    assert (result.pause_reason or "").startswith("5 rows in a row failed validation")
    assert result.counts["failed"] == 5 and result.counts["pending"] == 15
    assert not sandbox.messages()


@pytest.mark.anyio
async def test_a_template_edited_mid_campaign_pauses_at_the_first_refusal(
    tmp_path: Path, env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore]
) -> None:
    client, sandbox, store = env
    cid = await _campaign(client, store, write_customers(tmp_path / "c.csv", 20))
    stored = next(
        t for t in sandbox.templates() if t["name"] == "order_update" and t["language"] == "id"
    )

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "progress" and event["counts"]["accepted"] == 4:
            sandbox.add_template({**stored, "body": "Halo {{1}}, {{2}} dan {{3}}"})

    result = await campaigns.run(
        client, store, cid, _options(sandbox, concurrency=1, on_event=on_event, progress_every=0)
    )
    assert "changed since the campaign was created" in (result.pause_reason or "")
    assert result.counts["accepted"] == 4 and result.counts["failed"] == 0
    assert result.counts["pending"] == 16


@pytest.mark.anyio
async def test_pause_from_another_process_stops_the_run_and_rows_come_from_python(
    env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore],
) -> None:
    client, sandbox, store = env
    template = await client.templates.find("order_update", language="id")
    rows = [
        {"phone": f"0812-4000-{i:04d}", "nama": f"Budi {i}", "order": f"#{i}"} for i in range(20)
    ]
    created = campaigns.create(store, rows, template=template, channel=CHANNEL_ID, mapping=MAP)
    cid = created.campaign.id

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "progress" and event["counts"]["accepted"] == 6:
            # What `qontak campaign pause ID` does, from another terminal.
            store.update_campaign(cid, state=CampaignState.PAUSED, pause_reason="paused by user")

    result = await campaigns.run(
        client, store, cid, _options(sandbox, concurrency=1, on_event=on_event, progress_every=0)
    )
    assert result.state is CampaignState.PAUSED and result.pause_reason == "paused by user"
    assert result.counts["accepted"] == 6 == len(sandbox.messages())
    resumed = await campaigns.run(client, store, cid, _options(sandbox))
    assert resumed.state is CampaignState.DONE and len(sandbox.messages()) == 20


@pytest.mark.anyio
async def test_a_run_never_lifts_a_persons_pause_unless_it_resumes(
    env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore],
) -> None:
    client, sandbox, store = env
    template = await client.templates.find("order_update", language="id")
    rows = [{"phone": f"0812-4100-{i:04d}", "nama": "Budi", "order": f"#{i}"} for i in range(3)]
    created = campaigns.create(store, rows, template=template, channel=CHANNEL_ID, mapping=MAP)
    cid = created.campaign.id
    # `qontak campaign pause` landing just before a run starts (after any look it took).
    store.update_campaign(
        cid, state=CampaignState.PAUSED, pause_reason="paused by user", pause_code="user"
    )
    held = await campaigns.run(client, store, cid, _options(sandbox))
    assert (held.state, held.pause_code) == (CampaignState.PAUSED, "user")
    assert not sandbox.messages()
    found = store.get_campaign(cid)
    assert found is not None and found.pause_code == "user"
    resumed = await campaigns.run(client, store, cid, _options(sandbox, lift_user_pause=True))
    assert resumed.state is CampaignState.DONE and len(sandbox.messages()) == 3


def _group(message: str, errors: list[Exception]) -> Exception:
    import sys

    if sys.version_info >= (3, 11):
        return ExceptionGroup(message, errors)  # noqa: F821
    from exceptiongroup import ExceptionGroup as Group  # pragma: no cover - Python 3.10

    return Group(message, errors)  # pragma: no cover


def test_ledger_errors_are_found_inside_task_groups_and_nothing_else_is() -> None:
    from qontak.campaigns._worker import ledger_errors

    taken = campaigns.LedgerError("taken")
    assert ledger_errors(_group("tg", [_group("tg", [taken])])) == [taken]
    assert ledger_errors(_group("tg", [taken, ValueError("bug")])) is None
    assert ledger_errors(_group("tg", [_group("tg", [ValueError("bug")])])) is None


@pytest.mark.anyio
async def test_a_sqlite_worker_that_loses_a_campaign_mid_run_moves_on_to_the_next(
    tmp_path: Path,
    env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, sandbox, store = env
    first = await _campaign(client, store, write_customers(tmp_path / "a.csv", 6))
    second = await _campaign(client, store, write_customers(tmp_path / "b.csv", 3))
    # The lease is renewed before every claim, so losing it shows at the next one: from
    # inside the runner's task group, as an exception group.
    monkeypatch.setattr("qontak.campaigns._runner.LEASE_SECONDS", 0.0)
    stolen: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "progress" and event["campaign_id"] == first and not stolen:
            # Another worker (on another host) takes the campaign: our lease had run out.
            assert store.acquire(first, "elsewhere:1:run-x", now=1e12, ttl=60)
            stolen.append(first)

    options = _options(sandbox, concurrency=1, on_event=on_event, progress_every=0)
    results = await campaigns.run_worker(client, store, options=options)
    assert stolen == [first]
    assert [r.campaign_id for r in results] == [second]
    assert results[0].state is CampaignState.DONE
    # The lost campaign was left to its new holder: the row in flight was recorded, the
    # rest still pending.
    counts = store.counts(first)
    assert counts["accepted"] == 1 and counts["pending"] == 5 and counts["sending"] == 0


@pytest.mark.anyio
async def test_a_worker_never_lifts_a_pause_made_while_it_sent_an_earlier_campaign(
    tmp_path: Path, env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore]
) -> None:
    client, sandbox, store = env
    first = await _campaign(client, store, write_customers(tmp_path / "a.csv", 4))
    second = await _campaign(client, store, write_customers(tmp_path / "b.csv", 3))
    paused: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "progress" and event["campaign_id"] == first and not paused:
            # `qontak campaign pause` from another shell, while the worker is on the first.
            store.update_campaign(
                second,
                state=CampaignState.PAUSED,
                pause_reason="paused by user",
                pause_code="user",
            )
            paused.append(second)

    options = _options(sandbox, concurrency=1, on_event=on_event, progress_every=0)
    results = await campaigns.run_worker(client, store, options=options)
    assert paused == [second]
    assert [r.campaign_id for r in results] == [first]
    held = store.get_campaign(second)
    assert held is not None and (held.state, held.pause_code) == (CampaignState.PAUSED, "user")
    assert store.counts(second)["pending"] == 3 and store.counts(first)["accepted"] == 4


@pytest.mark.anyio
async def test_a_pause_found_in_the_ledger_is_reported_with_its_own_code(
    tmp_path: Path, env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore]
) -> None:
    client, sandbox, store = env
    cid = await _campaign(client, store, write_customers(tmp_path / "a.csv", 5))

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "progress" and event["counts"]["accepted"] == 1:
            # Another worker of the campaign had its credentials rejected and paused it.
            store.update_campaign(
                cid,
                state=CampaignState.PAUSED,
                pause_reason="credentials rejected",
                pause_code="auth",
            )

    options = _options(sandbox, concurrency=1, on_event=on_event, progress_every=0)
    result = await campaigns.run(client, store, cid, options)
    assert (result.state, result.pause_code) == (CampaignState.PAUSED, "auth")
    assert result.pause_reason == "credentials rejected" and result.counts["pending"] == 4


@pytest.mark.anyio
async def test_a_users_pause_made_while_a_request_is_out_is_not_written_over(
    tmp_path: Path, env: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore]
) -> None:
    client, sandbox, store = env
    cid = await _campaign(client, store, write_customers(tmp_path / "c.csv", 5))

    async def user_pauses(request: httpx.Request) -> None:
        # `qontak campaign pause` from another shell while the send is in flight; the
        # answer will be a 401, on which the runner pauses the campaign itself.
        if request.url.path.endswith("/broadcasts/whatsapp/direct"):
            store.update_campaign(
                cid, state=CampaignState.PAUSED, pause_reason="paused by user", pause_code="user"
            )

    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sandbox.app),
        base_url=SANDBOX_HOST,
        event_hooks={"request": [user_pauses]},
    )
    async with AsyncQontak(
        SANDBOX_CLIENT_ID,
        "wrong-secret",
        base_url=SANDBOX_BASE_URL,
        http_client=http,
        env_file=None,
        clock=sandbox.now,
    ) as bad:
        result = await campaigns.run(bad, store, cid, _options(sandbox, concurrency=1))
    await http.aclose()
    assert (result.state, result.pause_code) == (CampaignState.PAUSED, "user")
    held = store.get_campaign(cid)
    assert held is not None and (held.pause_code, held.pause_reason) == ("user", "paused by user")
    assert result.counts["pending"] == 5 and not sandbox.messages()
