"""Several processes opening one new SQLite file at the same moment (workers started
together, a receiver with several uvicorn workers): none may fail with "database is
locked". Switching a new file to WAL is refused at once, without SQLite's busy handler,
to all but one of them; every store retries it (``qontak._sqlite.enable_wal``)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qontak import SharedRateLimiter, campaigns
from qontak._sqlite import enable_wal
from qontak.webhooks import SQLiteWebhookStore

ROUNDS, PROCESSES = 12, 8


def _limiter(path: Path) -> None:
    limiter = SharedRateLimiter(f"sqlite:///{path}", key="open-test")
    limiter.reserve()
    limiter.close()


def _ledger(path: Path) -> None:
    campaigns.SQLiteStore(path).close()


def _webhooks(path: Path) -> None:
    SQLiteWebhookStore(path).close()


def _open(opener: Callable[[Path], None], path: Path, start: Any, out: Any) -> None:
    start.wait()
    try:
        opener(path)
        out.put("ok")
    except BaseException as exc:  # reported to the parent, which fails the test
        out.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("opener", [_limiter, _ledger, _webhooks], ids=lambda f: f.__name__)
def test_processes_opening_a_new_file_together_all_succeed(
    opener: Callable[[Path], None], tmp_path: Path
) -> None:
    ctx = multiprocessing.get_context("fork")
    failures = []
    for n in range(ROUNDS):
        path = tmp_path / f"{n}.db"
        start, out = ctx.Barrier(PROCESSES), ctx.Queue()
        procs = [
            ctx.Process(target=_open, args=(opener, path, start, out)) for _ in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        failures += [r for r in results if r != "ok"]
    assert not failures, failures[:3]


def test_enable_wal_waits_for_a_lock_then_gives_up_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(other, timeout=0.05)
    holder.execute("COMMIT")
    enable_wal(other, timeout=1)
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
