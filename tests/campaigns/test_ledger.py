"""The ledger on a real SQLite file: forward-only states, sending committed before the
request, crash recovery to unknown, duplicates by the unique index, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qontak.campaigns._ledger import (
    TRANSITIONS,
    Campaign,
    LedgerError,
    NewRow,
    RowState,
)
from qontak.campaigns._sqlite import MIGRATIONS, SQLiteStore


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


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "ledger.db")
    s.create_campaign(_campaign())
    return s


def test_sending_is_committed_before_claim_returns(store: SQLiteStore) -> None:
    store.add_rows("c1", _rows(3))
    claimed = store.claim("c1", 2, zones=None, now=10.0)
    assert [r.line for r in claimed] == [2, 3]
    # Another connection (another process) sees the rows as sending already.
    other = sqlite3.connect(store.path)
    states = dict(other.execute("SELECT line, state FROM campaign_rows").fetchall())
    assert states == {2: "sending", 3: "sending", 4: "pending"}


def test_crashed_sending_rows_become_unknown_never_pending(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    first = SQLiteStore(path)
    first.create_campaign(_campaign())
    first.add_rows("c1", _rows(3))
    first.claim("c1", 2, zones=None, now=10.0)
    # No close(): the process "dies" here.
    second = SQLiteStore(path)
    assert second.recover("c1") == 2
    counts = second.counts("c1")
    assert counts["unknown"] == 2 and counts["pending"] == 1 and counts["sending"] == 0


def test_duplicates_are_found_by_the_unique_index_first_wins(store: SQLiteStore) -> None:
    rows = _rows(2)
    dup = NewRow(line=9, to_number=rows[0].to_number, to_name="again", parameters={}, zones="")
    assert store.add_rows("c1", rows) == []
    assert store.add_rows("c1", [dup]) == [(dup, 2)]
    assert store.counts("c1")["pending"] == 2


def test_forbidden_moves_change_nothing(store: SQLiteStore) -> None:
    store.add_rows("c1", _rows(1))
    assert not store.transition("c1", 2, RowState.ACCEPTED, now=1.0, broadcast_id="b")
    [row] = store.claim("c1", 1, zones=None, now=1.0)
    assert store.transition("c1", 2, RowState.ACCEPTED, now=2.0, broadcast_id="b1")
    # Accepted is final: nothing moves it back, not even a second outcome.
    for target in RowState:
        assert not store.transition("c1", 2, target, now=3.0, broadcast_id="b2")
    [row] = list(store.iter_rows("c1"))
    assert row.state is RowState.ACCEPTED and row.broadcast_id == "b1"


def test_opted_out_numbers_are_skipped_at_claim(store: SQLiteStore) -> None:
    rows = _rows(3)
    store.add_rows("c1", rows)
    store.add_optouts([rows[1].to_number], reason="STOP", now=1.0)
    claimed = store.claim("c1", 10, zones=None, now=2.0)
    assert [r.line for r in claimed] == [2, 4]
    assert store.counts("c1")["skipped"] == 1


def test_claim_only_takes_rows_of_open_zones(store: SQLiteStore) -> None:
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


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="not a usable campaign ledger"):
        SQLiteStore(path)


_ACTIONS = st.lists(
    st.tuples(st.integers(2, 4), st.sampled_from([*RowState, "claim", "recover"])), max_size=30
)


@settings(max_examples=30, deadline=None)
@given(actions=_ACTIONS)
def test_states_only_move_along_the_state_machine(
    tmp_path_factory: pytest.TempPathFactory, actions: list[tuple[int, object]]
) -> None:
    store = SQLiteStore(tmp_path_factory.mktemp("h") / "l.db")
    store.create_campaign(_campaign())
    store.add_rows("c1", _rows(3))
    model = {2: RowState.PENDING, 3: RowState.PENDING, 4: RowState.PENDING}
    for line, action in actions:
        if action == "claim":
            for row in store.claim("c1", 1, zones=None, now=1.0):
                model[row.line] = RowState.SENDING
        elif action == "recover":
            store.recover("c1")
            model = {k: RowState.UNKNOWN if v is RowState.SENDING else v for k, v in model.items()}
        else:
            assert isinstance(action, RowState)
            moved = store.transition("c1", line, action, now=1.0, broadcast_id="b")
            assert moved == (action in TRANSITIONS[model[line]])
            if moved:
                model[line] = action
        assert {r.line: r.state for r in store.iter_rows("c1")} == model
    store.close()
