"""The PostgreSQL ledger's own rules, on the suite's real server: migrations once (even when
many workers start together), claims that skip rows another worker holds, row leases that a
heartbeat keeps and that expire into ``unknown``, passwords never shown, the extra named
when missing, ``--db postgresql://`` in the CLI, and a whole campaign with faults."""

from __future__ import annotations

import json
import pickle
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from qontak import ConfigurationError, campaigns
from qontak.campaigns import LedgerError, PostgresStore, RowState
from qontak.campaigns._ledger import Campaign, NewRow
from qontak.campaigns._postgres import MIGRATIONS
from qontak.cli import app
from qontak.sandbox import FaultConfig, RateLimitConfig, Sandbox
from qontak.testing import async_sandbox_client

from .conftest import (
    ALL_FAULTS,
    CHANNEL_ID,
    advancing,
    assert_ledger_matches_ground_truth,
    open_together,
    write_customers,
)
from .ledgers import fresh_database


def _campaign(cid: str = "c1") -> Campaign:
    return Campaign(
        id=cid,
        name="t",
        created_at=1.0,
        template_id="t",
        template_name="order_update",
        language="id",
        channel_id="ch",
    )


def _rows(n: int) -> list[NewRow]:
    return [
        NewRow(line=2 + i, to_number=f"62812{i:08d}", to_name="n", parameters={}, zones="Z")
        for i in range(n)
    ]


@pytest.fixture
def url(postgres: Any) -> str:
    return fresh_database(postgres)


def test_many_workers_starting_at_once_migrate_exactly_once(url: str) -> None:
    stores = open_together(lambda: PostgresStore(url), 8)
    with psycopg.connect(url) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    for s in stores:
        s.close()


def test_a_schema_4_database_gains_pause_codes_once_even_opened_by_many_at_once(
    url: str,
) -> None:
    # A ledger written before Campaign.pause_code (schema 4): `pause` wrote only its reason.
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, steps in enumerate(MIGRATIONS[:4], start=1):
            for statement in steps:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (%s)", (version,))
        for cid, state, reason in (
            ("u", "paused", "paused by user"),
            ("a", "paused", "credentials rejected: 401"),
            ("r", "ready", "paused by user"),
        ):
            conn.execute(
                "INSERT INTO campaigns (id, name, created_at, template_id, template_name, "
                "language, channel_id, template_json, state, pause_reason) "
                "VALUES (%s, 'n', 1, 't', 'tn', 'id', 'ch', '{}', %s, %s)",
                (cid, state, reason),
            )
    stores = open_together(lambda: PostgresStore(url), 4)
    assert len(MIGRATIONS) == 5 and stores[0].schema_version == 5
    with psycopg.connect(url) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [1, 2, 3, 4, 5]
    codes = {c.id: c.pause_code for c in stores[0].list_campaigns()}
    assert codes == {"u": "user", "a": None, "r": None}
    for s in stores:
        s.close()


def test_a_newer_schema_is_refused(url: str) -> None:
    PostgresStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(LedgerError, match="newer than this qontak"):
        PostgresStore(url)


def test_a_claim_skips_rows_another_worker_holds_instead_of_waiting(url: str) -> None:
    store = PostgresStore(url)
    store.create_campaign(_campaign())
    store.add_rows("c1", _rows(4))
    got: list[list[int]] = []
    with psycopg.connect(url) as other:
        # Another worker is in the middle of claiming lines 2 and 3.
        other.execute("SELECT line FROM campaign_rows WHERE line IN (2, 3) FOR UPDATE")
        worker = threading.Thread(
            target=lambda: got.append([r.line for r in store.claim("c1", 2, zones=None, now=1.0)])
        )
        worker.start()
        worker.join(5)
        assert not worker.is_alive(), "claim waited for the other worker's locks"
    assert got == [[4, 5]]
    store.close()


def test_concurrent_claims_never_take_a_row_twice(url: str) -> None:
    PostgresStore(url).close()
    first = PostgresStore(url)
    first.create_campaign(_campaign())
    first.add_rows("c1", _rows(300))
    taken: list[list[int]] = [[] for _ in range(4)]

    def claim(i: int) -> None:
        s = PostgresStore(url)
        while rows := s.claim("c1", 7, zones=None, now=1.0):
            taken[i].extend(r.line for r in rows)
        s.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [line for part in taken for line in part]
    assert sorted(every) == list(range(2, 302)), "a row claimed twice or never"
    assert sum(1 for part in taken if part) >= 2
    first.close()


def test_a_heartbeat_keeps_the_lease_and_a_silent_worker_loses_it_to_unknown(url: str) -> None:
    # Leases run on the database's clock: the test polls it (no fixed sleep to race a loaded
    # machine). The silent worker's lease is short; the live one's is long enough that no
    # stall between two statements loses it, and its heartbeat is seen moving its expiry.
    live = PostgresStore(url, lease_seconds=5.0)
    live.create_campaign(_campaign())
    live.add_rows("c1", _rows(3))
    assert [r.line for r in live.claim("c1", 1, zones=None, now=1.0)] == [2]
    other = PostgresStore(url)
    assert other.recover("c1") == 0, "live leases are left alone"
    dead = PostgresStore(url, lease_seconds=0.1)
    assert [r.line for r in dead.claim("c1", 1, zones=None, now=1.0)] == [3]

    def expiry(line: int) -> Any:
        with psycopg.connect(url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT lease_expires FROM campaign_rows WHERE line = %s", (line,)
            ).fetchone()
        assert found is not None
        return found[0]

    claimed_until = expiry(2)
    recovered, deadline = 0, time.monotonic() + 10
    while not recovered and time.monotonic() < deadline:
        time.sleep(0.02)
        assert live.renew() == 1  # the heartbeat
        recovered = other.recover("c1")
    # The live worker's row is still its own, its lease pushed on; the silent one's expired.
    assert recovered == 1
    assert expiry(2) > claimed_until
    states = {r.line: r.state for r in other.iter_rows("c1")}
    assert states == {2: RowState.SENDING, 3: RowState.UNKNOWN, 4: RowState.PENDING}
    # The silent worker's late answer is still recorded (unknown → accepted is proof) …
    assert dead.transition("c1", 3, RowState.ACCEPTED, now=2.0, broadcast_id="b3")
    # … but an expired row is never handed out again by a claim.
    assert [r.line for r in other.claim("c1", 5, zones=None, now=2.0)] == [4]
    for s in (live, dead, other):
        s.close()


def test_a_sending_row_moves_only_by_the_worker_holding_it(url: str) -> None:
    # Worker A gives row 2 back (a 429: sending → pending) but the commit's answer is lost;
    # meanwhile worker B claims the row again. A's retry of the same statement must not
    # move B's claim back to pending, or a third claim would send it a second time.
    a = PostgresStore(url)
    a.create_campaign(_campaign())
    a.add_rows("c1", _rows(1))
    assert [r.line for r in a.claim("c1", 1, zones=None, now=1.0)] == [2]
    assert a.transition("c1", 2, RowState.PENDING, now=2.0, reason="rate limited")
    b = PostgresStore(url)
    assert [r.line for r in b.claim("c1", 1, zones=None, now=3.0)] == [2]
    for target in (RowState.PENDING, RowState.UNKNOWN, RowState.FAILED, RowState.ACCEPTED):
        assert not a.transition("c1", 2, target, now=4.0, broadcast_id="late", code="x")
    assert [r.state for r in a.iter_rows("c1")] == [RowState.SENDING]
    assert b.renew() == 1, "the row is still under B's lease"
    assert a.claim("c1", 1, zones=None, now=5.0) == []

    def lease(line: int) -> tuple[Any, bool]:
        with psycopg.connect(url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT lease_owner, lease_expires IS NOT NULL FROM campaign_rows WHERE line = %s",
                (line,),
            ).fetchone()
        assert found is not None
        return found[0], found[1]

    assert lease(2) == (b.owner, True)
    # B, its holder, settles it, and lets the lease go.
    assert b.transition("c1", 2, RowState.ACCEPTED, now=6.0, broadcast_id="b2")
    assert [(r.state, r.broadcast_id) for r in a.iter_rows("c1")] == [(RowState.ACCEPTED, "b2")]
    assert lease(2) == (None, False)
    # A row taken by a transition rather than a claim is held the same way: leased to its
    # taker, renewed by its heartbeat, moved by nobody else.
    a.add_rows("c1", [NewRow(line=3, to_number="6281299", to_name="n", parameters={}, zones="Z")])
    assert a.transition("c1", 3, RowState.SENDING, now=7.0)
    assert lease(3) == (a.owner, True) and a.renew() == 1
    assert not b.transition("c1", 3, RowState.PENDING, now=8.0)
    assert a.transition("c1", 3, RowState.PENDING, now=8.0) and lease(3) == (None, False)
    for s in (a, b):
        s.close()


def test_passwords_in_the_url_are_never_shown(postgres: Any) -> None:
    fresh = fresh_database(postgres)
    url = "postgresql://ops:hunter2-canary@127.0.0.1:1/qontak?password=also-canary"
    assert "canary" not in campaigns.redact(url)
    with pytest.raises(LedgerError) as caught:
        PostgresStore(url, reconnect_timeout=0.0)
    assert "canary" not in str(caught.value) and "ops:***@127.0.0.1" in str(caught.value)
    store = PostgresStore(fresh.replace("postgresql://qontak@", "postgresql://qontak:pw-canary@"))
    assert "canary" not in repr(store)
    with pytest.raises(TypeError):
        pickle.dumps(store)
    store.close()
    with pytest.raises(LedgerError) as bad:
        PostgresStore("postgresql://ops:hunter2-canary@/db?port=abc", reconnect_timeout=0.0)
    assert "canary" not in str(bad.value)
    result = CliRunner().invoke(app, ["campaign", "list", "--db", url])
    assert result.exit_code != 0
    assert "canary" not in result.stdout + result.stderr


def test_a_missing_postgres_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigurationError, match=r"qontak\[postgres\]") as caught:
        campaigns.open_ledger("postgresql://qontak@/db")
    assert "\n" not in str(caught.value) and caught.value.setting == "db"


def test_the_cli_opens_a_postgres_ledger_from_db_or_the_environment(
    url: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    added = runner.invoke(app, ["optout", "add", "0812-1111-0009", "--db", url, "--json"])
    assert added.exit_code == 0, added.stderr
    listed = runner.invoke(app, ["optout", "list", "--json"], env={"QONTAK_CAMPAIGN_DB": url})
    assert [o["to_number"] for o in json.loads(listed.stdout)] == ["6281211110009"]
    assert not list(tmp_path.iterdir()), "no SQLite file may appear"
    missing = runner.invoke(app, ["campaign", "show", "c-nope", "--db", url])
    assert missing.exit_code == 2 and "no campaign 'c-nope'" in missing.stderr


@pytest.mark.anyio
async def test_a_campaign_with_every_fault_on_postgres_matches_the_ground_truth(
    url: str, tmp_path: Path
) -> None:
    box = Sandbox(
        rate_limits=RateLimitConfig(enabled=False), faults=FaultConfig(seed=3, **ALL_FAULTS)
    )
    store = campaigns.open_ledger(url)
    source = write_customers(tmp_path / "customers.csv", 150)
    async with async_sandbox_client(box, max_retries=8) as (client, sandbox):
        template = await client.templates.find("order_update", language="id")
        created = campaigns.create(
            store,
            source,
            template=template,
            channel=CHANNEL_ID,
            mapping={"phone": "to_number", "nama": "1", "order": "2"},
            name=f"pg-{uuid.uuid4().hex[:6]}",
        )
        cid = created.campaign.id
        options = campaigns.RunOptions(clock=sandbox.now, sleep=advancing(sandbox), concurrency=8)
        for _ in range(6):
            await campaigns.run(client, store, cid, options)
            sandbox.advance(120)
            await campaigns.reconcile(client, store, cid, settle_after=60, now=sandbox.now())
            counts = store.counts(cid)
            if counts["pending"] == 0 and counts["unknown"] == 0:
                break
        assert_ledger_matches_ground_truth(store, cid, sandbox.messages())
        assert store.counts(cid)["accepted"] == 150
    store.close()
    box.close()


def test_delivery_tracking_moves_forward_only_and_keeps_its_mark(url: str) -> None:
    store = PostgresStore(url)
    store.create_campaign(_campaign())
    store.add_rows("c1", _rows(3))
    for row in store.claim("c1", 3, zones=None, now=10.0):
        store.transition("c1", row.line, RowState.ACCEPTED, now=11.0, broadcast_id=f"b{row.line}")
    assert store.tracking_mark("c1") == (None, 0, 0)
    moved = store.apply_delivery(
        "c1",
        [(2, "delivered", None, "wamid.2", 12.0), (3, "read", None, None, 12.0)],
        source="webhook",
        mark=("hooks.db", 7),
        requests=0,
    )
    assert moved == 2 and store.tracking_mark("c1") == ("hooks.db", 7, 0)
    # Backwards is refused; a poll that reads "read" for line 2 moves it and counts requests.
    assert store.apply_delivery("c1", [(3, "sent", None, None, None)], source="poll") == 0
    assert store.apply_delivery("c1", [(2, "read", None, None, None)], source="poll", requests=4)
    assert store.tracking_mark("c1") == ("hooks.db", 7, 4)
    assert store.delivery_sources("c1") == {"webhook": 1, "poll": 1}
    assert store.delivery_row("c1", external_id="wamid.2", to_number=None) == (
        2,
        "accepted",
        10.0,
        "read",
        "wamid.2",
    )
    assert store.delivery_row("c1", external_id=None, to_number=_rows(3)[2].to_number) == (
        4,
        "accepted",
        10.0,
        None,
        None,
    )
    # Line 4 is open and no webhook was heard of it; line 2 was heard (linked by webhook).
    assert store.unheard_rows("c1", sent_before=20.0) == [(4, "b4")]
    store.close()
