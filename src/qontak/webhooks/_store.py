"""Where received status events are kept: durably, once each, and never moving a status back.

The receiver writes an event here *before* it answers 2xx, so an answer Qontak saw is an event we
kept. SQLite from the standard library (WAL, ``synchronous=FULL``: an acknowledged event survives
a crash or a power cut); a campaign ledger may share the same file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .._sqlite import enable_wal
from ._events import StatusEvent, parse_event

__all__ = ["MessageStatus", "SQLiteWebhookStore", "WebhookStore"]


@dataclass(frozen=True)
class MessageStatus:
    """The furthest status seen for one message (by WhatsApp message id)."""

    external_id: str | None
    to_number: str | None
    status: str
    occurred_at: float | None
    updated_at: float


class WebhookStore(Protocol):
    """What the receiver needs from storage (SQLite here; anything with these methods works)."""

    def record(self, event: StatusEvent) -> bool:
        """Keep ``event``; ``False`` when the same event was already kept."""
        ...

    def status(self, external_id: str) -> MessageStatus | None:
        """The current (furthest) status of one message."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key TEXT NOT NULL UNIQUE,
    message_key TEXT NOT NULL,
    external_id TEXT,
    status TEXT NOT NULL,
    to_number TEXT,
    occurred_at REAL,
    received_at REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_events_message ON webhook_events (message_key, seq);
CREATE INDEX IF NOT EXISTS webhook_events_number ON webhook_events (to_number, occurred_at);
CREATE TABLE IF NOT EXISTS webhook_message_status (
    message_key TEXT PRIMARY KEY,
    external_id TEXT,
    to_number TEXT,
    status TEXT NOT NULL,
    rank INTEGER NOT NULL,
    occurred_at REAL,
    updated_at REAL NOT NULL
);
"""


class SQLiteWebhookStore:
    """Status events in one SQLite file.

    >>> store = SQLiteWebhookStore(":memory:")
    >>> from qontak.webhooks import parse_event
    >>> store.record(parse_event({"id": "e1", "status": "read", "external_id": "wamid.1"}))
    True
    >>> store.record(parse_event({"id": "e1", "status": "read", "external_id": "wamid.1"}))
    False
    >>> store.record(parse_event({"id": "e0", "status": "sent", "external_id": "wamid.1"}))
    True
    >>> store.status("wamid.1").status  # a late 'sent' does not move 'read' back
    'read'
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            enable_wal(self._conn)
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def record(self, event: StatusEvent) -> bool:
        """Keep ``event`` and advance its message's status (never backwards)."""
        message_key = event.external_id or f"event:{event.event_id}"
        now = time.time()
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO webhook_events (dedupe_key, message_key, external_id,"
                " status, to_number, occurred_at, received_at, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.dedupe_key,
                    message_key,
                    event.external_id,
                    event.status,
                    event.to_number,
                    event.occurred_at,
                    now,
                    json.dumps(dict(event.raw), ensure_ascii=True),
                ),
            )
            if cur.rowcount == 0:
                return False
            conn.execute(
                "INSERT INTO webhook_message_status (message_key, external_id, to_number, status,"
                " rank, occurred_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (message_key) DO UPDATE SET status = excluded.status,"
                " rank = excluded.rank, occurred_at = excluded.occurred_at,"
                " updated_at = excluded.updated_at,"
                " to_number = coalesce(webhook_message_status.to_number, excluded.to_number)"
                " WHERE excluded.rank > webhook_message_status.rank",
                (
                    message_key,
                    event.external_id,
                    event.to_number,
                    event.status,
                    event.rank,
                    event.occurred_at,
                    now,
                ),
            )
        return True

    def status(self, external_id: str) -> MessageStatus | None:
        """The furthest status seen for the message with this WhatsApp id."""
        with self._lock:
            row = self._conn.execute(
                "SELECT external_id, to_number, status, occurred_at, updated_at"
                " FROM webhook_message_status WHERE message_key = ?",
                (external_id,),
            ).fetchone()
        return MessageStatus(*row) if row else None

    def history(self, external_id: str) -> list[StatusEvent]:
        """Every kept event of one message, in the order received."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT payload FROM webhook_events WHERE message_key = ? ORDER BY seq",
                (external_id,),
            ).fetchall()
        return [parse_event(json.loads(p)) for (p,) in rows]

    def events_after(self, seq: int = 0, limit: int = 1000) -> list[tuple[int, StatusEvent]]:
        """Events kept after sequence number ``seq`` (a consumer keeps its high-water mark)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, payload FROM webhook_events WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [(s, parse_event(json.loads(p))) for s, p in rows]

    def count(self) -> int:
        """How many distinct events are kept."""
        with self._lock:
            (n,) = self._conn.execute("SELECT count(*) FROM webhook_events").fetchone()
        return int(n)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
