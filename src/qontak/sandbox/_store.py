"""SQLite state of the sandbox: credentials, channels, templates, broadcasts, messages, uploads.

One connection guarded by a lock: handlers run their store work in worker threads
(:func:`anyio.to_thread.run_sync`), the webhook poller has its own thread and tests read
ground truth from theirs, and an SQLite connection is not shareable otherwise. Every method
holds the lock only for its SQL, never while decoding JSON or building views. A database
file runs in WAL mode with ``synchronous=NORMAL``: a commit is an append, not an fsync.
Channels and templates are stored as the JSON objects the API serves, so what a seed file
says is exactly what a client reads back. ``seq`` columns keep insertion order.

**What a request reads is its page.** Lists are filtered, ordered, counted and cut in SQL:
broadcasts have indexes on ``created_at`` (date filters) and on the channel and execute type
(generated columns over the stored JSON), a trigger keeps the number of broadcasts so an
unfiltered ``total`` costs nothing, and a page's status counts come from one indexed query.
Cursors are keyset ranges of the ``seq`` index (:func:`_window`). Where SQL cannot do
better the cost is the matches, in C: a filtered ``total`` counts them through the index, a
deep ``offset`` page walks the index (no row decoded before the page), and a name search
(``query``, a substring) scans the names. ``messages()`` (without a broadcast id) and
``list_broadcasts()`` read everything: ground truth for tests and scripts (and a plain
``GET /_sandbox/messages``), never used by the API or by the inbox's polls.

**The change feed.** Every message change gets a number from one increasing sequence (the
``events`` table): the trigger ``message_accepted`` logs ``pending`` when a message is
stored, and :meth:`Store.advance` logs each later status when the clock reaches it, found
through the due-time index (``feed.due_at``), so it only ever touches messages that change.
The narrow ``feed`` table (one row per message: last status logged, next due time, number of
its latest change) is what changes; the wide message rows are written once. ``feed.version``
is the number of a message's latest change: the inbox asks for messages with
``version > after`` (:meth:`Store.feed`), the webhook poller for events after
its high-water mark (:meth:`Store.events_after`). A reset gives the feed a new id, so a
reader holding a number from before it knows to start over.

**The log is bounded.** Only the webhook poller reads ``events`` (the inbox reads ``feed``):
what it has dealt with is removed after each poll (:meth:`Store.forget_events`), and the log
never keeps more than ``max_events`` changes, the newest (checked every few writes; the
oldest go and are counted in :attr:`Store.events_dropped`), so a sandbox that runs for days
without a webhook receiver does not grow by four rows per message for nothing. While status
changes have a URL to go to, the cap spares every change past the poller's high-water mark
(:attr:`Store.reader_mark`): those are callbacks still to post, and the poller removes them
itself once dealt with.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._sqlite import enable_wal
from ._delivery import MAGIC_ERRORS, advance_status
from ._pagination import PageRequest

__all__ = [
    "MAX_EVENTS",
    "BroadcastFilter",
    "Event",
    "FeedEntry",
    "FeedPage",
    "MessageRow",
    "ObjectFilter",
    "Store",
    "Upload",
]

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

# Columns added to tables that older databases already have (see Store._migrate).
_ADDED_COLUMNS = {
    "broadcasts": (
        ("name", "TEXT GENERATED ALWAYS AS (json_extract(data, '$.name')) VIRTUAL"),
        (
            "target_channel",
            "TEXT GENERATED ALWAYS AS (json_extract(data, '$.target_channel')) VIRTUAL",
        ),
        ("execute_type", "TEXT GENERATED ALWAYS AS (json_extract(data, '$.execute_type')) VIRTUAL"),
    ),
}

_FEED_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, status TEXT NOT NULL,
    at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) SELECT 'broadcasts', count(*) FROM broadcasts;
CREATE TABLE IF NOT EXISTS feed (
    seq INTEGER PRIMARY KEY,  -- the message's seq
    status TEXT NOT NULL,  -- the last status logged in events
    due_at REAL,  -- when the next status is due; NULL once final
    version INTEGER NOT NULL);  -- seq of the message's latest event
CREATE INDEX IF NOT EXISTS feed_by_version ON feed (version);
CREATE INDEX IF NOT EXISTS feed_due ON feed (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS broadcasts_by_created ON broadcasts (created_at);
CREATE INDEX IF NOT EXISTS broadcasts_by_channel ON broadcasts (target_channel);
CREATE INDEX IF NOT EXISTS broadcasts_by_type ON broadcasts (execute_type);
CREATE TRIGGER IF NOT EXISTS message_accepted AFTER INSERT ON messages BEGIN
    INSERT INTO events (message_id, status, at) VALUES (NEW.id, 'pending', NEW.accepted_at);
    INSERT INTO feed (seq, status, due_at, version)
        VALUES (NEW.seq, 'pending', NEW.accepted_at, last_insert_rowid());
END;
CREATE TRIGGER IF NOT EXISTS broadcast_added AFTER INSERT ON broadcasts BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'broadcasts';
END;
"""

_MESSAGE_COLUMNS = (
    "id, broadcast_id, accepted_at, to_number, to_name, channel_integration_id, wamid, "
    "error_code, template, parameters, rendered"
)


def _window(page: PageRequest, newest_first: bool) -> tuple[str, list[Any], str, bool]:
    """SQL for one page of a list ordered by ``seq``: an extra condition and its arguments,
    the ``ORDER BY … LIMIT … [OFFSET …]`` tail, and whether to reverse what it returns.

    Next to an anchor the page is a range of the index (keyset); otherwise ``OFFSET``.
    """
    ahead, behind = ("<", ">") if newest_first else (">", "<")
    if page.anchor is None:
        order = "DESC" if newest_first else "ASC"
        return "", [], f"ORDER BY seq {order} LIMIT {page.count} OFFSET {page.start}", False
    seq, after = page.anchor.seq, page.anchor.after
    if page.backward:  # the items before the anchor, read from it backwards
        order = "ASC" if newest_first else "DESC"
        op = behind + ("=" if after else "")
        return f"seq {op} ?", [seq], f"ORDER BY seq {order} LIMIT {page.count}", True
    order = "DESC" if newest_first else "ASC"
    op = ahead + ("" if after else "=")
    return f"seq {op} ?", [seq], f"ORDER BY seq {order} LIMIT {page.count}", False


def _qualified(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in _MESSAGE_COLUMNS.split(","))


#: Due messages moved on per transaction, so a huge backlog (a restored database, a clock
#: jump) never holds the lock for long.
_ADVANCE_BATCH = 2000

#: Changes the ``events`` log keeps by default (see :class:`Store`).
MAX_EVENTS = 200_000


def _no_reader() -> int | None:
    return None


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


@dataclass(frozen=True)
class Event:
    """One status change from the feed: the message reached ``status`` at ``at``."""

    seq: int
    status: str
    at: float
    message: MessageRow | None
    """None when a reset removed the message after the change was logged."""


@dataclass(frozen=True)
class FeedEntry:
    """One message of a feed page, its big JSON parts left as the text stored.

    A feed page passes them through untouched: decoding and re-encoding every template is
    most of what a page would otherwise cost.
    """

    position: int
    """Orders messages as they were accepted."""
    message: MessageRow
    """The message, with ``template``, ``parameters`` and ``rendered`` left empty."""
    template_json: str
    parameters_json: str
    rendered_json: str


@dataclass(frozen=True)
class FeedPage:
    """Messages changed after a feed position, oldest change first."""

    feed_id: str
    entries: list[FeedEntry]
    next_after: int
    """Where the next read starts: the last change returned, or the head when all were."""
    more: bool
    """More changes are waiting: read again at once."""
    reset: bool
    """The reader's position was from another feed (a reset, another database): everything
    it holds is gone, and this page starts from the beginning."""
    now: float
    """The instant the statuses were computed at (every change up to it is in the feed)."""


@dataclass(frozen=True)
class BroadcastFilter:
    """What ``GET /broadcasts/whatsapp`` may filter on (None / empty: no filter)."""

    since: float | None = None
    until: float | None = None
    name_contains: str = ""
    target_channels: Sequence[str] = ()
    execute_types: Sequence[str] = ()
    newest_first: bool = True


@dataclass(frozen=True)
class ObjectFilter:
    """Filters over a stored channel or template: JSON path → allowed values, and so on."""

    equals: dict[str, Sequence[str]] = field(default_factory=dict)
    """``$.path`` → values, compared case-insensitively (any of them)."""
    excluded: dict[str, Sequence[str]] = field(default_factory=dict)
    """``$.path`` → values it must not have (case-insensitive)."""
    contains: dict[str, str] = field(default_factory=dict)
    """``$.path`` → text its lower-cased value must contain."""
    exact: dict[str, Sequence[str]] = field(default_factory=dict)
    """``$.path`` → values it must equal exactly (any of them)."""
    suffix: tuple[str, str, bool] | None = None
    """``($.path, suffix, wanted)``: keep values that end (or do not end) with suffix."""
    newest_first: bool = False


def _contains(haystack: object, needle: str) -> bool:
    return haystack is not None and needle in str(haystack).lower()


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _message(row: sqlite3.Row, *, parts: bool = True) -> MessageRow:
    """The message in ``row``; ``parts=False`` leaves template/parameters/rendered empty."""
    return MessageRow(
        id=row["id"],
        broadcast_id=row["broadcast_id"],
        accepted_at=row["accepted_at"],
        to_number=row["to_number"],
        to_name=row["to_name"],
        channel_integration_id=row["channel_integration_id"],
        wamid=row["wamid"],
        error_code=row["error_code"],
        template=json.loads(row["template"]) if parts else {},
        parameters=json.loads(row["parameters"]) if parts else None,
        rendered=json.loads(row["rendered"]) if parts else {},
    )


class Store:
    """Thread-safe access to the sandbox's SQLite database."""

    def __init__(self, db: str | Path | None = None, *, max_events: int = MAX_EVENTS) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.max_events = max_events
        # Pruned every this many logged changes, so the log holds at most max_events plus
        # this (a DELETE per send would cost more than the rows it saves).
        self._prune_every = max(1, min(1024, max_events // 8))
        self._unpruned = 0
        self.reader_mark: Callable[[], int | None] = _no_reader
        """Called under the lock before the cap prunes the log: the number of the last change
        a reader has dealt with while it still has the rest to read (the webhook poller's
        high-water mark while status changes have somewhere to go), else None. The cap never
        removes a change past it: that change would be a status callback lost."""
        self._lock = threading.RLock()
        target = ":memory:" if db is None else str(db)
        self._conn = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.create_function("contains", 2, _contains, deterministic=True)
        with self._lock:
            if db is not None:
                enable_wal(self._conn)
                self._conn.execute("PRAGMA synchronous=NORMAL")
                # Indexes over random ids outgrow the 2 MB default at ~10,000 messages.
                self._conn.execute("PRAGMA cache_size=-32768")
            self._conn.executescript(_SCHEMA)
            self._migrate()
            self._conn.executescript(_FEED_SCHEMA)
            # Read on every request (the gateway checks each signature on the event loop),
            # so kept in memory: no SQLite on the loop, no waiting for the lock there.
            self._meta: dict[str, str] = {
                r["key"]: r["value"] for r in self._conn.execute("SELECT * FROM meta")
            }
            self._credentials: dict[str, tuple[str, str | None, str | None]] = {
                r["client_id"]: (r["client_secret"], r["name"], r["email"])
                for r in self._conn.execute("SELECT * FROM credentials")
            }
            if "feed_id" not in self._meta:
                self.set_meta("feed_id", uuid.uuid4().hex)
            self._advanced_to = float(self._meta.get("advanced_to", "0") or 0)
            self._events_dropped = int(self._meta.get("events_dropped", "0") or 0)
            self._legacy_webhooks = (
                self._conn.execute("SELECT 1 FROM webhook_sent LIMIT 1").fetchone() is not None
            )

    def _migrate(self) -> None:
        """Add the columns this version needs to a database made by an older one."""
        for table, columns in _ADDED_COLUMNS.items():
            have = {r["name"] for r in self._conn.execute(f"PRAGMA table_xinfo({table})")}
            for name, decl in columns:
                if name not in have:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
        if (
            "events"
            not in {r["name"] for r in self._conn.execute("SELECT name FROM sqlite_master")}
            and self._conn.execute("SELECT 1 FROM messages LIMIT 1").fetchone()
        ):
            # Messages stored before the change feed existed: log their acceptance (keeping
            # their order) and let the next advance bring their statuses up to date.
            self._conn.executescript(
                """
                BEGIN;
                CREATE TABLE events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL,
                    status TEXT NOT NULL, at REAL NOT NULL);
                INSERT INTO events (seq, message_id, status, at)
                    SELECT seq, id, 'pending', accepted_at FROM messages;
                CREATE TABLE feed (
                    seq INTEGER PRIMARY KEY, status TEXT NOT NULL, due_at REAL,
                    version INTEGER NOT NULL);
                INSERT INTO feed (seq, status, due_at, version)
                    SELECT seq, 'pending', accepted_at, seq FROM messages;
                COMMIT;
                """
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, args).fetchone()
            return row

    def _run(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self._lock:
            self._conn.execute(sql, args)

    @contextlib.contextmanager
    def counting_steps(self) -> Iterator[list[int]]:
        """Count the SQLite virtual-machine steps run inside the block (about one per row
        read, compared or written): ``with store.counting_steps() as steps: …; steps[0]``.

        For tests that pin "this costs the same at 1,000 and 100,000 stored" without timing.
        """
        steps = [0]

        def tick() -> int:
            steps[0] += 1
            return 0

        with self._lock:
            self._conn.set_progress_handler(tick, 1)
        try:
            yield steps
        finally:
            with self._lock:
                self._conn.set_progress_handler(None, 1)

    # -- settings -------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A stored setting, e.g. ``organization_id``."""
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
            self._meta[key] = value

    # -- credentials ----------------------------------------------------------------------
    def put_credentials(self, client_id: str, secret: str, name: str, email: str) -> None:
        """Add or replace an HMAC credential pair."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO credentials (client_id, client_secret, name, email) "
                "VALUES (?,?,?,?) ON CONFLICT(client_id) DO UPDATE SET "
                "client_secret = excluded.client_secret, name = excluded.name, "
                "email = excluded.email",
                (client_id, secret, name, email),
            )
            self._credentials[client_id] = (secret, name, email)

    def secret_for(self, client_id: str) -> str | None:
        """The secret of a known client, else None."""
        known = self._credentials.get(client_id)
        return None if known is None else known[0]

    def sender(self, client_id: str) -> tuple[str, str]:
        """``(name, email)`` shown as the sender of a client's broadcasts."""
        known = self._credentials.get(client_id)
        if known is None:
            return (client_id, "")
        return (known[1] or client_id, known[2] or "")

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

    def page_objects(
        self, table: str, filters: ObjectFilter, start: int, count: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of channels or templates matching ``filters``, and how many match."""
        assert table in ("channels", "templates")
        where: list[str] = []
        args: list[Any] = []
        for path, values in filters.equals.items():
            marks = ",".join("?" * len(values))
            where.append(f"upper(json_extract(data, ?)) IN ({marks})")
            args += [path, *(v.upper() for v in values)]
        for path, values in filters.excluded.items():
            marks = ",".join("?" * len(values))
            where.append(f"coalesce(upper(json_extract(data, ?)), '') NOT IN ({marks})")
            args += [path, *(v.upper() for v in values)]
        for path, text in filters.contains.items():
            where.append("contains(json_extract(data, ?), ?)")
            args += [path, text.lower()]
        for path, values in filters.exact.items():
            where.append(f"json_extract(data, ?) IN ({','.join('?' * len(values))})")
            args += [path, *values]
        if filters.suffix is not None:
            path, suffix, wanted = filters.suffix
            test = "substr(coalesce(json_extract(data, ?), ''), -?) = ?"
            where.append(test if wanted else f"NOT ({test})")
            args += [path, len(suffix), suffix]
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        order = "DESC" if filters.newest_first else "ASC"
        with self._lock:
            total = self._conn.execute(f"SELECT count(*) FROM {table}{clause}", args).fetchone()
            rows = self._conn.execute(
                f"SELECT data FROM {table}{clause} ORDER BY seq {order} LIMIT ? OFFSET ?",
                [*args, count, start],
            ).fetchall()
        return [json.loads(r["data"]) for r in rows], int(total[0])

    def get_object(self, table: str, obj_id: str) -> dict[str, Any] | None:
        """One channel or template by id."""
        assert table in ("channels", "templates")
        row = self._one(f"SELECT data FROM {table} WHERE id = ?", (obj_id,))
        return None if row is None else dict(json.loads(row["data"]))

    # -- traffic --------------------------------------------------------------------------
    def add_send(self, *, broadcast: dict[str, Any], client_id: str, message: MessageRow) -> None:
        """Store a broadcast and its one message atomically (both or neither)."""
        self.add_sends([(broadcast, client_id, message)])

    def add_sends(self, sends: Iterable[tuple[dict[str, Any], str, MessageRow]]) -> int:
        """Store many ``(broadcast, client_id, message)`` at once, in one transaction (each
        broadcast with its message, all or none); returns how many were stored."""
        broadcasts: list[tuple[Any, ...]] = []
        messages: list[tuple[Any, ...]] = []
        # Sends made from one payload share their template, parameters and rendered parts:
        # encode each shared object once, keyed by identity (the object is kept with its
        # text, so no id is reused by another object while this runs).
        encoded: dict[int, tuple[Any, str]] = {}

        def dumps(value: Any) -> str:
            key = id(value)
            if key not in encoded:
                encoded[key] = (value, json.dumps(value))
            return encoded[key][1]

        for broadcast, client_id, message in sends:
            broadcasts.append(
                (broadcast["id"], client_id, message.accepted_at, json.dumps(broadcast))
            )
            messages.append(
                (
                    message.id,
                    message.broadcast_id,
                    message.accepted_at,
                    message.to_number,
                    message.to_name,
                    message.channel_integration_id,
                    message.wamid,
                    message.error_code,
                    dumps(message.template),
                    dumps(message.parameters),
                    dumps(message.rendered),
                )
            )
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(
                    "INSERT INTO broadcasts (id, client_id, created_at, data) VALUES (?,?,?,?)",
                    broadcasts,
                )
                self._conn.executemany(
                    f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    messages,
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._logged(len(messages))
        return len(messages)

    def list_broadcasts(self) -> list[dict[str, Any]]:
        """Every broadcast, oldest first (O(stored): for scripts, never for a request)."""
        return [
            json.loads(r["data"]) for r in self._all("SELECT data FROM broadcasts ORDER BY seq")
        ]

    def page_broadcasts(
        self, filters: BroadcastFilter, page: PageRequest
    ) -> tuple[list[dict[str, Any]], int, list[int]]:
        """One page of broadcasts matching ``filters`` (in SQL, through the indexes), how
        many match, and the page's seqs (for keyset cursors)."""
        where: list[str] = []
        args: list[Any] = []
        if filters.since is not None:
            where.append("created_at >= ?")
            args.append(filters.since)
        if filters.until is not None:
            where.append("created_at <= ?")
            args.append(filters.until)
        if filters.name_contains:
            needle = filters.name_contains.lower()
            if needle.isascii():  # LIKE folds ASCII case, in C
                where.append("name LIKE ? ESCAPE '\\'")
                args.append(_like_pattern(needle))
            else:
                where.append("contains(name, ?)")
                args.append(needle)
        for column, values in (
            ("target_channel", filters.target_channels),
            ("execute_type", filters.execute_types),
        ):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args += list(values)
        # A date window reads its matches through the created_at index and sorts them;
        # without statistics the planner would walk every broadcast in seq order instead.
        dated = filters.since is not None or filters.until is not None
        source = "broadcasts INDEXED BY broadcasts_by_created" if dated else "broadcasts"
        extra, extra_args, tail, backwards = _window(page, filters.newest_first)
        conditions = [*where, extra] if extra else where
        with self._lock:
            if where:
                clause = " WHERE " + " AND ".join(where)
                total = int(
                    self._conn.execute(f"SELECT count(*) FROM broadcasts{clause}", args).fetchone()[
                        0
                    ]
                )
            else:
                total = self._broadcast_count()
            clause = (" WHERE " + " AND ".join(conditions)) if conditions else ""
            rows = self._conn.execute(
                f"SELECT seq, data FROM {source}{clause} {tail}", [*args, *extra_args]
            ).fetchall()
        if backwards:
            rows.reverse()
        return [json.loads(r["data"]) for r in rows], total, [int(r["seq"]) for r in rows]

    def broadcast_count(self) -> int:
        """How many broadcasts are stored (kept by a trigger: no scan)."""
        with self._lock:
            return self._broadcast_count()

    def _broadcast_count(self) -> int:
        row = self._conn.execute("SELECT value FROM counters WHERE name = 'broadcasts'").fetchone()
        return 0 if row is None else int(row[0])

    def get_broadcast(self, broadcast_id: str) -> dict[str, Any] | None:
        """One broadcast by id."""
        row = self._one("SELECT data FROM broadcasts WHERE id = ?", (broadcast_id,))
        return None if row is None else dict(json.loads(row["data"]))

    def messages(self, broadcast_id: str | None = None) -> list[MessageRow]:
        """Accepted messages, oldest first; all of them (O(stored): ground truth for tests
        and scripts) or one broadcast's."""
        if broadcast_id is None:
            rows = self._all(f"SELECT {_MESSAGE_COLUMNS} FROM messages ORDER BY seq")
        else:
            rows = self._all(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE broadcast_id = ? ORDER BY seq",
                (broadcast_id,),
            )
        return [_message(r) for r in rows]

    def messages_page(self, after: int, limit: int) -> tuple[list[MessageRow], int | None]:
        """Up to ``limit`` messages stored after position ``after`` (0: from the first),
        oldest first, and the position to ask from next (None when there are no more): one
        keyset range of the ``seq`` index, whatever is stored."""
        rows = self._all(
            f"SELECT seq, {_MESSAGE_COLUMNS} FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit + 1),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return [_message(r) for r in rows], int(rows[-1]["seq"]) if more else None

    def messages_of(self, broadcast_ids: Sequence[str]) -> dict[str, list[MessageRow]]:
        """The messages of each of a page of broadcasts, in one indexed query."""
        found: dict[str, list[MessageRow]] = {b: [] for b in broadcast_ids}
        if not broadcast_ids:
            return found
        marks = ",".join("?" * len(broadcast_ids))
        rows = self._all(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE broadcast_id IN ({marks}) ORDER BY seq",
            list(broadcast_ids),
        )
        for row in rows:
            found[row["broadcast_id"]].append(_message(row))
        return found

    def page_messages(
        self, broadcast_id: str, page: PageRequest
    ) -> tuple[list[MessageRow], int, list[int]]:
        """One page of a broadcast's messages, oldest first, how many it has, and the
        page's seqs (for keyset cursors)."""
        extra, extra_args, tail, backwards = _window(page, newest_first=False)
        clause = "broadcast_id = ?" + (f" AND {extra}" if extra else "")
        with self._lock:
            total = self._conn.execute(
                "SELECT count(*) FROM messages WHERE broadcast_id = ?", (broadcast_id,)
            ).fetchone()
            rows = self._conn.execute(
                f"SELECT seq, {_MESSAGE_COLUMNS} FROM messages WHERE {clause} {tail}",
                [broadcast_id, *extra_args],
            ).fetchall()
        if backwards:
            rows.reverse()
        return [_message(r) for r in rows], int(total[0]), [int(r["seq"]) for r in rows]

    # -- the change feed ------------------------------------------------------------------
    def feed_id(self) -> str:
        """Names the current sequence of changes; a new one after every reset."""
        return str(self._meta["feed_id"])

    def advance(self, now: float, delays: tuple[float, float, float]) -> float:
        """Log every status change due by ``now`` (only messages whose due time has passed
        are read); returns the instant the feed is now complete up to (never earlier than
        one an earlier call reached, so the feed never goes back in time)."""
        with self._lock:
            return self._advance(now, delays)

    def _advance(self, now: float, delays: tuple[float, float, float]) -> float:
        now = max(now, self._advanced_to)
        conn = self._conn
        due_sql = "FROM feed f INDEXED BY feed_due WHERE f.due_at <= ?"
        if conn.execute(f"SELECT 1 {due_sql} LIMIT 1", (now,)).fetchone() is None:
            self._advanced_to = now  # nothing changes: no write transaction for an idle poll
            return now
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                due = conn.execute(
                    "SELECT f.seq, f.status, m.id, m.accepted_at, m.error_code "
                    "FROM feed f INDEXED BY feed_due JOIN messages m ON m.seq = f.seq "
                    "WHERE f.due_at <= ? ORDER BY f.due_at LIMIT ?",
                    (now, _ADVANCE_BATCH),
                ).fetchall()
                head = conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
                seqs = conn.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
                ).fetchone()
                head = max(head, seqs[0] if seqs else 0)
                events: list[tuple[int, str, str, float]] = []
                updates: list[tuple[str, float | None, int, int]] = []
                # Message order within a batch, each message's changes together, as a
                # reader of one poll expects them.
                for row in sorted(due, key=lambda r: int(r["seq"])):
                    error = MAGIC_ERRORS.get(row["error_code"] or "")
                    reached, status, due_at = advance_status(
                        row["status"], row["accepted_at"], delays, error, now
                    )
                    for name, at in reached:
                        head += 1
                        events.append((head, row["id"], name, at))
                    version = head if reached else None
                    updates.append((status, due_at, version or 0, row["seq"]))
                conn.executemany(
                    "INSERT INTO events (seq, message_id, status, at) VALUES (?,?,?,?)", events
                )
                conn.executemany(
                    "UPDATE feed SET status = ?1, due_at = ?2, "
                    "version = CASE WHEN ?3 > 0 THEN ?3 ELSE version END WHERE seq = ?4",
                    updates,
                )
                if len(due) < _ADVANCE_BATCH and events:
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('advanced_to', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                        (repr(now),),
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._logged(len(events))
            if len(due) < _ADVANCE_BATCH:
                self._advanced_to = now
                if events:
                    self._meta["advanced_to"] = repr(now)
                return now

    def feed(
        self,
        after: int,
        limit: int,
        now: float,
        delays: tuple[float, float, float],
        feed_id: str | None = None,
    ) -> FeedPage:
        """Messages whose latest change is numbered above ``after``, oldest change first, at
        most ``limit`` of them; statuses brought up to ``now`` first. ``feed_id`` is the
        feed the reader's ``after`` came from (when it knows one)."""
        with self._lock:
            at = self._advance(now, delays)
            head = self._head()
            current = self._meta["feed_id"]
            reset = (feed_id is not None and feed_id != current) or after > head
            if reset:
                after = 0
            rows = self._conn.execute(
                f"SELECT {_qualified('m')}, m.seq AS seq, f.version AS version "
                "FROM feed f INDEXED BY feed_by_version JOIN messages m ON m.seq = f.seq "
                "WHERE f.version > ? ORDER BY f.version LIMIT ?",
                (after, limit + 1),
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        next_after = int(rows[-1]["version"]) if more else max(after, head)
        entries = [
            FeedEntry(
                int(r["seq"]),
                _message(r, parts=False),
                r["template"],
                r["parameters"],
                r["rendered"],
            )
            for r in rows
        ]
        return FeedPage(current, entries, next_after, more, reset, at)

    def head(self) -> int:
        """Number of the newest change ever logged (0 for none)."""
        with self._lock:
            return self._head()

    def _head(self) -> int:
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return int(row[0]) if row else 0

    def events_after(
        self, after: int, limit: int, now: float, delays: tuple[float, float, float]
    ) -> list[Event]:
        """Status changes numbered above ``after`` (``pending`` included: skip it), oldest
        first, at most ``limit``; statuses brought up to ``now`` first."""
        with self._lock:
            self._advance(now, delays)
            rows = self._conn.execute(
                "SELECT e.seq AS event_seq, e.status AS event_status, e.at AS event_at, "
                f"m.seq AS message_seq, {_qualified('m')} "
                "FROM events e LEFT JOIN messages m ON m.id = e.message_id "
                "WHERE e.seq > ? ORDER BY e.seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            Event(
                int(r["event_seq"]),
                r["event_status"],
                float(r["event_at"]),
                None if r["message_seq"] is None else _message(r),
            )
            for r in rows
        ]

    @property
    def events_dropped(self) -> int:
        """Changes removed from the log by its cap (:attr:`max_events`) before anything
        read them past the webhook high-water mark; 0 again after a reset."""
        return self._events_dropped

    def forget_events(self, upto: int) -> None:
        """Remove the changes numbered up to ``upto`` (the webhook poller has dealt with
        them; the inbox's feed never reads this log)."""
        self._run("DELETE FROM events WHERE seq <= ?", (upto,))

    def _logged(self, count: int) -> None:
        """Called under the lock after ``count`` changes were logged: keep the log at
        :attr:`max_events` (the newest), counting what goes."""
        self._unpruned += count
        if self._unpruned < self._prune_every:
            return
        self._unpruned = 0
        low = self._conn.execute("SELECT min(seq) FROM events").fetchone()[0]
        keep_from = self._head() - self.max_events  # numbers are consecutive: no gaps
        mark = self.reader_mark()
        if mark is not None:
            keep_from = min(keep_from, mark)
        if low is None or low > keep_from:
            return
        gone = self._conn.execute("DELETE FROM events WHERE seq <= ?", (keep_from,)).rowcount
        if gone > 0:
            self._events_dropped += gone
            self.set_meta("events_dropped", str(self._events_dropped))

    def has_message(self, message_id: str) -> bool:
        """Whether a message is still stored (a reset removes every one)."""
        return self._one("SELECT 1 FROM messages WHERE id = ?", (message_id,)) is not None

    def event_exists(self, seq: int) -> bool:
        """Whether a change is still in the feed (a reset removes every change)."""
        return self._one("SELECT 1 FROM events WHERE seq = ?", (seq,)) is not None

    def posted_before_upgrade(self, message_id: str, status: str) -> bool:
        """Whether a webhook was posted by a version that kept one row per post."""
        if not self._legacy_webhooks:
            return False
        row = self._one(
            "SELECT 1 FROM webhook_sent WHERE message_id = ? AND status = ?", (message_id, status)
        )
        return row is not None

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

    def clear_traffic(self) -> None:
        """Forget broadcasts, messages, uploads and the change feed; keep configuration.

        The feed gets a new id, so a reader holding a position from before knows to start
        over; change numbers keep counting up (AUTOINCREMENT), never reused.
        """
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for table in (
                    "broadcasts",
                    "messages",
                    "upload_files",
                    "webhook_sent",
                    "events",
                    "feed",
                ):
                    self._conn.execute(f"DELETE FROM {table}")
                self._conn.execute("UPDATE counters SET value = 0 WHERE name = 'broadcasts'")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._legacy_webhooks = False
            self.set_meta("feed_id", uuid.uuid4().hex)
            self._events_dropped = self._unpruned = 0
            self.set_meta("events_dropped", "0")

    def clear_all(self) -> None:
        """Forget everything, configuration included (the feed's id and position stay)."""
        with self._lock:
            self.clear_traffic()
            for table in ("credentials", "channels", "templates"):
                self._conn.execute(f"DELETE FROM {table}")
            self._conn.execute(
                "DELETE FROM meta WHERE key NOT IN ('feed_id', 'advanced_to', 'webhook_hwm')"
            )
            self._meta = {
                k: v
                for k, v in self._meta.items()
                if k in ("feed_id", "advanced_to", "webhook_hwm")
            }
            self._credentials.clear()
