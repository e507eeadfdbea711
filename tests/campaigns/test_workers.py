"""Several ``qontak campaign worker`` processes on one campaign in a real PostgreSQL ledger,
against the sandbox on loopback with faults on: two are SIGKILLed mid-run, the survivors
finish, the dead workers' rows in flight become ``unknown`` when their leases expire (never
``pending``), and after reconcile the server's ground truth shows every row accepted exactly
once. Then the database itself is restarted under running workers: they reconnect, and
nothing is sent twice."""

from __future__ import annotations

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

from qontak import AsyncQontak, Qontak, campaigns
from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    RateLimitConfig,
    Sandbox,
)
from qontak.sandbox._ratelimit import Decision

from .conftest import CHANNEL_ID, assert_ledger_matches_ground_truth, write_customers
from .ledgers import fresh_database

#: Each worker's share of the sandbox's limits: 4 workers together stay under the sandbox's
#: budget (with room for the network's jitter), and would pass it without their limiter.
WORKER_LIMITS = "send=180/min,all=360/min,burst=3/s"
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
    rows = 48
    cid = _create(url, db, write_customers(tmp_path / "c.csv", rows))
    procs = [
        _worker(url, db, cid, tmp_path / f"w{i}.log", "--lease", "1.5", "-c", "2") for i in range(4)
    ]
    try:
        _wait_for(db, 12, procs)
        victims = procs[:2]
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
    rows = 60
    cid = _create(url, db, write_customers(tmp_path / "c.csv", rows))
    procs = [
        _worker(url, db, cid, tmp_path / f"w{i}.log", "--lease", "3", "-c", "2", limits="off")
        for i in range(2)
    ]
    try:
        _wait_for(db, 15, procs)
        postgres.restart(down=1.0)
        codes = [p.wait(60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    logs = "\n".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
    assert all(c in (0, 5) for c in codes), logs
    _settle(url, db, cid, box, rows)
