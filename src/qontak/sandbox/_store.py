"""SQLite state of the sandbox: credentials, channels, templates, broadcasts, messages, uploads.

One connection guarded by a lock: the app runs on uvicorn's event-loop thread while tests
read ground truth from their own thread, and SQLite connections are not shareable otherwise.
Channels and templates are stored as the JSON objects the API serves, so what a seed file
says is exactly what a client reads back. ``seq`` columns keep insertion order.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MessageRow", "Store", "Upload"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS credentials (
    client_id TEXT PRIMARY KEY, client_secret TEXT NOT NULL, name TEXT, email TEXT);
CREATE TABLE IF NOT EXISTS channels (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS templates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS broadcasts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, client_id TEXT NOT NULL,
    created_at REAL NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, broadcast_id TEXT NOT NULL,
    accepted_at REAL NOT NULL, to_number TEXT NOT NULL, to_name TEXT NOT NULL,
    channel_integration_id TEXT NOT NULL, wamid TEXT NOT NULL, error_code TEXT,
    template TEXT NOT NULL, parameters TEXT NOT NULL, rendered TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_broadcast ON messages (broadcast_id, seq);
CREATE TABLE IF NOT EXISTS upload_files (
    id TEXT PRIMARY KEY, filename TEXT NOT NULL, content_type TEXT NOT NULL,
    size INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_sent (
    message_id TEXT NOT NULL, status TEXT NOT NULL, PRIMARY KEY (message_id, status));
"""


@dataclass(frozen=True)
class MessageRow:
    """One accepted message (one recipient of one direct broadcast)."""

    id: str
    broadcast_id: str
    accepted_at: float
    to_number: str
    to_name: str
    channel_integration_id: str
    wamid: str
    error_code: str | None
    template: dict[str, Any]
    parameters: Any
    rendered: dict[str, Any]


@dataclass(frozen=True)
class Upload:
    """A file stored by ``POST /file_uploader`` (its bytes are on disk, see :mod:`._uploads`)."""

    id: str
    filename: str
    content_type: str
    size: int


def _message(row: sqlite3.Row) -> MessageRow:
    return MessageRow(
        id=row["id"],
        broadcast_id=row["broadcast_id"],
        accepted_at=row["accepted_at"],
        to_number=row["to_number"],
        to_name=row["to_name"],
        channel_integration_id=row["channel_integration_id"],
        wamid=row["wamid"],
        error_code=row["error_code"],
        template=json.loads(row["template"]),
        parameters=json.loads(row["parameters"]),
        rendered=json.loads(row["rendered"]),
    )


class Store:
    """Thread-safe access to the sandbox's SQLite database."""

    def __init__(self, db: str | Path | None = None) -> None:
        self._lock = threading.RLock()
        target = ":memory:" if db is None else str(db)
        self._conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, args).fetchone()
            return row

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        with self._lock:
            self._conn.execute(sql, args)

    # -- settings -------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A stored setting, e.g. ``organization_id``."""
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        self._run(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- credentials ----------------------------------------------------------------------
    def put_credentials(self, client_id: str, secret: str, name: str, email: str) -> None:
        """Add or replace an HMAC credential pair."""
        self._run(
            "INSERT INTO credentials (client_id, client_secret, name, email) VALUES (?,?,?,?) "
            "ON CONFLICT(client_id) DO UPDATE SET client_secret = excluded.client_secret, "
            "name = excluded.name, email = excluded.email",
            (client_id, secret, name, email),
        )

    def secret_for(self, client_id: str) -> str | None:
        """The secret of a known client, else None."""
        row = self._one("SELECT client_secret FROM credentials WHERE client_id = ?", (client_id,))
        return None if row is None else str(row["client_secret"])

    def sender(self, client_id: str) -> tuple[str, str]:
        """``(name, email)`` shown as the sender of a client's broadcasts."""
        row = self._one("SELECT name, email FROM credentials WHERE client_id = ?", (client_id,))
        if row is None:
            return (client_id, "")
        return (row["name"] or client_id, row["email"] or "")

    # -- channels and templates -----------------------------------------------------------
    def put_object(self, table: str, obj: dict[str, Any]) -> None:
        """Add or replace a channel or template (keeps its list position when replaced)."""
        assert table in ("channels", "templates")
        self._run(
            f"INSERT INTO {table} (id, data) VALUES (?, ?) "
            "ON CONFLICT(id) DO UPDATE SET data = excluded.data",
            (obj["id"], json.dumps(obj)),
        )

    def list_objects(self, table: str) -> list[dict[str, Any]]:
        """All channels or templates, in insertion order."""
        assert table in ("channels", "templates")
        return [json.loads(r["data"]) for r in self._all(f"SELECT data FROM {table} ORDER BY seq")]

    def get_object(self, table: str, obj_id: str) -> dict[str, Any] | None:
        """One channel or template by id."""
        assert table in ("channels", "templates")
        row = self._one(f"SELECT data FROM {table} WHERE id = ?", (obj_id,))
        return None if row is None else dict(json.loads(row["data"]))

    # -- traffic --------------------------------------------------------------------------
    def add_send(self, *, broadcast: dict[str, Any], client_id: str, message: MessageRow) -> None:
        """Store a broadcast and its one message atomically (both or neither)."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.execute(
                    "INSERT INTO broadcasts (id, client_id, created_at, data) VALUES (?,?,?,?)",
                    (broadcast["id"], client_id, message.accepted_at, json.dumps(broadcast)),
                )
                self._conn.execute(
                    "INSERT INTO messages (id, broadcast_id, accepted_at, to_number, to_name, "
                    "channel_integration_id, wamid, error_code, template, parameters, rendered) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        message.id,
                        message.broadcast_id,
                        message.accepted_at,
                        message.to_number,
                        message.to_name,
                        message.channel_integration_id,
                        message.wamid,
                        message.error_code,
                        json.dumps(message.template),
                        json.dumps(message.parameters),
                        json.dumps(message.rendered),
                    ),
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def list_broadcasts(self) -> list[dict[str, Any]]:
        """Every broadcast, oldest first."""
        return [
            json.loads(r["data"]) for r in self._all("SELECT data FROM broadcasts ORDER BY seq")
        ]

    def get_broadcast(self, broadcast_id: str) -> dict[str, Any] | None:
        """One broadcast by id."""
        row = self._one("SELECT data FROM broadcasts WHERE id = ?", (broadcast_id,))
        return None if row is None else dict(json.loads(row["data"]))

    def messages(self, broadcast_id: str | None = None) -> list[MessageRow]:
        """Accepted messages, oldest first; all of them or one broadcast's."""
        if broadcast_id is None:
            rows = self._all("SELECT * FROM messages ORDER BY seq")
        else:
            rows = self._all(
                "SELECT * FROM messages WHERE broadcast_id = ? ORDER BY seq", (broadcast_id,)
            )
        return [_message(r) for r in rows]

    def add_upload(self, upload: Upload, created_at: float) -> None:
        """Record an uploaded file (already written to disk)."""
        self._run(
            "INSERT INTO upload_files (id, filename, content_type, size, created_at) "
            "VALUES (?,?,?,?,?)",
            (upload.id, upload.filename, upload.content_type, upload.size, created_at),
        )

    def get_upload(self, upload_id: str) -> Upload | None:
        """An uploaded file's record by id."""
        row = self._one("SELECT * FROM upload_files WHERE id = ?", (upload_id,))
        if row is None:
            return None
        return Upload(row["id"], row["filename"], row["content_type"], int(row["size"]))

    def upload_ids(self) -> set[str]:
        """Ids of every recorded upload (the files a reset has not removed)."""
        return {str(r["id"]) for r in self._all("SELECT id FROM upload_files")}

    def upload_bytes(self) -> int:
        """Size of all recorded uploads together (what counts against the quota)."""
        row = self._one("SELECT COALESCE(SUM(size), 0) AS total FROM upload_files")
        return 0 if row is None else int(row["total"])

    def webhook_due(self, message_id: str, status: str) -> bool:
        """Whether a status change still needs posting: not posted yet, and the message still
        exists (a reset may have removed it since the poll read the messages)."""
        row = self._one(
            "SELECT 1 FROM messages WHERE id = ? AND NOT EXISTS "
            "(SELECT 1 FROM webhook_sent WHERE message_id = ? AND status = ?)",
            (message_id, message_id, status),
        )
        return row is not None

    def mark_webhook_sent(self, message_id: str, status: str) -> bool:
        """Record that a status was posted; False if it already had been or the message is
        gone (so a reset during a POST leaves no row behind for a message it removed)."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO webhook_sent (message_id, status) "
                "SELECT ?, ? WHERE EXISTS (SELECT 1 FROM messages WHERE id = ?)",
                (message_id, status, message_id),
            )
            return cur.rowcount == 1

    def clear_traffic(self) -> None:
        """Forget broadcasts, messages, uploads and webhook bookkeeping; keep configuration."""
        with self._lock:
            for table in ("broadcasts", "messages", "upload_files", "webhook_sent"):
                self._conn.execute(f"DELETE FROM {table}")

    def clear_all(self) -> None:
        """Forget everything, configuration included."""
        with self._lock:
            self.clear_traffic()
            for table in ("credentials", "channels", "templates", "meta"):
                self._conn.execute(f"DELETE FROM {table}")
