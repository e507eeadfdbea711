"""The ledger's Store protocol on both backends (a real SQLite file, a real PostgreSQL
database): forward-only states, sending committed before the request, crash recovery to
unknown, duplicates by the unique index, opt-outs at claim; SQLite's own migrations."""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qontak.campaigns import Store
from qontak.campaigns._ledger import (
    TRANSITIONS,
    USER_PAUSE,
    Campaign,
    CampaignState,
    LedgerError,
    NewRow,
    RowState,
)
from qontak.campaigns._sqlite import MIGRATIONS, SQLiteStore

from .conftest import open_together
from .ledgers import BACKENDS, Opener, opener


def _campaign(cid: str = "c1") -> Campaign:
    return Campaign(
        id=cid,
        name="test",
        created_at=1.0,
        template_id="t",
        template_name="order_update",
        language="id",
        channel_id="ch",
    )


def _rows(n: int, start: int = 2) -> list[NewRow]:
    return [
        NewRow(
            line=start + i,
            to_number=f"62812000{i:05d}",
            to_name=f"n{i}",
            parameters={"body": []},
            zones="Asia/Jakarta",
        )
        for i in range(n)
    ]


@pytest.fixture(params=BACKENDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    return opener(request, request.param, tmp_path)


@pytest.fixture
def store(open_store: Opener) -> Store:
    s = open_store()
    s.create_campaign(_campaign())
    return s


def test_sending_is_committed_before_claim_returns(store: Store, open_store: Opener) -> None:
    store.add_rows("c1", _rows(3))
    claimed = store.claim("c1", 2, zones=None, now=10.0)
    assert [r.line for r in claimed] == [2, 3]
    # Another connection (another process) sees the rows as sending already.
    other = open_store()
    states = {r.line: r.state.value for r in other.iter_rows("c1")}
    assert states == {2: "sending", 3: "sending", 4: "pending"}
    other.close()


def test_crashed_sending_rows_become_unknown_never_pending(open_store: Opener) -> None:
    first = open_store(lease=0.05)
    first.create_campaign(_campaign())
    first.add_rows("c1", _rows(3))
    first.claim("c1", 2, zones=None, now=10.0)
    # No close(): the process "dies" here. On PostgreSQL its lease then runs out, by the
    # database's clock: poll for it rather than sleep a fixed time.
    second = open_store()
    recovered, deadline = second.recover("c1"), time.monotonic() + 10
    while recovered < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
        recovered += second.recover("c1")
    assert recovered == 2
    counts = second.counts("c1")
    assert counts["unknown"] == 2 and counts["pending"] == 1 and counts["sending"] == 0


def test_duplicates_are_found_by_the_unique_index_first_wins(store: Store) -> None:
    rows = _rows(2)
    dup = NewRow(line=9, to_number=rows[0].to_number, to_name="again", parameters={}, zones="")
    assert store.add_rows("c1", rows) == []
    assert store.add_rows("c1", [dup]) == [(dup, 2)]
    assert store.counts("c1")["pending"] == 2


def test_duplicates_within_one_batch_first_wins(store: Store) -> None:
    rows = _rows(2)
    dup = NewRow(line=9, to_number=rows[1].to_number, to_name="again", parameters={}, zones="")
    assert store.add_rows("c1", [*rows, dup]) == [(dup, 3)]
    assert [r.to_name for r in store.iter_rows("c1")] == ["n0", "n1"]


def test_forbidden_moves_change_nothing(store: Store) -> None:
    store.add_rows("c1", _rows(1))
    assert not store.transition("c1", 2, RowState.ACCEPTED, now=1.0, broadcast_id="b")
    [row] = store.claim("c1", 1, zones=None, now=1.0)
    assert store.transition("c1", 2, RowState.ACCEPTED, now=2.0, broadcast_id="b1")
    # Accepted is final: nothing moves it back, not even a second outcome.
    for target in RowState:
        assert not store.transition("c1", 2, target, now=3.0, broadcast_id="b2")
    [row] = list(store.iter_rows("c1"))
    assert row.state is RowState.ACCEPTED and row.broadcast_id == "b1"


def test_opted_out_numbers_are_skipped_at_claim(store: Store) -> None:
    rows = _rows(3)
    store.add_rows("c1", rows)
    store.add_optouts([rows[1].to_number], reason="STOP", now=1.0)
    claimed = store.claim("c1", 10, zones=None, now=2.0)
    assert [r.line for r in claimed] == [2, 4]
    assert store.counts("c1")["skipped"] == 1


def test_claim_only_takes_rows_of_open_zones(store: Store) -> None:
    rows = _rows(2)
    rows[1].zones = "Asia/Jayapura"
    store.add_rows("c1", rows)
    assert [r.line for r in store.claim("c1", 10, zones=["Asia/Jayapura"], now=1.0)] == [3]
    assert store.claim("c1", 10, zones=[], now=1.0) == []


def test_migrations_run_once_and_a_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    SQLiteStore(path).close()
    store = SQLiteStore(path)
    assert store.schema_version == len(MIGRATIONS)
    store._db.execute("INSERT INTO schema_version (version) VALUES (99)")
    store.close()
    with pytest.raises(LedgerError, match="newer"):
        SQLiteStore(path)


def test_a_users_pause_written_before_pause_codes_is_still_the_users(tmp_path: Path) -> None:
    # A ledger of schema 3 (before Campaign.pause_code): `pause` wrote only its reason.
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, steps in enumerate(MIGRATIONS[:3], start=1):
            for statement in steps:
                db.execute(statement)
            db.execute("INSERT INTO schema_version VALUES (?)", (version,))
        for cid, reason in (("u", "paused by user"), ("a", "credentials rejected: 401")):
            db.execute(
                "INSERT INTO campaigns (id, name, created_at, template_id, template_name, "
                "language, channel_id, template_json, state, pause_reason) "
                "VALUES (?, 'n', 1, 't', 'tn', 'id', 'ch', '{}', 'paused', ?)",
                (cid, reason),
            )
    # Several commands opening the old file at once: one migrates, the others find it done.
    stores = open_together(lambda: SQLiteStore(path), 4)
    assert len(stores) == 4
    store = stores[0]
    assert store.schema_version == len(MIGRATIONS) == 4
    with sqlite3.connect(path) as db:
        versions = [v for (v,) in db.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [1, 2, 3, 4]
    codes = {c.id: c.pause_code for c in store.list_campaigns()}
    assert codes == {"u": "user", "a": None}
    for s in stores:
        s.close()


def test_pause_codes_are_kept(store: Store) -> None:
    store.update_campaign("c1", state=CampaignState.PAUSED, pause_reason="x", pause_code="user")
    found = store.get_campaign("c1")
    assert found is not None and (found.state, found.pause_code) == (CampaignState.PAUSED, "user")
    assert found.to_dict()["pause_code"] == "user"
    store.update_campaign("c1", state=CampaignState.RUNNING, pause_reason=None, pause_code=None)
    found = store.get_campaign("c1")
    assert found is not None and found.pause_code is None


def test_conditional_updates_keep_a_users_pause_and_check_the_state(store: Store) -> None:
    user = {"state": CampaignState.PAUSED, "pause_reason": "x", "pause_code": USER_PAUSE}
    assert store.update_campaign("c1", **user)
    running = {"state": CampaignState.RUNNING, "pause_reason": None, "pause_code": None}
    assert not store.update_campaign("c1", keep_user_pause=True, **running)
    found = store.get_campaign("c1")
    assert found is not None and (found.state, found.pause_code) == (CampaignState.PAUSED, "user")
    assert not store.update_campaign("c1", only_from=(CampaignState.DONE,), **running)
    assert store.update_campaign("c1", only_from=(CampaignState.PAUSED,), **running)
    # Not a person's pause (a runner's, or none): the run may lift it.
    assert store.update_campaign("c1", state=CampaignState.PAUSED, pause_code="auth")
    assert store.update_campaign("c1", keep_user_pause=True, **running)
    assert store.update_campaign("c1", state=CampaignState.PAUSED, pause_code=None)
    assert store.update_campaign("c1", keep_user_pause=True, **running)
    assert not store.update_campaign("nope", **running)


def test_creating_a_campaign_again_is_a_retry_not_a_second_campaign(store: Store) -> None:
    # The same insert again (PostgreSQL retries a statement whose commit's answer was lost).
    store.create_campaign(_campaign())
    assert [c.id for c in store.list_campaigns()] == ["c1"]
    other = dataclasses.replace(_campaign(), created_at=2.0)
    with pytest.raises(LedgerError, match="already taken"):
        store.create_campaign(other)


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="not a usable campaign ledger"):
        SQLiteStore(path)


_ACTIONS = st.lists(
    st.tuples(st.integers(2, 4), st.sampled_from([*RowState, "claim", "recover"])), max_size=30
)


@pytest.fixture(params=BACKENDS)
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """One ledger for every hypothesis example (each example takes a new campaign). Leases
    of no time: ``recover`` here stands for a crash whose leases have all run out."""
    return opener(request, request.param, tmp_path)(lease=0.0)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions=_ACTIONS)
def test_states_only_move_along_the_state_machine(
    shared_store: Store, actions: list[tuple[int, object]]
) -> None:
    store = shared_store
    cid = f"c-{uuid.uuid4().hex[:8]}"
    store.create_campaign(_campaign(cid))
    store.add_rows(cid, _rows(3))
    model = {2: RowState.PENDING, 3: RowState.PENDING, 4: RowState.PENDING}
    for line, action in actions:
        if action == "claim":
            for row in store.claim(cid, 1, zones=None, now=1.0):
                model[row.line] = RowState.SENDING
        elif action == "recover":
            store.recover(cid)
            model = {k: RowState.UNKNOWN if v is RowState.SENDING else v for k, v in model.items()}
        else:
            assert isinstance(action, RowState)
            moved = store.transition(cid, line, action, now=1.0, broadcast_id="b")
            assert moved == (action in TRANSITIONS[model[line]])
            if moved:
                model[line] = action
        assert {r.line: r.state for r in store.iter_rows(cid)} == model
