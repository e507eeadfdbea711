"""The SQLite ledger: one file, WAL, every change committed before the method returns.

Why these settings:

- ``journal_mode=WAL`` lets ``qontak campaign status`` read while a run writes.
- ``synchronous=FULL``: a row's ``sending`` must survive a power cut, not only a crash of
  the process; at Qontak's rate (about one send a second) the extra fsync costs nothing.
- ``busy_timeout``: a reader or a second command waits for the writer instead of failing.

The SQL is shared with the PostgreSQL backend (:mod:`._sql`); this module holds what only
SQLite does: the connection, its transactions and the import's bulk insert. Schema changes
are numbered migrations recorded in ``schema_version``; opening a file runs the ones it has
not seen.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .._sqlite import enable_wal
from ._ledger import LedgerError, NewRow, RowState
from ._sql import BATCH, JSON_COMPACT, SQLITE, Executor, SQLStore, apply_migrations, migrations

__all__ = ["DEFAULT_DB", "ENV_DB", "MIGRATIONS", "SQLiteStore", "default_db_path"]

#: Environment variable naming the ledger file.
ENV_DB = "QONTAK_CAMPAIGN_DB"
#: The ledger file when neither ``--db`` nor :data:`ENV_DB` says otherwise.
DEFAULT_DB = "qontak-campaigns.db"

#: Numbered schema migrations (:func:`._sql.migrations`); all that a file has not seen run in
#: one transaction.
MIGRATIONS: list[list[str]] = migrations(SQLITE)

T = TypeVar("T")


def default_db_path() -> Path:
    """``$QONTAK_CAMPAIGN_DB``, else ``./qontak-campaigns.db``."""
    return Path(os.environ.get(ENV_DB) or DEFAULT_DB)


class SQLiteStore(SQLStore):
    """The ledger in one SQLite file (see the module notes). Implements :class:`.Store`."""

    dialect = SQLITE

    def __init__(self, path: str | os.PathLike[str] | None = None, *, durable: bool = True) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self._db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
            enable_wal(self._db)
            # durable=False (NORMAL) still survives a killed process, not a power cut.
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._ex = Executor(self._db, SQLITE)
            if self._seen_version() != len(MIGRATIONS):
                # In one write transaction: two processes opening a new file at once do not
                # both migrate it. An up-to-date file is opened without taking the write lock.
                self._write(lambda ex: apply_migrations(ex, MIGRATIONS, self.path))
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: not a usable campaign ledger ({exc})") from None

    # -- plumbing -------------------------------------------------------------------------
    def _seen_version(self) -> int:
        try:
            found = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        except sqlite3.OperationalError:
            return 0  # a new file: no schema_version table yet
        return int(found[0] or 0)

    def _read(self, work: Callable[[Executor], T]) -> T:
        return work(self._ex)

    def _write(self, work: Callable[[Executor], T]) -> T:
        with _Tx(self._db):
            return work(self._ex)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    # -- rows -----------------------------------------------------------------------------
    def add_rows(self, campaign_id: str, rows: Sequence[NewRow]) -> list[tuple[NewRow, int]]:
        """See :meth:`.Store.add_rows`."""
        # An import's hot loop: one executemany per batch. Which rows the unique index turns
        # away is known beforehand when no line of the batch is in the ledger yet (always, in
        # an import): a number the ledger holds, or one seen earlier in the batch (first wins).
        duplicates: list[tuple[NewRow, int]] = []
        with _Tx(self._db):
            lines = [row.line for row in rows]
            if len(set(lines)) != len(lines) or self._held(campaign_id, "line", lines):
                return self._add_rows_one_by_one(campaign_id, rows)
            first = self._held(campaign_id, "to_number", [row.to_number for row in rows])
            for row in rows:
                held = first.setdefault(row.to_number, row.line)
                if held != row.line:
                    duplicates.append((row, int(held)))
            encode = JSON_COMPACT.encode
            pending = RowState.PENDING.value
            self._db.executemany(
                _INSERT_ROW,
                [
                    (
                        campaign_id,
                        row.line,
                        row.to_number,
                        row.to_name,
                        encode(row.parameters),
                        row.zones,
                        pending,
                    )
                    for row in rows
                ],
            )
        return duplicates

    def _held(self, campaign_id: str, column: str, values: Sequence[Any]) -> dict[Any, int]:
        """``{value: line}`` of the campaign's rows whose ``column`` is one of ``values``."""
        found: dict[Any, int] = {}
        for start in range(0, len(values), BATCH):
            cond, params = SQLITE.one_of(column, values[start : start + BATCH])
            found.update(
                self._db.execute(
                    f"SELECT {column}, line FROM campaign_rows WHERE campaign_id = ? AND {cond}",
                    [campaign_id, *params],
                ).fetchall()
            )
        return found

    def _add_rows_one_by_one(
        self, campaign_id: str, rows: Sequence[NewRow]
    ) -> list[tuple[NewRow, int]]:
        duplicates: list[tuple[NewRow, int]] = []
        for row in rows:
            cur = self._db.execute(
                _INSERT_ROW,
                (
                    campaign_id,
                    row.line,
                    row.to_number,
                    row.to_name,
                    JSON_COMPACT.encode(row.parameters),
                    row.zones,
                    RowState.PENDING.value,
                ),
            )
            if cur.rowcount == 0:
                first = self._db.execute(
                    "SELECT line FROM campaign_rows WHERE campaign_id = ? AND to_number = ?",
                    (campaign_id, row.to_number),
                ).fetchone()
                duplicates.append((row, int(first[0]) if first else row.line))
        return duplicates

    # -- opt-outs -------------------------------------------------------------------------
    def add_optouts(self, numbers: Iterable[str], *, reason: str, now: float) -> int:
        """See :meth:`.Store.add_optouts`."""
        added = 0
        with _Tx(self._db):
            for number in numbers:
                cur = self._db.execute(
                    "INSERT INTO optouts (to_number, reason, added_at) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (number, reason, now),
                )
                added += cur.rowcount
        return added


_INSERT_ROW = (
    "INSERT INTO campaign_rows (campaign_id, line, to_number, to_name, parameters, zones, state) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


class _Tx:
    """``BEGIN IMMEDIATE … COMMIT`` (rollback on error): the write lock is taken up front,
    so two writers queue instead of failing halfway."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
