"""The SQLite ledger: one file, WAL, every change committed before the method returns.

Why these settings:

- ``journal_mode=WAL`` lets ``qontak campaign status`` read while a run writes.
- ``synchronous=FULL``: a row's ``sending`` must survive a power cut, not only a crash of
  the process; at Qontak's rate (about one send a second) the extra fsync costs nothing.
- ``busy_timeout``: a reader or a second command waits for the writer instead of failing.

The SQL stays portable (``ON CONFLICT DO NOTHING``, no SQLite-only functions) so the
PostgreSQL backend can share it. Schema changes are numbered migrations recorded in
``schema_version``; opening a file runs the ones it has not seen.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ._ledger import (
    Campaign,
    CampaignState,
    LedgerError,
    NewRow,
    Reject,
    Row,
    RowState,
    sources_of,
)

__all__ = ["DEFAULT_DB", "ENV_DB", "MIGRATIONS", "SQLiteStore", "default_db_path"]

#: Environment variable naming the ledger file.
ENV_DB = "QONTAK_CAMPAIGN_DB"
#: The ledger file when neither ``--db`` nor :data:`ENV_DB` says otherwise.
DEFAULT_DB = "qontak-campaigns.db"

#: Numbered schema migrations; each runs once, in order, in one transaction.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE campaigns (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at REAL NOT NULL,
            template_id TEXT NOT NULL,
            template_name TEXT NOT NULL,
            language TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            template_json TEXT NOT NULL,
            state TEXT NOT NULL,
            pause_reason TEXT,
            start_at REAL,
            send_window TEXT,
            source TEXT,
            fingerprint TEXT,
            lease_owner TEXT,
            lease_until REAL
        )""",
        """CREATE TABLE campaign_rows (
            campaign_id TEXT NOT NULL REFERENCES campaigns(id),
            line INTEGER NOT NULL,
            to_number TEXT NOT NULL,
            to_name TEXT NOT NULL,
            parameters TEXT NOT NULL,
            zones TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            broadcast_id TEXT,
            error_code TEXT,
            error_reason TEXT,
            sent_at REAL,
            settled_at REAL,
            PRIMARY KEY (campaign_id, line)
        )""",
        "CREATE INDEX campaigns_fingerprint ON campaigns (fingerprint)",
        "CREATE UNIQUE INDEX campaign_rows_number ON campaign_rows (campaign_id, to_number)",
        "CREATE INDEX campaign_rows_state ON campaign_rows (campaign_id, state, line)",
        """CREATE TABLE campaign_rejects (
            campaign_id TEXT NOT NULL REFERENCES campaigns(id),
            line INTEGER NOT NULL,
            field TEXT NOT NULL,
            reason TEXT NOT NULL,
            code TEXT NOT NULL,
            to_number TEXT
        )""",
        "CREATE INDEX campaign_rejects_line ON campaign_rejects (campaign_id, line)",
        """CREATE TABLE optouts (
            to_number TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            added_at REAL NOT NULL
        )""",
    ],
    [
        # Delivery status read back from the broadcast log (sent/delivered/read/failed).
        "ALTER TABLE campaign_rows ADD COLUMN delivery_status TEXT",
        "ALTER TABLE campaign_rows ADD COLUMN delivery_error TEXT",
        "CREATE INDEX campaign_rows_broadcast ON campaign_rows (broadcast_id)",
    ],
    [
        # Delivery tracking by webhook (see ._tracking): who settled each row's status, the
        # WhatsApp message id it was linked to, and per campaign the webhook high-water mark
        # and the API requests tracking cost.
        """CREATE TABLE campaign_delivery (
            campaign_id TEXT NOT NULL,
            line INTEGER NOT NULL,
            source TEXT NOT NULL,
            external_id TEXT,
            event_at REAL,
            heard INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (campaign_id, line)
        )""",
        "CREATE INDEX campaign_delivery_external ON campaign_delivery (campaign_id, external_id)",
        """CREATE TABLE campaign_tracking (
            campaign_id TEXT PRIMARY KEY,
            webhook_source TEXT,
            webhook_seq INTEGER NOT NULL DEFAULT 0,
            requests INTEGER NOT NULL DEFAULT 0
        )""",
    ],
]

_ROW_COLUMNS = (
    "campaign_id, line, to_number, to_name, parameters, zones, state, attempts, broadcast_id, "
    "error_code, error_reason, sent_at, settled_at, delivery_status, delivery_error"
)
_CAMPAIGN_COLUMNS = (
    "id, name, created_at, template_id, template_name, language, channel_id, template_json, "
    "state, pause_reason, start_at, send_window, source, fingerprint"
)
_CAMPAIGN_FIELDS = {
    "state": "state",
    "pause_reason": "pause_reason",
    "start_at": "start_at",
    "window": "send_window",
    "fingerprint": "fingerprint",
}
_BATCH = 500
#: The stored form of a row's parameters (compact, non-ASCII kept): one encoder for all rows.
_JSON_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def default_db_path() -> Path:
    """``$QONTAK_CAMPAIGN_DB``, else ``./qontak-campaigns.db``."""
    return Path(os.environ.get(ENV_DB) or DEFAULT_DB)


def _row(values: Sequence[Any]) -> Row:
    return Row(
        campaign_id=values[0],
        line=values[1],
        to_number=values[2],
        to_name=values[3],
        parameters=json.loads(values[4]),
        zones=values[5],
        state=RowState(values[6]),
        attempts=values[7],
        broadcast_id=values[8],
        error_code=values[9],
        error_reason=values[10],
        sent_at=values[11],
        settled_at=values[12],
        delivery_status=values[13],
        delivery_error=values[14],
    )


def _campaign(values: Sequence[Any]) -> Campaign:
    return Campaign(
        id=values[0],
        name=values[1],
        created_at=values[2],
        template_id=values[3],
        template_name=values[4],
        language=values[5],
        channel_id=values[6],
        template=json.loads(values[7]),
        state=CampaignState(values[8]),
        pause_reason=values[9],
        start_at=values[10],
        window=values[11],
        source=values[12],
        fingerprint=values[13],
    )


def _marks(count: int) -> str:
    return ",".join("?" * count)


class SQLiteStore:
    """The ledger in one SQLite file (see the module notes). Implements :class:`.Store`."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, durable: bool = True) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self._db = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # durable=False (NORMAL) still survives a killed process, not a power cut.
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{self.path}: not a usable campaign ledger ({exc})") from None

    # -- plumbing -------------------------------------------------------------------------
    def _migrate(self) -> None:
        self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        found = self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        if found > len(MIGRATIONS):
            raise LedgerError(
                f"{self.path}: schema version {found} is newer than this qontak "
                f"({len(MIGRATIONS)}); upgrade qontak"
            )
        for version in range(found + 1, len(MIGRATIONS) + 1):
            with self._transaction():
                for statement in MIGRATIONS[version - 1]:
                    self._db.execute(statement)
                self._db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _transaction(self) -> _Tx:
        return _Tx(self._db)

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        return int(self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    # -- campaigns ------------------------------------------------------------------------
    def create_campaign(self, campaign: Campaign) -> None:
        """See :meth:`.Store.create_campaign`."""
        with self._transaction():
            self._db.execute(
                f"INSERT INTO campaigns ({_CAMPAIGN_COLUMNS}) VALUES ({_marks(14)})",
                (
                    campaign.id,
                    campaign.name,
                    campaign.created_at,
                    campaign.template_id,
                    campaign.template_name,
                    campaign.language,
                    campaign.channel_id,
                    campaign.template_json(),
                    campaign.state.value,
                    campaign.pause_reason,
                    campaign.start_at,
                    campaign.window,
                    campaign.source,
                    campaign.fingerprint,
                ),
            )

    def get_campaign(self, campaign_id: str) -> Campaign | None:
        """See :meth:`.Store.get_campaign`."""
        found = self._db.execute(
            f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?", (campaign_id,)
        ).fetchone()
        return _campaign(found) if found else None

    def find_campaign(self, fingerprint: str) -> Campaign | None:
        """See :meth:`.Store.find_campaign`."""
        found = self._db.execute(
            f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE fingerprint = ? "
            "ORDER BY created_at DESC LIMIT 1",
            (fingerprint,),
        ).fetchone()
        return _campaign(found) if found else None

    def list_campaigns(self) -> list[Campaign]:
        """See :meth:`.Store.list_campaigns`."""
        found = self._db.execute(
            f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns ORDER BY created_at DESC, id"
        ).fetchall()
        return [_campaign(v) for v in found]

    def update_campaign(self, campaign_id: str, **fields: object) -> None:
        """See :meth:`.Store.update_campaign`."""
        sets, values = [], []
        for name, value in fields.items():
            if name not in _CAMPAIGN_FIELDS:
                raise LedgerError(f"campaign field {name!r} cannot be changed")
            sets.append(f"{_CAMPAIGN_FIELDS[name]} = ?")
            values.append(value.value if isinstance(value, CampaignState) else value)
        if sets:
            with self._transaction():
                self._db.execute(
                    f"UPDATE campaigns SET {', '.join(sets)} WHERE id = ?", (*values, campaign_id)
                )

    def acquire(self, campaign_id: str, owner: str, *, now: float, ttl: float) -> bool:
        """See :meth:`.Store.acquire`."""
        with self._transaction():
            cur = self._db.execute(
                "UPDATE campaigns SET lease_owner = ?, lease_until = ? WHERE id = ? AND "
                "(lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                (owner, now + ttl, campaign_id, owner, now),
            )
        return cur.rowcount == 1

    def lease_owner(self, campaign_id: str) -> str | None:
        """See :meth:`.Store.lease_owner`."""
        found = self._db.execute(
            "SELECT lease_owner FROM campaigns WHERE id = ?", (campaign_id,)
        ).fetchone()
        return str(found[0]) if found and found[0] else None

    def release(self, campaign_id: str, owner: str) -> None:
        """See :meth:`.Store.release`."""
        with self._transaction():
            self._db.execute(
                "UPDATE campaigns SET lease_owner = NULL, lease_until = NULL "
                "WHERE id = ? AND lease_owner = ?",
                (campaign_id, owner),
            )

    # -- rows -----------------------------------------------------------------------------
    def add_rows(self, campaign_id: str, rows: Sequence[NewRow]) -> list[tuple[NewRow, int]]:
        """See :meth:`.Store.add_rows`."""
        # An import's hot loop: one executemany per batch. Which rows the unique index turns
        # away is known beforehand when no line of the batch is in the ledger yet (always, in
        # an import): a number the ledger holds, or one seen earlier in the batch (first wins).
        duplicates: list[tuple[NewRow, int]] = []
        with self._transaction():
            lines = [row.line for row in rows]
            if len(set(lines)) != len(lines) or self._held(campaign_id, "line", lines):
                return self._add_rows_one_by_one(campaign_id, rows)
            first = self._held(campaign_id, "to_number", [row.to_number for row in rows])
            for row in rows:
                held = first.setdefault(row.to_number, row.line)
                if held != row.line:
                    duplicates.append((row, int(held)))
            encode = _JSON_COMPACT.encode
            pending = RowState.PENDING.value
            self._db.executemany(
                "INSERT INTO campaign_rows (campaign_id, line, to_number, to_name, "
                "parameters, zones, state) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
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
        for start in range(0, len(values), _BATCH):
            chunk = list(values[start : start + _BATCH])
            found.update(
                self._db.execute(
                    f"SELECT {column}, line FROM campaign_rows WHERE campaign_id = ? "
                    f"AND {column} IN ({_marks(len(chunk))})",
                    [campaign_id, *chunk],
                ).fetchall()
            )
        return found

    def _add_rows_one_by_one(
        self, campaign_id: str, rows: Sequence[NewRow]
    ) -> list[tuple[NewRow, int]]:
        duplicates: list[tuple[NewRow, int]] = []
        for row in rows:
            cur = self._db.execute(
                "INSERT INTO campaign_rows (campaign_id, line, to_number, to_name, "
                "parameters, zones, state) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (
                    campaign_id,
                    row.line,
                    row.to_number,
                    row.to_name,
                    _JSON_COMPACT.encode(row.parameters),
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

    def add_rejects(self, campaign_id: str, rejects: Sequence[Reject]) -> None:
        """See :meth:`.Store.add_rejects`."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO campaign_rejects (campaign_id, line, field, reason, code, to_number) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(campaign_id, r.line, r.field, r.reason, r.code, r.to_number) for r in rejects],
            )

    def iter_rejects(self, campaign_id: str) -> Iterator[Reject]:
        """See :meth:`.Store.iter_rejects`."""
        cur = self._db.execute(
            "SELECT line, field, reason, code, to_number FROM campaign_rejects "
            "WHERE campaign_id = ? ORDER BY line, rowid",
            (campaign_id,),
        )
        while batch := cur.fetchmany(_BATCH):
            for v in batch:
                yield Reject(line=v[0], field=v[1], reason=v[2], code=v[3], to_number=v[4])

    def claim(
        self, campaign_id: str, limit: int, *, zones: Sequence[str] | None, now: float
    ) -> list[Row]:
        """See :meth:`.Store.claim`."""
        if zones is not None and not zones:
            return []
        where = "campaign_id = ? AND state = ?"
        params: list[Any] = [campaign_id, RowState.PENDING.value]
        if zones is not None:
            where += f" AND zones IN ({_marks(len(zones))})"
            params.extend(zones)
        with self._transaction():
            candidates = self._db.execute(
                f"SELECT line, to_number FROM campaign_rows WHERE {where} ORDER BY line LIMIT ?",
                (*params, limit),
            ).fetchall()
            if not candidates:
                return []
            # The opt-out list is read again here, just before the send, so a number added
            # mid-campaign is never contacted.
            numbers = [n for _, n in candidates]
            blocked = self._opted_out(numbers)
            take = [line for line, number in candidates if number not in blocked]
            skip = [line for line, number in candidates if number in blocked]
            if skip:
                self._move(campaign_id, skip, RowState.SKIPPED, now=now, reason="opted out")
            if not take:
                return []
            self._db.execute(
                f"UPDATE campaign_rows SET state = ?, sent_at = ?, attempts = attempts + 1 "
                f"WHERE campaign_id = ? AND line IN ({_marks(len(take))}) "
                f"AND state IN ({_marks(len(sources_of(RowState.SENDING)))})",
                (RowState.SENDING.value, now, campaign_id, *take, *sources_of(RowState.SENDING)),
            )
            found = self._db.execute(
                f"SELECT {_ROW_COLUMNS} FROM campaign_rows WHERE campaign_id = ? "
                f"AND line IN ({_marks(len(take))}) AND state = ? ORDER BY line",
                (campaign_id, *take, RowState.SENDING.value),
            ).fetchall()
        return [_row(v) for v in found]

    def _move(
        self,
        campaign_id: str,
        lines: Sequence[int],
        target: RowState,
        *,
        now: float,
        broadcast_id: str | None = None,
        code: str | None = None,
        reason: str | None = None,
    ) -> int:
        # The only UPDATE of a row's state besides claim; the allowed sources come from the
        # state machine, so a forbidden move changes nothing.
        sources = sources_of(target)
        sets = "state = ?, settled_at = ?, error_code = ?, error_reason = ?"
        values: list[Any] = [target.value, now, code, reason]
        if target is RowState.ACCEPTED:
            sets += ", broadcast_id = ?"
            values.append(broadcast_id)
        if target is RowState.PENDING:
            sets += ", sent_at = NULL"
        cur = self._db.execute(
            f"UPDATE campaign_rows SET {sets} WHERE campaign_id = ? "
            f"AND line IN ({_marks(len(lines))}) AND state IN ({_marks(len(sources))})",
            (*values, campaign_id, *lines, *sources),
        )
        return int(cur.rowcount)

    def transition(
        self,
        campaign_id: str,
        line: int,
        target: RowState,
        *,
        now: float,
        broadcast_id: str | None = None,
        code: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """See :meth:`.Store.transition`."""
        with self._transaction():
            moved = self._move(
                campaign_id,
                [line],
                target,
                now=now,
                broadcast_id=broadcast_id,
                code=code,
                reason=reason,
            )
        return moved == 1

    def recover(self, campaign_id: str) -> int:
        """See :meth:`.Store.recover`."""
        with self._transaction():
            cur = self._db.execute(
                "UPDATE campaign_rows SET state = ?, error_reason = ? "
                "WHERE campaign_id = ? AND state = ?",
                (
                    RowState.UNKNOWN.value,
                    "interrupted while sending",
                    campaign_id,
                    RowState.SENDING.value,
                ),
            )
        return int(cur.rowcount)

    def set_delivery(self, campaign_id: str, updates: Iterable[tuple[str, str, str | None]]) -> int:
        """See :meth:`.Store.set_delivery`."""
        changed = 0
        with self._transaction():
            for broadcast_id, status, error in updates:
                cur = self._db.execute(
                    "UPDATE campaign_rows SET delivery_status = ?, delivery_error = ? "
                    "WHERE campaign_id = ? AND broadcast_id = ? AND state = ?",
                    (status, error, campaign_id, broadcast_id, RowState.ACCEPTED.value),
                )
                changed += cur.rowcount
        return changed

    def counts(self, campaign_id: str) -> dict[str, int]:
        """See :meth:`.Store.counts`."""
        out = {s.value: 0 for s in RowState}
        for state, count in self._db.execute(
            "SELECT state, COUNT(*) FROM campaign_rows WHERE campaign_id = ? GROUP BY state",
            (campaign_id,),
        ):
            out[state] = count
        return out

    def delivery_counts(self, campaign_id: str) -> dict[str, int]:
        """See :meth:`.Store.delivery_counts`."""
        out: dict[str, int] = {}
        for status, count in self._db.execute(
            "SELECT delivery_status, COUNT(*) FROM campaign_rows WHERE campaign_id = ? "
            "AND state = ? GROUP BY delivery_status",
            (campaign_id, RowState.ACCEPTED.value),
        ):
            out[status or "none"] = count
        return out

    def failures(self, campaign_id: str) -> list[tuple[str, str, str, int]]:
        """See :meth:`.Store.failures`."""
        refused = self._db.execute(
            "SELECT COALESCE(error_code, ''), COALESCE(error_reason, ''), COUNT(*) "
            "FROM campaign_rows WHERE campaign_id = ? AND state = ? "
            "GROUP BY error_code, error_reason",
            (campaign_id, RowState.FAILED.value),
        ).fetchall()
        delivery = self._db.execute(
            "SELECT COALESCE(delivery_error, ''), COUNT(*) FROM campaign_rows "
            "WHERE campaign_id = ? AND state = ? AND delivery_status = 'failed' "
            "GROUP BY delivery_error",
            (campaign_id, RowState.ACCEPTED.value),
        ).fetchall()
        out = [("refused", c, r, n) for c, r, n in refused]
        for text, n in delivery:
            code, _, reason = str(text).partition(": ")
            out.append(("delivery", code, reason, n))
        return sorted(out, key=lambda f: (-f[3], f[0], f[1], f[2]))

    def pending_zones(self, campaign_id: str) -> list[str]:
        """See :meth:`.Store.pending_zones`."""
        return [
            z
            for (z,) in self._db.execute(
                "SELECT DISTINCT zones FROM campaign_rows WHERE campaign_id = ? AND state = ?",
                (campaign_id, RowState.PENDING.value),
            )
        ]

    def iter_rows(
        self, campaign_id: str, states: Sequence[RowState] | None = None
    ) -> Iterator[Row]:
        """See :meth:`.Store.iter_rows`."""
        where = "campaign_id = ? AND line > ?"
        extra: list[Any] = []
        if states is not None:
            where += f" AND state IN ({_marks(len(states))})"
            extra = [s.value for s in states]
        last = -1
        while True:
            # Keyset paging: no cursor stays open while the caller writes to the ledger.
            batch = self._db.execute(
                f"SELECT {_ROW_COLUMNS} FROM campaign_rows WHERE {where} ORDER BY line LIMIT ?",
                (campaign_id, last, *extra, _BATCH),
            ).fetchall()
            if not batch:
                return
            for values in batch:
                yield _row(values)
            last = batch[-1][1]

    def broadcast_ids(self, campaign_id: str, *, since: float | None = None) -> set[str]:
        """See :meth:`.Store.broadcast_ids`."""
        sql = (
            "SELECT broadcast_id FROM campaign_rows WHERE campaign_id = ? "
            "AND broadcast_id IS NOT NULL"
        )
        params: list[Any] = [campaign_id]
        if since is not None:
            sql += " AND sent_at >= ?"
            params.append(since)
        return {b for (b,) in self._db.execute(sql, params)}

    # -- opt-outs -------------------------------------------------------------------------
    def add_optouts(self, numbers: Iterable[str], *, reason: str, now: float) -> int:
        """See :meth:`.Store.add_optouts`."""
        added = 0
        with self._transaction():
            for number in numbers:
                cur = self._db.execute(
                    "INSERT INTO optouts (to_number, reason, added_at) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (number, reason, now),
                )
                added += cur.rowcount
        return added

    def remove_optouts(self, numbers: Iterable[str]) -> int:
        """See :meth:`.Store.remove_optouts`."""
        removed = 0
        with self._transaction():
            for number in numbers:
                cur = self._db.execute("DELETE FROM optouts WHERE to_number = ?", (number,))
                removed += cur.rowcount
        return removed

    def iter_optouts(self) -> Iterator[tuple[str, str, float]]:
        """See :meth:`.Store.iter_optouts`."""
        cur = self._db.execute("SELECT to_number, reason, added_at FROM optouts ORDER BY to_number")
        while batch := cur.fetchmany(_BATCH):
            yield from ((n, r, a) for n, r, a in batch)

    def opted_out(self, numbers: Sequence[str]) -> set[str]:
        """See :meth:`.Store.opted_out`."""
        return self._opted_out(numbers)

    def _opted_out(self, numbers: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(numbers), _BATCH):
            chunk = list(numbers[start : start + _BATCH])
            found.update(
                n
                for (n,) in self._db.execute(
                    f"SELECT to_number FROM optouts WHERE to_number IN ({_marks(len(chunk))})",
                    chunk,
                )
            )
        return found

    # -- delivery tracking (._tracking.TrackingStore) -------------------------------------
    def tracking_mark(self, campaign_id: str) -> tuple[str | None, int, int]:
        """``(webhook source, high-water mark, API requests spent on tracking)``."""
        found = self._db.execute(
            "SELECT webhook_source, webhook_seq, requests FROM campaign_tracking "
            "WHERE campaign_id = ?",
            (campaign_id,),
        ).fetchone()
        return (found[0], int(found[1]), int(found[2])) if found else (None, 0, 0)

    def delivery_row(
        self, campaign_id: str, *, external_id: str | None, to_number: str | None
    ) -> tuple[int, str, float | None, str | None, str | None] | None:
        """The row an event may belong to: linked by ``external_id`` first, else the row of
        ``to_number``: ``(line, state, sent_at, delivery_status, linked external_id)``."""
        select = (
            "SELECT r.line, r.state, r.sent_at, r.delivery_status, d.external_id "
            "FROM campaign_rows r LEFT JOIN campaign_delivery d "
            "ON d.campaign_id = r.campaign_id AND d.line = r.line WHERE r.campaign_id = ? "
        )
        found = None
        if external_id is not None:
            found = self._db.execute(
                select + "AND d.external_id = ?", (campaign_id, external_id)
            ).fetchone()
        if found is None and to_number is not None:
            found = self._db.execute(
                select + "AND r.to_number = ?", (campaign_id, to_number)
            ).fetchone()
        return None if found is None else tuple(found)

    def apply_delivery(
        self,
        campaign_id: str,
        updates: Iterable[tuple[int, str, str | None, str | None, float | None]],
        *,
        source: str,
        mark: tuple[str, int] | None = None,
        requests: int = 0,
    ) -> int:
        """Record ``(line, status, error, external_id, event_at)`` of accepted rows, a status
        only moving forward (pending < sent < delivered < read|failed), with ``source``
        (``webhook`` or ``poll``) as who set it; in the same transaction move the webhook
        high-water mark to ``mark`` = ``(source, seq)`` and add ``requests``. Returns how many
        rows moved."""
        rank = (
            "CASE {0} WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 "
            "WHEN 'read' THEN 3 WHEN 'failed' THEN 3 ELSE -1 END"
        )
        changed = 0
        with self._transaction():
            for line, status, error, external_id, event_at in updates:
                cur = self._db.execute(
                    "UPDATE campaign_rows SET delivery_status = ?, delivery_error = ? "
                    "WHERE campaign_id = ? AND line = ? AND state = ? AND "
                    f"{rank.format('delivery_status')} < {rank.format('?')}",
                    (status, error, campaign_id, line, RowState.ACCEPTED.value, status),
                )
                moved = cur.rowcount > 0
                changed += int(moved)
                if moved or external_id is not None:
                    self._db.execute(
                        "INSERT INTO campaign_delivery (campaign_id, line, source, external_id,"
                        " event_at, heard) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (campaign_id,"
                        " line) DO UPDATE SET source = CASE WHEN ? = 1 THEN excluded.source "
                        "ELSE campaign_delivery.source END, external_id = COALESCE("
                        "campaign_delivery.external_id, excluded.external_id), event_at = "
                        "COALESCE(excluded.event_at, campaign_delivery.event_at), heard = "
                        "CASE WHEN excluded.heard = 1 THEN 1 ELSE campaign_delivery.heard END",
                        (
                            campaign_id,
                            line,
                            source,
                            external_id,
                            event_at,
                            int(source == "webhook"),
                            int(moved),
                        ),
                    )
            if mark is not None or requests:
                self._db.execute(
                    "INSERT INTO campaign_tracking (campaign_id) VALUES (?) "
                    "ON CONFLICT (campaign_id) DO NOTHING",
                    (campaign_id,),
                )
                self._db.execute(
                    "UPDATE campaign_tracking SET requests = requests + ? WHERE campaign_id = ?",
                    (requests, campaign_id),
                )
                if mark is not None:
                    self._db.execute(
                        "UPDATE campaign_tracking SET webhook_source = ?, webhook_seq = ? "
                        "WHERE campaign_id = ?",
                        (mark[0], mark[1], campaign_id),
                    )
        return changed

    def delivery_sources(self, campaign_id: str) -> dict[str, int]:
        """Accepted rows with a final status (read/failed), per source that settled them;
        rows settled before tracking kept a source count as ``poll``."""
        out = {"webhook": 0, "poll": 0}
        for source, count in self._db.execute(
            "SELECT COALESCE(d.source, 'poll'), COUNT(*) FROM campaign_rows r "
            "LEFT JOIN campaign_delivery d ON d.campaign_id = r.campaign_id AND d.line = r.line "
            "WHERE r.campaign_id = ? AND r.state = ? AND r.delivery_status IN ('read', 'failed') "
            "GROUP BY COALESCE(d.source, 'poll')",
            (campaign_id, RowState.ACCEPTED.value),
        ):
            out[source] = count
        return out

    def unheard_rows(self, campaign_id: str, *, sent_before: float) -> list[tuple[int, str]]:
        """``(line, broadcast_id)`` of accepted rows not final, sent before ``sent_before``,
        of which no webhook event was heard."""
        return [
            (int(line), str(broadcast_id))
            for line, broadcast_id in self._db.execute(
                "SELECT r.line, r.broadcast_id FROM campaign_rows r WHERE r.campaign_id = ? "
                "AND r.state = ? AND r.broadcast_id IS NOT NULL AND r.sent_at < ? AND "
                "(r.delivery_status IS NULL OR r.delivery_status NOT IN ('read', 'failed')) "
                "AND NOT EXISTS (SELECT 1 FROM campaign_delivery d WHERE d.campaign_id = "
                "r.campaign_id AND d.line = r.line AND d.heard = 1) ORDER BY r.line",
                (campaign_id, RowState.ACCEPTED.value, sent_before),
            )
        ]


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
