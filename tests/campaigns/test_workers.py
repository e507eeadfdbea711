"""Several ``qontak campaign worker`` processes on one campaign in a real PostgreSQL ledger,
against the sandbox on loopback with faults on: two are SIGKILLed mid-run, the survivors
finish, the dead workers' rows in flight become ``unknown`` when their leases expire (never
``pending``), and after reconcile the server's ground truth shows every row accepted exactly
once. Then the database itself is restarted under running workers: they reconnect, and
nothing is sent twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from typer.testing import CliRunner

import qontak
from qontak import AsyncQontak, Qontak, campaigns
from qontak.cli import app
from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    RateLimitConfig,
    Sandbox,
)
from qontak.sandbox._ratelimit import Decision
from qontak.testing import async_sandbox_client

from .conftest import CHANNEL_ID, advancing, assert_ledger_matches_ground_truth, write_customers
from .ledgers import fresh_database

#: The workers' rate limits. With ``qontak.SharedRateLimiter`` they share one budget in the
#: ledger's database (10/s); without it each takes a quarter (3/s). Either way the four
#: together stay under the sandbox's 14/s, with room for the time between a grant and the
#: request's arrival on a loaded host; without a limit they pass it (checked).
SHARED_BUDGET = hasattr(qontak, "SharedRateLimiter")
WORKER_LIMITS = (
    "send=600/min,all=1200/min,burst=10/s"
    if SHARED_BUDGET
    else "send=180/min,all=360/min,burst=3/s"
)
SANDBOX_LIMITS = RateLimitConfig(
    direct_per_minute=840, overall_per_minute=1680, burst_per_second=14
)
FAULTS = FaultConfig(seed=7, error_before=0.03, error_after=0.03, lost_response=0.04, scope="send")


@pytest.fixture
def served() -> Iterator[tuple[Sandbox, str, list[Decision]]]:
    box = Sandbox(rate_limits=SANDBOX_LIMITS, faults=FAULTS)
    refused: list[Decision] = []
    check = box.limiter.check

    def counting(client_id: str, *, is_send: bool, now: float) -> Decision:
        # The sandbox's own limiter decides; this only keeps its refusals for the assert.
        decision = check(client_id, is_send=is_send, now=now)
        if not decision.allowed:
            refused.append(decision)
        return decision

    box.limiter.check = counting  # type: ignore[method-assign]
    with box.run_in_thread() as url:
        yield box, url, refused
    box.close()


def _create(url: str, db: str, path: Path) -> str:
    store = campaigns.open_ledger(db)
    with Qontak(
        SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, base_url=url, env_file=None, rate_limits=False
    ) as client:
        template = client.templates.find("order_update", language="id")
    created = campaigns.create(
        store,
        path,
        template=template,
        channel=CHANNEL_ID,
        mapping={"phone": "to_number", "nama": "1", "order": "2"},
    )
    store.close()
    return created.campaign.id


def _worker(
    url: str, db: str, cid: str, log: Path, *extra: str, limits: str = WORKER_LIMITS
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
    env.update(
        QONTAK_BASE_URL=url,
        QONTAK_CLIENT_ID=SANDBOX_CLIENT_ID,
        QONTAK_CLIENT_SECRET=SANDBOX_CLIENT_SECRET,
        QONTAK_CAMPAIGN_DB=db,
        QONTAK_RATE_LIMITS=limits,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "qontak", "campaign", "worker", "--campaign", cid, *extra],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )


def _count(db: str, sql: str, *params: Any) -> int:
    with psycopg.connect(db) as conn:
        found = conn.execute(sql, params).fetchone()
    return int(found[0]) if found else 0


def _wait_for(db: str, accepted: int, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        if _count(db, "SELECT COUNT(*) FROM campaign_rows WHERE state = 'accepted'") >= accepted:
            return
        time.sleep(0.05)


def _wait_started(logs: Path, workers: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(
        "started" in (logs / f"w{i}.log").read_text() for i in range(workers)
    ):
        time.sleep(0.05)


def _settle(url: str, db: str, cid: str, box: Sandbox, rows: int) -> None:
    """Reconcile (and send what was proven absent) until nothing is uncertain, then check
    the ledger against the server's ground truth."""

    async def go() -> None:
        store = campaigns.open_ledger(db)
        async with AsyncQontak(
            SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, base_url=url, env_file=None, rate_limits=False
        ) as client:
            for _ in range(6):
                await campaigns.reconcile(client, store, cid, settle_after=0.3)
                result = await campaigns.run(client, store, cid, campaigns.RunOptions())
                if result.counts["unknown"] == 0 and result.counts["pending"] == 0:
                    break
                await anyio.sleep(0.4)
        assert_ledger_matches_ground_truth(store, cid, box.messages())
        assert store.counts(cid)["accepted"] == rows
        store.close()

    anyio.run(go)


def test_four_workers_two_killed_survivors_finish_and_every_row_is_accepted_once(
    postgres: Any, tmp_path: Path, served: tuple[Sandbox, str, list[Decision]]
) -> None:
    box, url, refused = served
    db = fresh_database(postgres)
    rows = 40
    cid = _create(url, db, write_customers(tmp_path / "c.csv", rows))
    procs = [
        _worker(url, db, cid, tmp_path / f"w{i}.log", "--lease", "1.5", "-c", "2") for i in range(4)
    ]
    try:
        _wait_started(tmp_path, 4)
        _wait_for(db, 10, procs)
        victims = procs[:2]
        assert all(p.poll() is None for p in victims), "the workers ended before the kill"
        for p in victims:
            p.send_signal(signal.SIGKILL)
        for p in victims:
            p.wait(10)
        # What the dead workers had in flight, by their leases.
        with psycopg.connect(db) as conn:
            orphans = [
                line
                for p in victims
                for (line,) in conn.execute(
                    "SELECT line FROM campaign_rows WHERE state = 'sending' "
                    "AND lease_owner LIKE %s",
                    (f"%:{p.pid}:%",),
                )
            ]
        codes = [p.wait(60) for p in procs[2:]]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    logs = "\n".join((tmp_path / f"w{i}.log").read_text() for i in range(4))
    assert codes and all(c in (0, 5) for c in codes), logs
    assert orphans, "the killed workers had nothing in flight: kill them earlier"
    # The survivors stayed until the dead leases ran out: nothing is left `sending`, and
    # the dead workers' rows are unknown (for reconcile), never pending.
    with psycopg.connect(db) as conn:
        states = dict(
            conn.execute(
                "SELECT line, state FROM campaign_rows WHERE line = ANY(%s)", (orphans,)
            ).fetchall()
        )
    assert set(states.values()) == {"unknown"}, states
    assert _count(db, "SELECT COUNT(*) FROM campaign_rows WHERE state = 'sending'") == 0
    assert _count(db, "SELECT COUNT(*) FROM campaign_rows WHERE state = 'pending'") == 0
    assert not refused, f"the workers together went past the sandbox's limit: {refused[:3]}"
    _settle(url, db, cid, box, rows)


def test_postgres_restarted_mid_run_workers_reconnect_and_nothing_is_sent_twice(
    postgres: Any, tmp_path: Path, served: tuple[Sandbox, str, list[Decision]]
) -> None:
    box, url, _ = served
    db = fresh_database(postgres)
    rows = 40
    cid = _create(url, db, write_customers(tmp_path / "c.csv", rows))
    procs = [
        _worker(url, db, cid, tmp_path / f"w{i}.log", "--lease", "2", "-c", "2", limits="off")
        for i in range(2)
    ]
    try:
        # Both running (connected, sending) before the server goes away under them.
        _wait_started(tmp_path, 2)
        _wait_for(db, 10, procs)
        postgres.restart(down=0.5)
        codes = [p.wait(60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    logs = "\n".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
    assert all(c in (0, 5) for c in codes), logs
    _settle(url, db, cid, box, rows)


@pytest.mark.anyio
async def test_a_pause_from_another_host_stops_every_worker_and_a_worker_resumes_it(
    postgres: Any, tmp_path: Path
) -> None:
    db = fresh_database(postgres)
    box = Sandbox(rate_limits=RateLimitConfig(enabled=False), faults=FaultConfig())
    stores = [campaigns.open_ledger(db) for _ in range(3)]
    operator = stores[2]
    async with async_sandbox_client(box, rate_limits=False) as (client, sandbox):
        template = await client.templates.find("order_update", language="id")
        cid = campaigns.create(
            operator,
            write_customers(tmp_path / "c.csv", 60),
            template=template,
            channel=CHANNEL_ID,
            mapping={"phone": "to_number", "nama": "1", "order": "2"},
        ).campaign.id
        results: list[campaigns.RunResult] = []

        def on_event(event: dict[str, Any]) -> None:
            # Another host pauses the campaign once a few rows went out.
            if operator.counts(cid)["accepted"] >= 10:
                operator.update_campaign(
                    cid, state=campaigns.CampaignState.PAUSED, pause_reason="paused by user"
                )

        async def work(store: campaigns.Store) -> None:
            options = campaigns.RunOptions(
                clock=sandbox.now,
                sleep=advancing(sandbox),
                concurrency=2,
                on_event=on_event,
                progress_every=0.0,
            )
            results.extend(
                await campaigns.run_worker(client, store, campaign_id=cid, options=options)
            )

        async with anyio.create_task_group() as tg:
            for store in stores[:2]:
                tg.start_soon(work, store)
        counts = operator.counts(cid)
        assert [r.state for r in results] == [campaigns.CampaignState.PAUSED] * 2
        assert counts["sending"] == 0 and 10 <= counts["accepted"] < 60, counts
        assert len(box.messages()) == counts["accepted"]
        # A worker without --campaign leaves a paused campaign alone …
        assert await campaigns.run_worker(client, stores[0]) == []
        # … one named on it resumes it and finishes.
        [done] = await campaigns.run_worker(client, stores[0], campaign_id=cid)
        assert done.state is campaigns.CampaignState.DONE and done.counts["accepted"] == 60
        assert_ledger_matches_ground_truth(operator, cid, box.messages())
    for store in stores:
        store.close()
    box.close()


def test_a_worker_on_a_sqlite_ledger_sends_the_campaign_alone(
    tmp_path: Path, served: tuple[Sandbox, str, list[Decision]]
) -> None:
    box, url, _ = served
    box.set_faults(FaultConfig())
    db = str(tmp_path / "ledger.db")
    cid = _create(url, db, write_customers(tmp_path / "c.csv", 12))
    env = {
        "QONTAK_BASE_URL": url,
        "QONTAK_CLIENT_ID": SANDBOX_CLIENT_ID,
        "QONTAK_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "QONTAK_RATE_LIMITS": "off",
        "QONTAK_CAMPAIGN_DB": None,
    }
    done = CliRunner().invoke(app, ["campaign", "worker", "--db", db, "--json"], env=env)
    assert done.exit_code == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["event"] == "finished" and events[-1]["state"] == "done"
    assert events[-1]["campaign_id"] == cid and len(box.messages()) == 12
