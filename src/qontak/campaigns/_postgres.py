"""The ledger on PostgreSQL: one campaign shared by many workers on many machines.

The schema, the state machine and most statements are SQLite's (:mod:`._sql`, written once
for both): same tables, same columns, same ``UPDATE … WHERE state IN (sources)`` for every
move. What PostgreSQL adds is what lets
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

Migrations are numbered (1 to 3 are SQLite's; 4 adds the row leases; 5 is SQLite's 4) and
recorded in ``schema_version``; the first use runs them inside one transaction holding an
advisory lock, so several workers starting at once against an empty database do not race.

The connection is in autocommit mode with an explicit transaction per method. When the server
goes away (a restart, a failover), a method reconnects and tries again for up to
``reconnect_timeout`` seconds, then raises :class:`.LedgerError`. Retrying is safe for every
method: a transition re-checks the row's state and moves a ``sending`` row only under this
store's own lease (a retried ``sending → pending`` never undoes another worker's new claim),
and a claim whose commit was lost only leaves rows ``sending`` under a lease nobody renews,
which become ``unknown``, never sent twice.

psycopg 3 is imported on first use: it is the ``qontak[postgres]`` extra.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigurationError
from ._ledger import LedgerError, NewRow, Row, RowState
from ._open import redact
from ._sql import JSON_COMPACT, POSTGRES, Executor, SQLStore, apply_migrations, migrations

if TYPE_CHECKING:
    import psycopg

__all__ = ["DEFAULT_LEASE", "MIGRATIONS", "PostgresStore"]

#: Seconds a claimed row's lease lasts without a heartbeat.
DEFAULT_LEASE = 30.0
#: Key of the advisory lock held while migrating (any constant unique to qontak).
_MIGRATION_LOCK = 0x71_6F6E_7461_6B  # "qontak"
T = TypeVar("T")

_SHARED = migrations(POSTGRES)
#: Numbered schema migrations: the SQLite ledger's (:func:`._sql.migrations`, times as epoch
#: seconds in ``DOUBLE PRECISION``) with the row leases as 4 (lease expiries are the
#: database's own ``timestamptz``).
MIGRATIONS: list[list[str]] = [
    *_SHARED[:3],
    [
        # PostgreSQL only. Row leases: who holds a `sending` row, and until when (the
        # database's clock).
        "ALTER TABLE campaign_rows ADD COLUMN lease_owner TEXT",
        "ALTER TABLE campaign_rows ADD COLUMN lease_expires TIMESTAMPTZ",
        "CREATE INDEX campaign_rows_lease ON campaign_rows (lease_owner) WHERE state = 'sending'",
    ],
    *_SHARED[3:],
]


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


class PostgresStore(SQLStore):
    """The ledger in a PostgreSQL database (see the module notes). Implements
    :class:`.Store` and :class:`.LeasedStore`.

    ``owner`` names this process in the row leases (default ``host:pid:ledger-…``);
    ``lease_seconds`` is how long a claim lasts without :meth:`renew`.
    """

    dialect = POSTGRES

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

    def _read(self, work: Callable[[Executor], T]) -> T:
        return self._do(lambda c: work(Executor(c, POSTGRES)))

    def _write(self, work: Callable[[Executor], T]) -> T:
        def run(conn: psycopg.Connection[Any]) -> T:
            with conn.transaction():
                return work(Executor(conn, POSTGRES))

        return self._do(run)

    def _autocommit(self, work: Callable[[Executor], T]) -> T:
        # The connection is in autocommit mode: one statement is its own transaction.
        return self._read(work)

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            # Several workers may start at once on an empty database: one migrates, the
            # others wait here and then find the work done.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            apply_migrations(Executor(conn, POSTGRES), MIGRATIONS, self.path)

    def close(self) -> None:
        """Close the connection."""
        self._drop()

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
                            [JSON_COMPACT.encode(r.parameters) for r in rows],
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

    def claim(
        self, campaign_id: str, limit: int, *, zones: Sequence[str] | None, now: float
    ) -> list[Row]:
        """See :meth:`.Store.claim`: pending rows are locked with ``FOR UPDATE SKIP LOCKED``
        (no two workers take the same row) and leave as ``sending`` under this store's
        lease (:attr:`owner`, :attr:`lease_seconds`), committed."""
        rows = super().claim(campaign_id, limit, zones=zones, now=now)
        self._held.update((campaign_id, r.line) for r in rows)
        return rows

    def _claim_sets(self) -> tuple[str, list[Any]]:
        return (
            ", lease_owner = ?, lease_expires = now() + make_interval(secs => ?)",
            [self.owner, self.lease_seconds],
        )

    def _settle_sets(self, target: RowState) -> str:
        return "" if target is RowState.SENDING else ", lease_owner = NULL, lease_expires = NULL"

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

    def _holder_only(self) -> tuple[str, list[Any]]:
        # Another worker's `sending` row is its own until its lease expires (then recover
        # makes it `unknown`, which anyone may settle). Without this, a worker whose
        # `sending → pending` commit answer was lost, retried after the row had been claimed
        # again by another worker, would hand that claim out a second time: sent twice.
        return " AND (state <> ? OR lease_owner = ?)", [RowState.SENDING.value, self.owner]

    def _let_go(self, campaign_id: str, line: int, *, keep: bool = False) -> None:
        if keep:
            self._held.add((campaign_id, line))
        else:
            # Settled, or given up on: either way no longer renewed by the heartbeat.
            self._held.discard((campaign_id, line))

    def _recover_scope(self) -> tuple[str, str]:
        # Only rows whose lease has expired (by the database's clock): rows of live workers
        # are left alone, so any worker or reconcile may recover at any time.
        return (
            " AND (lease_expires IS NULL OR lease_expires < now())",
            "interrupted while sending (lease expired)",
        )

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
