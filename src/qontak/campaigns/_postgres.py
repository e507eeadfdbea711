"""The ledger on PostgreSQL: one campaign shared by many workers on many machines.

The schema and the state machine are SQLite's (:mod:`._sqlite`): same tables, same columns,
same ``UPDATE … WHERE state IN (sources)`` for every move. What PostgreSQL adds is what lets
several workers share a campaign, the way Oban, good_job, River and procrastinate share jobs:

- :meth:`PostgresStore.claim` takes pending rows with ``SELECT … FOR UPDATE SKIP LOCKED`` (two
  workers never claim the same row, and never wait for each other) and commits them as
  ``sending`` before the caller makes the request, as SQLite does.
- Each claimed row carries a lease: its owner (``host:pid:…``) and an expiry set by the
  *database* clock (``now()``), so the workers' clocks do not matter. A live worker renews the
  leases of its rows in flight (:meth:`PostgresStore.renew`, its heartbeat).
- :meth:`PostgresStore.recover` turns the ``sending`` rows whose lease has expired into
  ``unknown`` (a worker died or lost the database mid-request), never into ``pending``:
  reconcile settles them. Rows of live workers are left alone, so any worker or reconcile may
  call it at any time.

Migrations are numbered (1 to 3 are SQLite's; 4 adds the row leases) and recorded in
``schema_version``; the first use runs them inside one transaction holding an advisory lock,
so several workers starting at once against an empty database do not race.

The connection is in autocommit mode with an explicit transaction per method. When the server
goes away (a restart, a failover), a method reconnects and tries again for up to
``reconnect_timeout`` seconds, then raises :class:`.LedgerError`. Retrying is safe for every
method: a transition re-checks the row's state, and a claim whose commit was lost only leaves
rows ``sending`` under a lease nobody renews, which become ``unknown``, never sent twice.

psycopg 3 is imported on first use: it is the ``qontak[postgres]`` extra.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigurationError
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
from ._open import redact

if TYPE_CHECKING:
    import psycopg

__all__ = ["DEFAULT_LEASE", "MIGRATIONS", "PostgresStore"]

#: Seconds a claimed row's lease lasts without a heartbeat.
DEFAULT_LEASE = 30.0
#: Key of the advisory lock held while migrating (any constant unique to qontak).
_MIGRATION_LOCK = 0x71_6F6E_7461_6B  # "qontak"
_BATCH = 500
T = TypeVar("T")

#: Numbered schema migrations, the SQLite ledger's with PostgreSQL types (times are epoch
#: seconds as ``DOUBLE PRECISION``, like SQLite's ``REAL``; lease expiries are the database's
#: own ``timestamptz``).
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE campaigns (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            template_id TEXT NOT NULL,
            template_name TEXT NOT NULL,
            language TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            template_json TEXT NOT NULL,
            state TEXT NOT NULL,
            pause_reason TEXT,
            start_at DOUBLE PRECISION,
            send_window TEXT,
            source TEXT,
            fingerprint TEXT,
            lease_owner TEXT,
            lease_until DOUBLE PRECISION
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
            sent_at DOUBLE PRECISION,
            settled_at DOUBLE PRECISION,
            PRIMARY KEY (campaign_id, line)
        )""",
        "CREATE INDEX campaigns_fingerprint ON campaigns (fingerprint)",
        "CREATE UNIQUE INDEX campaign_rows_number ON campaign_rows (campaign_id, to_number)",
        "CREATE INDEX campaign_rows_state ON campaign_rows (campaign_id, state, line)",
        """CREATE TABLE campaign_rejects (
            id BIGSERIAL PRIMARY KEY,
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
            added_at DOUBLE PRECISION NOT NULL
        )""",
    ],
    [
        "ALTER TABLE campaign_rows ADD COLUMN delivery_status TEXT",
        "ALTER TABLE campaign_rows ADD COLUMN delivery_error TEXT",
        "CREATE INDEX campaign_rows_broadcast ON campaign_rows (broadcast_id)",
    ],
    [
        # Delivery tracking by webhook (SQLite's migration 3): who settled each row's status,
        # the WhatsApp message id it was linked to, the webhook high-water mark per campaign
        # and the API requests tracking cost.
        """CREATE TABLE campaign_delivery (
            campaign_id TEXT NOT NULL,
            line INTEGER NOT NULL,
            source TEXT NOT NULL,
            external_id TEXT,
            event_at DOUBLE PRECISION,
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
    [
        # PostgreSQL only. Row leases: who holds a `sending` row, and until when (the
        # database's clock).
        "ALTER TABLE campaign_rows ADD COLUMN lease_owner TEXT",
        "ALTER TABLE campaign_rows ADD COLUMN lease_expires TIMESTAMPTZ",
        "CREATE INDEX campaign_rows_lease ON campaign_rows (lease_owner) WHERE state = 'sending'",
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


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            "a postgresql:// ledger needs psycopg: pip install 'qontak[postgres]'",
            setting="db",
            reason="the postgres extra is not installed",
        ) from None
    return psycopg


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


class PostgresStore:
    """The ledger in a PostgreSQL database (see the module notes). Implements
    :class:`.Store` and :class:`.LeasedStore`.

    ``owner`` names this process in the row leases (default ``host:pid:ledger-…``);
    ``lease_seconds`` is how long a claim lasts without :meth:`renew`.
    """

    def __init__(
        self,
        url: str,
        *,
        owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE,
        reconnect_timeout: float = 30.0,
    ) -> None:
        from ._runner import new_owner

        self._pg = _psycopg()
        self._url = url
        #: Where the ledger is, fit to print (no password).
        self.path = redact(url)
        self.owner = owner or new_owner("ledger")
        self.lease_seconds = float(lease_seconds)
        self.reconnect_timeout = reconnect_timeout
        self._conn: psycopg.Connection[Any] | None = None
        # Rows this store claimed and has not settled: the heartbeat renews these only, so
        # rows of a claim whose commit answer was lost (a server restart) are left to expire.
        self._held: set[tuple[str, int]] = set()
        # A server that is not there at all when we start is a setting to fix, said at once;
        # one lost later (a restart) is waited for.
        self._do(self._migrate, patience=min(reconnect_timeout, 1.0))

    def __repr__(self) -> str:
        return f"PostgresStore({self.path!r}, owner={self.owner!r})"

    def __getstate__(self) -> dict[str, Any]:
        # The URL may hold a password, and a connection does not travel: open the ledger
        # again in the other process instead.
        raise TypeError("a PostgresStore cannot be pickled; open the ledger in each process")

    # -- plumbing -------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = self._pg.connect(self._url, autocommit=True, connect_timeout=10)
            # A row's `sending` must survive a crash of the server before the request goes
            # out (SQLite's synchronous=FULL): a server set to synchronous_commit=off
            # acknowledges commits it may lose, and a lost `sending` would be sent twice.
            if _one(conn.execute("SHOW synchronous_commit")) == "off":
                conn.execute("SET synchronous_commit = on")
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            # A broken connection may fail to close; it is dropped either way.
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def _do(
        self, work: Callable[[psycopg.Connection[Any]], T], *, patience: float | None = None
    ) -> T:
        """Run ``work`` on a live connection; reconnect and retry while the server is
        unreachable (up to ``reconnect_timeout``). Errors leave as :class:`LedgerError`."""
        pg = self._pg
        deadline = time.monotonic() + (self.reconnect_timeout if patience is None else patience)
        pause = 0.1
        while True:
            try:
                return work(self._connect())
            except (pg.OperationalError, pg.InterfaceError) as exc:
                self._drop()
                if time.monotonic() + pause > deadline:
                    raise LedgerError(
                        f"{self.path}: the ledger database is unreachable "
                        f"({self._scrub(_first_line(exc))})"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
            except pg.Error as exc:
                raise LedgerError(f"{self.path}: {self._scrub(_first_line(exc))}") from None

    def _scrub(self, text: str) -> str:
        """A driver message without the URL's password (libpq may quote what it parsed)."""
        text = text.replace(self._url, self.path)
        for secret in _passwords(self._url):
            text = text.replace(secret, "***")
        return text

    def _fetchall(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return self._do(lambda c: c.execute(sql, params).fetchall())

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            # Several workers may start at once on an empty database: one migrates, the
            # others wait here and then find the work done.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            found = _one(conn.execute("SELECT MAX(version) FROM schema_version")) or 0
            if found > len(MIGRATIONS):
                raise LedgerError(
                    f"{self.path}: schema version {found} is newer than this qontak "
                    f"({len(MIGRATIONS)}); upgrade qontak"
                )
            for version in range(found + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[version - 1]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))

    @property
    def schema_version(self) -> int:
        """The schema version of the database."""
        return int(self._do(lambda c: _one(c.execute("SELECT MAX(version) FROM schema_version"))))

    def close(self) -> None:
        """Close the connection."""
        self._drop()

    # -- campaigns ------------------------------------------------------------------------
    def create_campaign(self, campaign: Campaign) -> None:
        """See :meth:`.Store.create_campaign`."""
        values = (
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
        )
        marks = ", ".join(["%s"] * len(values))
        self._do(
            lambda c: c.execute(
                f"INSERT INTO campaigns ({_CAMPAIGN_COLUMNS}) VALUES ({marks})", values
            )
        )

    def get_campaign(self, campaign_id: str) -> Campaign | None:
        """See :meth:`.Store.get_campaign`."""
        found = self._do(
            lambda c: c.execute(
                f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = %s", (campaign_id,)
            ).fetchone()
        )
        return _campaign(found) if found else None

    def find_campaign(self, fingerprint: str) -> Campaign | None:
        """See :meth:`.Store.find_campaign`."""
        found = self._do(
            lambda c: c.execute(
                f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE fingerprint = %s "
                "ORDER BY created_at DESC LIMIT 1",
                (fingerprint,),
            ).fetchone()
        )
        return _campaign(found) if found else None

    def list_campaigns(self) -> list[Campaign]:
        """See :meth:`.Store.list_campaigns`."""
        found = self._do(
            lambda c: c.execute(
                f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns ORDER BY created_at DESC, id"
            ).fetchall()
        )
        return [_campaign(v) for v in found]

    def update_campaign(self, campaign_id: str, **fields: object) -> None:
        """See :meth:`.Store.update_campaign`."""
        sets, values = [], []
        for name, value in fields.items():
            if name not in _CAMPAIGN_FIELDS:
                raise LedgerError(f"campaign field {name!r} cannot be changed")
            sets.append(f"{_CAMPAIGN_FIELDS[name]} = %s")
            values.append(value.value if isinstance(value, CampaignState) else value)
        if sets:
            self._do(
                lambda c: c.execute(
                    f"UPDATE campaigns SET {', '.join(sets)} WHERE id = %s",
                    (*values, campaign_id),
                )
            )

    def acquire(self, campaign_id: str, owner: str, *, now: float, ttl: float) -> bool:
        """See :meth:`.Store.acquire`."""
        cur = self._do(
            lambda c: c.execute(
                "UPDATE campaigns SET lease_owner = %s, lease_until = %s WHERE id = %s AND "
                "(lease_owner IS NULL OR lease_owner = %s OR lease_until < %s)",
                (owner, now + ttl, campaign_id, owner, now),
            )
        )
        return cur.rowcount == 1

    def lease_owner(self, campaign_id: str) -> str | None:
        """See :meth:`.Store.lease_owner`."""
        found = self._do(
            lambda c: c.execute(
                "SELECT lease_owner FROM campaigns WHERE id = %s", (campaign_id,)
            ).fetchone()
        )
        return str(found[0]) if found and found[0] else None

    def release(self, campaign_id: str, owner: str) -> None:
        """See :meth:`.Store.release`."""
        self._do(
            lambda c: c.execute(
                "UPDATE campaigns SET lease_owner = NULL, lease_until = NULL "
                "WHERE id = %s AND lease_owner = %s",
                (campaign_id, owner),
            )
        )

    # -- rows -----------------------------------------------------------------------------
    def add_rows(self, campaign_id: str, rows: Sequence[NewRow]) -> list[tuple[NewRow, int]]:
        """See :meth:`.Store.add_rows`."""
        if not rows:
            return []

        def work(conn: psycopg.Connection[Any]) -> list[tuple[NewRow, int]]:
            with conn.transaction():
                # One statement for the batch; RETURNING says which rows went in, so the
                # duplicates are the rest (found by the unique index, not in memory).
                inserted = {
                    int(line)
                    for (line,) in conn.execute(
                        "INSERT INTO campaign_rows (campaign_id, line, to_number, to_name, "
                        "parameters, zones, state) SELECT %s, * FROM unnest("
                        "%s::int[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
                        "ON CONFLICT DO NOTHING RETURNING line",
                        (
                            campaign_id,
                            [r.line for r in rows],
                            [r.to_number for r in rows],
                            [r.to_name for r in rows],
                            [
                                json.dumps(r.parameters, ensure_ascii=False, separators=(",", ":"))
                                for r in rows
                            ],
                            [r.zones for r in rows],
                            [RowState.PENDING.value] * len(rows),
                        ),
                    ).fetchall()
                }
                left = [r for r in rows if r.line not in inserted]
                if not left:
                    return []
                firsts = dict(
                    conn.execute(
                        "SELECT to_number, line FROM campaign_rows "
                        "WHERE campaign_id = %s AND to_number = ANY(%s)",
                        (campaign_id, [r.to_number for r in left]),
                    ).fetchall()
                )
                out: list[tuple[NewRow, int]] = []
                seen: dict[str, int] = {}
                for r in rows:
                    # Within one batch the first of two equal numbers is the one inserted.
                    if r.line in inserted:
                        seen.setdefault(r.to_number, r.line)
                    else:
                        out.append((r, int(firsts.get(r.to_number, seen.get(r.to_number, r.line)))))
                return out

        return self._do(work)

    def add_rejects(self, campaign_id: str, rejects: Sequence[Reject]) -> None:
        """See :meth:`.Store.add_rejects`."""
        if not rejects:
            return

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO campaign_rejects (campaign_id, line, field, reason, code, "
                    "to_number) VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (campaign_id, r.line, r.field, r.reason, r.code, r.to_number)
                        for r in rejects
                    ],
                )

        self._do(work)

    def iter_rejects(self, campaign_id: str) -> Iterator[Reject]:
        """See :meth:`.Store.iter_rejects`."""
        last = (-1, 0)
        while True:
            batch = self._fetchall(
                "SELECT line, id, field, reason, code, to_number FROM campaign_rejects "
                "WHERE campaign_id = %s AND (line, id) > (%s, %s) ORDER BY line, id LIMIT %s",
                (campaign_id, *last, _BATCH),
            )
            if not batch:
                return
            last = (batch[-1][0], batch[-1][1])
            yield from (
                Reject(line=v[0], field=v[2], reason=v[3], code=v[4], to_number=v[5]) for v in batch
            )

    def claim(
        self,
        campaign_id: str,
        limit: int,
        *,
        zones: Sequence[str] | None,
        now: float,
    ) -> list[Row]:
        """See :meth:`.Store.claim`: pending rows are locked with ``FOR UPDATE SKIP LOCKED``
        (no two workers take the same row) and leave as ``sending`` under this store's
        lease (:attr:`owner`, :attr:`lease_seconds`), committed."""
        if zones is not None and not zones:
            return []
        where = "campaign_id = %s AND state = %s"
        params: list[Any] = [campaign_id, RowState.PENDING.value]
        if zones is not None:
            where += " AND zones = ANY(%s)"
            params.append(list(zones))

        def work(conn: psycopg.Connection[Any]) -> list[Row]:
            with conn.transaction():
                candidates = conn.execute(
                    f"SELECT line, to_number FROM campaign_rows WHERE {where} "
                    "ORDER BY line LIMIT %s FOR UPDATE SKIP LOCKED",
                    (*params, limit),
                ).fetchall()
                if not candidates:
                    return []
                # The opt-out list is read again here, just before the send.
                blocked = {
                    n
                    for (n,) in conn.execute(
                        "SELECT to_number FROM optouts WHERE to_number = ANY(%s)",
                        ([n for _, n in candidates],),
                    )
                }
                take = [line for line, number in candidates if number not in blocked]
                skip = [line for line, number in candidates if number in blocked]
                if skip:
                    self._move(
                        conn, campaign_id, skip, RowState.SKIPPED, now=now, reason="opted out"
                    )
                if not take:
                    return []
                found = conn.execute(
                    f"UPDATE campaign_rows SET state = %s, sent_at = %s, attempts = attempts + 1, "
                    "lease_owner = %s, lease_expires = now() + make_interval(secs => %s) "
                    "WHERE campaign_id = %s AND line = ANY(%s) AND state = ANY(%s) "
                    f"RETURNING {_ROW_COLUMNS}",
                    (
                        RowState.SENDING.value,
                        now,
                        self.owner,
                        self.lease_seconds,
                        campaign_id,
                        take,
                        list(sources_of(RowState.SENDING)),
                    ),
                ).fetchall()
            return sorted((_row(v) for v in found), key=lambda r: r.line)

        rows = self._do(work)
        self._held.update((campaign_id, r.line) for r in rows)
        return rows

    def renew(self) -> int:
        """The heartbeat: extend the lease of every row this store has in flight; returns
        how many (a row another worker already expired is not ours any more)."""
        if not self._held:
            return 0
        held = sorted(self._held)
        cur = self._do(
            lambda c: c.execute(
                "UPDATE campaign_rows AS r "
                "SET lease_expires = now() + make_interval(secs => %s) "
                "FROM unnest(%s::text[], %s::int[]) AS h(campaign_id, line) "
                "WHERE r.campaign_id = h.campaign_id AND r.line = h.line "
                "AND r.lease_owner = %s AND r.state = %s",
                (
                    self.lease_seconds,
                    [c for c, _ in held],
                    [line for _, line in held],
                    self.owner,
                    RowState.SENDING.value,
                ),
            )
        )
        return int(cur.rowcount)

    def _move(
        self,
        conn: psycopg.Connection[Any],
        campaign_id: str,
        lines: Sequence[int],
        target: RowState,
        *,
        now: float,
        broadcast_id: str | None = None,
        code: str | None = None,
        reason: str | None = None,
    ) -> int:
        # The only UPDATE of a row's state besides claim and recover; the sources come from
        # the state machine, so a forbidden move changes nothing.
        sets = "state = %s, settled_at = %s, error_code = %s, error_reason = %s"
        values: list[Any] = [target.value, now, code, reason]
        if target is RowState.ACCEPTED:
            sets += ", broadcast_id = %s"
            values.append(broadcast_id)
        if target is RowState.PENDING:
            sets += ", sent_at = NULL"
        if target is not RowState.SENDING:
            sets += ", lease_owner = NULL, lease_expires = NULL"
        cur = conn.execute(
            f"UPDATE campaign_rows SET {sets} WHERE campaign_id = %s "
            "AND line = ANY(%s) AND state = ANY(%s)",
            (*values, campaign_id, list(lines), list(sources_of(target))),
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
        try:
            moved = self._do(
                lambda c: self._move(
                    c,
                    campaign_id,
                    [line],
                    target,
                    now=now,
                    broadcast_id=broadcast_id,
                    code=code,
                    reason=reason,
                )
            )
        finally:
            # Settled, or given up on: either way no longer renewed by the heartbeat.
            self._held.discard((campaign_id, line))
        return moved == 1

    def recover(self, campaign_id: str) -> int:
        """``sending`` rows whose lease has expired (by the database's clock) become
        ``unknown``; rows of live workers are left alone. Returns how many moved."""
        cur = self._do(
            lambda c: c.execute(
                "UPDATE campaign_rows SET state = %s, error_reason = %s, "
                "lease_owner = NULL, lease_expires = NULL "
                "WHERE campaign_id = %s AND state = %s "
                "AND (lease_expires IS NULL OR lease_expires < now())",
                (
                    RowState.UNKNOWN.value,
                    "interrupted while sending (lease expired)",
                    campaign_id,
                    RowState.SENDING.value,
                ),
            )
        )
        return int(cur.rowcount)

    def set_delivery(self, campaign_id: str, updates: Iterable[tuple[str, str, str | None]]) -> int:
        """See :meth:`.Store.set_delivery`."""
        items = list(updates)
        if not items:
            return 0

        def work(conn: psycopg.Connection[Any]) -> int:
            changed = 0
            with conn.transaction():
                for broadcast_id, status, error in items:
                    cur = conn.execute(
                        "UPDATE campaign_rows SET delivery_status = %s, delivery_error = %s "
                        "WHERE campaign_id = %s AND broadcast_id = %s AND state = %s",
                        (status, error, campaign_id, broadcast_id, RowState.ACCEPTED.value),
                    )
                    changed += cur.rowcount
            return changed

        return self._do(work)

    def counts(self, campaign_id: str) -> dict[str, int]:
        """See :meth:`.Store.counts`."""
        out = {s.value: 0 for s in RowState}
        found = self._do(
            lambda c: c.execute(
                "SELECT state, COUNT(*) FROM campaign_rows WHERE campaign_id = %s GROUP BY state",
                (campaign_id,),
            ).fetchall()
        )
        for state, count in found:
            out[state] = int(count)
        return out

    def delivery_counts(self, campaign_id: str) -> dict[str, int]:
        """See :meth:`.Store.delivery_counts`."""
        found = self._do(
            lambda c: c.execute(
                "SELECT delivery_status, COUNT(*) FROM campaign_rows WHERE campaign_id = %s "
                "AND state = %s GROUP BY delivery_status",
                (campaign_id, RowState.ACCEPTED.value),
            ).fetchall()
        )
        return {(status or "none"): int(count) for status, count in found}

    def failures(self, campaign_id: str) -> list[tuple[str, str, str, int]]:
        """See :meth:`.Store.failures`."""

        def work(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str, int]]:
            refused = conn.execute(
                "SELECT COALESCE(error_code, ''), COALESCE(error_reason, ''), COUNT(*) "
                "FROM campaign_rows WHERE campaign_id = %s AND state = %s "
                "GROUP BY error_code, error_reason",
                (campaign_id, RowState.FAILED.value),
            ).fetchall()
            delivery = conn.execute(
                "SELECT COALESCE(delivery_error, ''), COUNT(*) FROM campaign_rows "
                "WHERE campaign_id = %s AND state = %s AND delivery_status = 'failed' "
                "GROUP BY delivery_error",
                (campaign_id, RowState.ACCEPTED.value),
            ).fetchall()
            out = [("refused", c, r, int(n)) for c, r, n in refused]
            for text, n in delivery:
                code, _, reason = str(text).partition(": ")
                out.append(("delivery", code, reason, int(n)))
            return out

        return sorted(self._do(work), key=lambda f: (-f[3], f[0], f[1], f[2]))

    def pending_zones(self, campaign_id: str) -> list[str]:
        """See :meth:`.Store.pending_zones`."""
        found = self._do(
            lambda c: c.execute(
                "SELECT DISTINCT zones FROM campaign_rows WHERE campaign_id = %s AND state = %s",
                (campaign_id, RowState.PENDING.value),
            ).fetchall()
        )
        return [z for (z,) in found]

    def iter_rows(
        self, campaign_id: str, states: Sequence[RowState] | None = None
    ) -> Iterator[Row]:
        """See :meth:`.Store.iter_rows`."""
        where = "campaign_id = %s AND line > %s"
        extra: list[Any] = []
        if states is not None:
            where += " AND state = ANY(%s)"
            extra = [[s.value for s in states]]
        last = -1
        while True:
            # Keyset paging: no cursor stays open while the caller writes to the ledger.
            batch = self._fetchall(
                f"SELECT {_ROW_COLUMNS} FROM campaign_rows WHERE {where} ORDER BY line LIMIT %s",
                (campaign_id, last, *extra, _BATCH),
            )
            if not batch:
                return
            for values in batch:
                yield _row(values)
            last = batch[-1][1]

    def broadcast_ids(self, campaign_id: str, *, since: float | None = None) -> set[str]:
        """See :meth:`.Store.broadcast_ids`."""
        sql = (
            "SELECT broadcast_id FROM campaign_rows WHERE campaign_id = %s "
            "AND broadcast_id IS NOT NULL"
        )
        params: list[Any] = [campaign_id]
        if since is not None:
            sql += " AND sent_at >= %s"
            params.append(since)
        return {b for (b,) in self._do(lambda c: c.execute(sql, params).fetchall())}

    # -- opt-outs -------------------------------------------------------------------------
    def add_optouts(self, numbers: Iterable[str], *, reason: str, now: float) -> int:
        """See :meth:`.Store.add_optouts`."""
        items = list(dict.fromkeys(numbers))
        if not items:
            return 0
        cur = self._do(
            lambda c: c.execute(
                "INSERT INTO optouts (to_number, reason, added_at) "
                "SELECT n, %s, %s FROM unnest(%s::text[]) AS n ON CONFLICT DO NOTHING",
                (reason, now, items),
            )
        )
        return int(cur.rowcount)

    def remove_optouts(self, numbers: Iterable[str]) -> int:
        """See :meth:`.Store.remove_optouts`."""
        items = list(dict.fromkeys(numbers))
        if not items:
            return 0
        cur = self._do(
            lambda c: c.execute("DELETE FROM optouts WHERE to_number = ANY(%s)", (items,))
        )
        return int(cur.rowcount)

    def iter_optouts(self) -> Iterator[tuple[str, str, float]]:
        """See :meth:`.Store.iter_optouts`."""
        last = ""
        while True:
            batch = self._fetchall(
                "SELECT to_number, reason, added_at FROM optouts WHERE to_number > %s "
                "ORDER BY to_number LIMIT %s",
                (last, _BATCH),
            )
            if not batch:
                return
            yield from ((n, r, a) for n, r, a in batch)
            last = batch[-1][0]

    def opted_out(self, numbers: Sequence[str]) -> set[str]:
        """See :meth:`.Store.opted_out`."""
        found: set[str] = set()
        for start in range(0, len(numbers), _BATCH):
            chunk = list(numbers[start : start + _BATCH])
            found.update(
                n
                for (n,) in self._fetchall(
                    "SELECT to_number FROM optouts WHERE to_number = ANY(%s)", (chunk,)
                )
            )
        return found

    # -- delivery tracking (._tracking.TrackingStore, as SQLiteStore) ---------------------
    def tracking_mark(self, campaign_id: str) -> tuple[str | None, int, int]:
        """``(webhook source, high-water mark, API requests spent on tracking)``."""
        found = self._do(
            lambda c: c.execute(
                "SELECT webhook_source, webhook_seq, requests FROM campaign_tracking "
                "WHERE campaign_id = %s",
                (campaign_id,),
            ).fetchone()
        )
        return (found[0], int(found[1]), int(found[2])) if found else (None, 0, 0)

    def delivery_row(
        self, campaign_id: str, *, external_id: str | None, to_number: str | None
    ) -> tuple[int, str, float | None, str | None, str | None] | None:
        """The row an event may belong to: linked by ``external_id`` first, else the row of
        ``to_number``: ``(line, state, sent_at, delivery_status, linked external_id)``."""
        select = (
            "SELECT r.line, r.state, r.sent_at, r.delivery_status, d.external_id "
            "FROM campaign_rows r LEFT JOIN campaign_delivery d "
            "ON d.campaign_id = r.campaign_id AND d.line = r.line WHERE r.campaign_id = %s "
        )

        def work(conn: psycopg.Connection[Any]) -> Any:
            found = None
            if external_id is not None:
                found = conn.execute(
                    select + "AND d.external_id = %s", (campaign_id, external_id)
                ).fetchone()
            if found is None and to_number is not None:
                found = conn.execute(
                    select + "AND r.to_number = %s", (campaign_id, to_number)
                ).fetchone()
            return found

        found = self._do(work)
        return None if found is None else (found[0], found[1], found[2], found[3], found[4])

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
        items = list(updates)
        rank = (
            "CASE {0} WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 "
            "WHEN 'read' THEN 3 WHEN 'failed' THEN 3 ELSE -1 END"
        )

        def work(conn: psycopg.Connection[Any]) -> int:
            changed = 0
            with conn.transaction():
                for line, status, error, external_id, event_at in items:
                    cur = conn.execute(
                        "UPDATE campaign_rows SET delivery_status = %s, delivery_error = %s "
                        "WHERE campaign_id = %s AND line = %s AND state = %s AND "
                        f"{rank.format('delivery_status')} < {rank.format('%s::text')}",
                        (status, error, campaign_id, line, RowState.ACCEPTED.value, status),
                    )
                    moved = cur.rowcount > 0
                    changed += int(moved)
                    if moved or external_id is not None:
                        conn.execute(
                            "INSERT INTO campaign_delivery (campaign_id, line, source, "
                            "external_id, event_at, heard) VALUES (%s, %s, %s, %s, %s, %s) "
                            "ON CONFLICT (campaign_id, line) DO UPDATE SET source = CASE WHEN "
                            "%s::int = 1 THEN excluded.source ELSE campaign_delivery.source END, "
                            "external_id = COALESCE(campaign_delivery.external_id, "
                            "excluded.external_id), event_at = COALESCE(excluded.event_at, "
                            "campaign_delivery.event_at), heard = CASE WHEN excluded.heard = 1 "
                            "THEN 1 ELSE campaign_delivery.heard END",
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
                    conn.execute(
                        "INSERT INTO campaign_tracking (campaign_id) VALUES (%s) "
                        "ON CONFLICT (campaign_id) DO NOTHING",
                        (campaign_id,),
                    )
                    conn.execute(
                        "UPDATE campaign_tracking SET requests = requests + %s "
                        "WHERE campaign_id = %s",
                        (requests, campaign_id),
                    )
                    if mark is not None:
                        conn.execute(
                            "UPDATE campaign_tracking SET webhook_source = %s, webhook_seq = %s "
                            "WHERE campaign_id = %s",
                            (mark[0], mark[1], campaign_id),
                        )
            return changed

        return self._do(work)

    def delivery_sources(self, campaign_id: str) -> dict[str, int]:
        """Accepted rows with a final status (read/failed), per source that settled them;
        rows settled before tracking kept a source count as ``poll``."""
        out = {"webhook": 0, "poll": 0}
        found = self._fetchall(
            "SELECT COALESCE(d.source, 'poll'), COUNT(*) FROM campaign_rows r "
            "LEFT JOIN campaign_delivery d ON d.campaign_id = r.campaign_id AND d.line = r.line "
            "WHERE r.campaign_id = %s AND r.state = %s "
            "AND r.delivery_status IN ('read', 'failed') GROUP BY COALESCE(d.source, 'poll')",
            (campaign_id, RowState.ACCEPTED.value),
        )
        for source, count in found:
            out[source] = int(count)
        return out

    def unheard_rows(self, campaign_id: str, *, sent_before: float) -> list[tuple[int, str]]:
        """``(line, broadcast_id)`` of accepted rows not final, sent before ``sent_before``,
        of which no webhook event was heard."""
        return [
            (int(line), str(broadcast_id))
            for line, broadcast_id in self._fetchall(
                "SELECT r.line, r.broadcast_id FROM campaign_rows r WHERE r.campaign_id = %s "
                "AND r.state = %s AND r.broadcast_id IS NOT NULL AND r.sent_at < %s AND "
                "(r.delivery_status IS NULL OR r.delivery_status NOT IN ('read', 'failed')) "
                "AND NOT EXISTS (SELECT 1 FROM campaign_delivery d WHERE d.campaign_id = "
                "r.campaign_id AND d.line = r.line AND d.heard = 1) ORDER BY r.line",
                (campaign_id, RowState.ACCEPTED.value, sent_before),
            )
        ]


def _one(cur: Any) -> Any:
    row = cur.fetchone()
    return row[0] if row else None


def _passwords(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [parts.password] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query) if k.lower() == "password" and v]
    return found


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
