"""The SQL both ledger backends speak: one schema, one set of statements, written once.

:class:`SQLStore` implements every :class:`.Store` method whose SQL is the same in SQLite and
PostgreSQL; :mod:`._sqlite` and :mod:`._postgres` add only what differs (connecting,
transactions, migrations' locking, the bulk insert of an import, and PostgreSQL's row
leases). What differs inside a statement is in the :class:`Dialect` table:

==================  ==================================  =====================================
what                SQLite                              PostgreSQL
==================  ==================================  =====================================
placeholder         ``?``                               ``%s`` (statements are written with
                                                        ``?`` and translated)
a list parameter    ``col IN (?, ?, …)``                ``col = ANY(?)`` (one array)
claiming rows       a write transaction (one writer)    ``FOR UPDATE SKIP LOCKED``
epoch seconds       ``REAL``                            ``DOUBLE PRECISION``
a reject's order    ``rowid``                           ``id BIGSERIAL``
==================  ==================================  =====================================

Every state change goes through :meth:`SQLStore._move` (and ``claim``), as ``UPDATE … WHERE
state IN (sources)`` with the sources from :func:`._ledger.sources_of`: the state machine
decides, the database enforces it even when two processes race.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ._ledger import (
    USER_PAUSE,
    Campaign,
    CampaignState,
    LedgerError,
    NewRow,
    Reject,
    Row,
    RowState,
    sources_of,
)

__all__ = ["POSTGRES", "SQLITE", "Dialect", "Executor", "SQLStore", "migrations"]

T = TypeVar("T")

#: Rows per batch when paging, and values per list parameter.
BATCH = 500
#: The stored form of a row's parameters (compact, non-ASCII kept).
JSON_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

ROW_COLUMNS = (
    "campaign_id, line, to_number, to_name, parameters, zones, state, attempts, broadcast_id, "
    "error_code, error_reason, sent_at, settled_at, delivery_status, delivery_error"
)
CAMPAIGN_COLUMNS = (
    "id, name, created_at, template_id, template_name, language, channel_id, template_json, "
    "state, pause_reason, start_at, send_window, source, fingerprint, pause_code"
)
#: Campaign fields :meth:`SQLStore.update_campaign` may change, and their columns.
_CAMPAIGN_FIELDS = {
    "state": "state",
    "pause_reason": "pause_reason",
    "pause_code": "pause_code",
    "start_at": "start_at",
    "window": "send_window",
    "fingerprint": "fingerprint",
}


@dataclass(frozen=True)
class Dialect:
    """What one database spells differently (see the module notes)."""

    name: str
    placeholder: str
    """``?`` or ``%s``: statements are written with ``?`` and translated by :meth:`sql`."""
    arrays: bool
    """A list goes as one array parameter (``= ANY(?)``) instead of one mark per value."""
    real: str
    """The column type of epoch seconds."""
    reject_key: str
    """The column ordering rejects of the same line (their insertion order)."""
    lock_claimed: str
    """Appended to the ``SELECT`` of a claim: how two claimers never take the same row."""

    def sql(self, text: str) -> str:
        """``text`` with this dialect's placeholders."""
        return _translate(text, self.placeholder)

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values``: the condition and its parameters."""
        if self.arrays:
            return f"{column} = ANY(?)", [list(values)]
        return f"{column} IN ({','.join('?' * len(values))})", list(values)


@functools.lru_cache(maxsize=256)
def _translate(text: str, placeholder: str) -> str:
    if placeholder == "?":
        return text
    # No statement here holds a literal % or ?; psycopg reads %% as a literal %.
    return text.replace("%", "%%").replace("?", placeholder)


SQLITE = Dialect(
    name="sqlite", placeholder="?", arrays=False, real="REAL", reject_key="rowid", lock_claimed=""
)
POSTGRES = Dialect(
    name="postgresql",
    placeholder="%s",
    arrays=True,
    real="DOUBLE PRECISION",
    reject_key="id",
    lock_claimed=" FOR UPDATE SKIP LOCKED",
)


def migrations(dialect: Dialect) -> list[list[str]]:
    """The schema migrations both backends share, in ``dialect``'s types: the SQLite ledger's
    1 to 4; PostgreSQL inserts its row leases as 4, so this 4 is its 5."""
    real = dialect.real
    # A key of their own where the database has no rowid to order a line's rejects by.
    reject_id = "" if dialect.reject_key == "rowid" else "id BIGSERIAL PRIMARY KEY,\n"
    first = [
        f"""CREATE TABLE campaigns (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            created_at {real} NOT NULL,
            template_id TEXT NOT NULL,
            template_name TEXT NOT NULL,
            language TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            template_json TEXT NOT NULL,
            state TEXT NOT NULL,
            pause_reason TEXT,
            start_at {real},
            send_window TEXT,
            source TEXT,
            fingerprint TEXT,
            lease_owner TEXT,
            lease_until {real}
        )""",
        f"""CREATE TABLE campaign_rows (
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
            sent_at {real},
            settled_at {real},
            PRIMARY KEY (campaign_id, line)
        )""",
        "CREATE INDEX campaigns_fingerprint ON campaigns (fingerprint)",
        "CREATE UNIQUE INDEX campaign_rows_number ON campaign_rows (campaign_id, to_number)",
        "CREATE INDEX campaign_rows_state ON campaign_rows (campaign_id, state, line)",
        f"""CREATE TABLE campaign_rejects (
            {reject_id}campaign_id TEXT NOT NULL REFERENCES campaigns(id),
            line INTEGER NOT NULL,
            field TEXT NOT NULL,
            reason TEXT NOT NULL,
            code TEXT NOT NULL,
            to_number TEXT
        )""",
        "CREATE INDEX campaign_rejects_line ON campaign_rejects (campaign_id, line)",
        f"""CREATE TABLE optouts (
            to_number TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            added_at {real} NOT NULL
        )""",
    ]
    delivery = [
        # Delivery status read back from the broadcast log (sent/delivered/read/failed).
        "ALTER TABLE campaign_rows ADD COLUMN delivery_status TEXT",
        "ALTER TABLE campaign_rows ADD COLUMN delivery_error TEXT",
        "CREATE INDEX campaign_rows_broadcast ON campaign_rows (broadcast_id)",
    ]
    tracking = [
        # Delivery tracking by webhook (see ._tracking): who settled each row's status, the
        # WhatsApp message id it was linked to, and per campaign the webhook high-water mark
        # and the API requests tracking cost.
        f"""CREATE TABLE campaign_delivery (
            campaign_id TEXT NOT NULL,
            line INTEGER NOT NULL,
            source TEXT NOT NULL,
            external_id TEXT,
            event_at {real},
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
    ]
    pause_code = [
        # Who paused a campaign (Campaign.pause_code): a user's pause holds until `resume`,
        # a runner's own (quiet hours, credentials…) is lifted by running again. Pauses made
        # before this column existed are the user's when `pause` wrote them.
        "ALTER TABLE campaigns ADD COLUMN pause_code TEXT",
        "UPDATE campaigns SET pause_code = 'user' "
        "WHERE state = 'paused' AND pause_reason = 'paused by user'",
    ]
    return [first, delivery, tracking, pause_code]


class Cursor(Protocol):
    """What the statements read back from either driver's cursor."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Executor:
    """A connection (sqlite3's or psycopg's) that takes statements written with ``?``."""

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self._conn = conn
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement."""
        cur: Cursor = self._conn.execute(self.dialect.sql(sql), params)
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for every row of parameters."""
        with contextlib.closing(self._conn.cursor()) as cur:
            cur.executemany(self.dialect.sql(sql), rows)


def row_of(values: Sequence[Any]) -> Row:
    """A :class:`Row` from the columns :data:`ROW_COLUMNS` names, in that order."""
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


def campaign_of(values: Sequence[Any]) -> Campaign:
    """A :class:`Campaign` from the columns :data:`CAMPAIGN_COLUMNS` names, in that order."""
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
        pause_code=values[14],
    )


def apply_migrations(ex: Executor, steps: Sequence[Sequence[str]], where: object) -> None:
    """Run the migrations ``ex``'s database has not seen, recording each in
    ``schema_version`` (inside the caller's transaction); refuse a newer schema."""
    ex.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    found = ex.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
    if found > len(steps):
        raise LedgerError(
            f"{where}: schema version {found} is newer than this qontak ({len(steps)}); "
            "upgrade qontak"
        )
    for version in range(found + 1, len(steps) + 1):
        for statement in steps[version - 1]:
            ex.execute(statement)
        ex.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))


class SQLStore:
    """Every :class:`.Store` method whose SQL both backends share. A backend gives
    :meth:`_read` and :meth:`_write` (run a piece of work on its connection; ``_write`` in
    one transaction, committed when it returns) and the methods that differ."""

    dialect: Dialect

    # -- what a backend provides ----------------------------------------------------------
    def _read(self, work: Callable[[Executor], T]) -> T:
        raise NotImplementedError

    def _write(self, work: Callable[[Executor], T]) -> T:
        raise NotImplementedError

    def _autocommit(self, work: Callable[[Executor], T]) -> T:
        """Work that is one statement, committed when it returns (PostgreSQL runs it in
        autocommit, without a BEGIN/COMMIT round trip each)."""
        return self._write(work)

    def _write_one(self, sql: str, params: Sequence[Any]) -> int:
        """One statement that changes something, committed; returns its row count."""
        return self._autocommit(lambda ex: int(ex.execute(sql, params).rowcount))

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._read(lambda ex: ex.execute(sql, params).fetchall())

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._read(lambda ex: ex.execute(sql, params).fetchone())

    def _claim_sets(self) -> tuple[str, list[Any]]:
        """Extra ``SET`` of a claim and its parameters (PostgreSQL: the row lease)."""
        return "", []

    def _settle_sets(self, target: RowState) -> str:
        """Extra ``SET`` of every other move (PostgreSQL: the lease is let go)."""
        return ""

    def _holder_only(self) -> tuple[str, list[Any]]:
        """An extra condition of every move out of ``sending``, and its parameters: whose
        ``sending`` rows this store may move (PostgreSQL: only those under its own lease).
        SQLite: any (one runner per campaign holds them all)."""
        return "", []

    def _recover_scope(self) -> tuple[str, str]:
        """Which ``sending`` rows :meth:`recover` may take (an extra condition) and the
        reason it records. SQLite: all (one runner per campaign, so a row still ``sending``
        when a run starts was left by a crash)."""
        return "", "interrupted while sending"

    def _let_go(self, campaign_id: str, line: int, *, keep: bool = False) -> None:
        """After a transition of a row, moved or not (PostgreSQL: stop renewing its lease,
        or with ``keep`` start: the row was taken ``sending``)."""

    @property
    def schema_version(self) -> int:
        """The schema version of the ledger."""
        return int(self._fetchone("SELECT MAX(version) FROM schema_version")[0])

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
            campaign.pause_code,
        )
        marks = ", ".join("?" * len(values))
        # ON CONFLICT: a statement retried after its commit's answer was lost (PostgreSQL
        # reconnects and retries) finds its own row, which is success, not a duplicate.
        inserted = self._write_one(
            f"INSERT INTO campaigns ({CAMPAIGN_COLUMNS}) VALUES ({marks}) "
            "ON CONFLICT (id) DO NOTHING",
            values,
        )
        if not inserted:
            found = self.get_campaign(campaign.id)
            if found is None or (found.created_at, found.fingerprint) != (
                campaign.created_at,
                campaign.fingerprint,
            ):
                raise LedgerError(f"campaign id {campaign.id} is already taken")

    def get_campaign(self, campaign_id: str) -> Campaign | None:
        """See :meth:`.Store.get_campaign`."""
        found = self._fetchone(
            f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?", (campaign_id,)
        )
        return campaign_of(found) if found else None

    def find_campaign(self, fingerprint: str) -> Campaign | None:
        """See :meth:`.Store.find_campaign`."""
        found = self._fetchone(
            f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE fingerprint = ? "
            "ORDER BY created_at DESC LIMIT 1",
            (fingerprint,),
        )
        return campaign_of(found) if found else None

    def list_campaigns(self) -> list[Campaign]:
        """See :meth:`.Store.list_campaigns`."""
        found = self._fetchall(
            f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY created_at DESC, id"
        )
        return [campaign_of(v) for v in found]

    def update_campaign(
        self,
        campaign_id: str,
        *,
        only_from: Sequence[CampaignState] | None = None,
        keep_user_pause: bool = False,
        **fields: object,
    ) -> bool:
        """See :meth:`.Store.update_campaign`."""
        sets, values = [], []
        for name, value in fields.items():
            if name not in _CAMPAIGN_FIELDS:
                raise LedgerError(f"campaign field {name!r} cannot be changed")
            sets.append(f"{_CAMPAIGN_FIELDS[name]} = ?")
            values.append(value.value if isinstance(value, CampaignState) else value)
        if not sets:
            return self.get_campaign(campaign_id) is not None
        where, params = "id = ?", [campaign_id]
        if only_from is not None:
            cond, extra = self.dialect.one_of("state", [s.value for s in only_from])
            where += f" AND {cond}"
            params += extra
        if keep_user_pause:
            # COALESCE: with a NULL code the NOT (…) would be NULL and match nothing.
            where += " AND NOT (state = ? AND COALESCE(pause_code, '') = ?)"
            params += [CampaignState.PAUSED.value, USER_PAUSE]
        changed = self._write_one(
            f"UPDATE campaigns SET {', '.join(sets)} WHERE {where}", (*values, *params)
        )
        return changed > 0

    def acquire(self, campaign_id: str, owner: str, *, now: float, ttl: float) -> bool:
        """See :meth:`.Store.acquire`."""
        taken = self._write_one(
            "UPDATE campaigns SET lease_owner = ?, lease_until = ? WHERE id = ? AND "
            "(lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
            (owner, now + ttl, campaign_id, owner, now),
        )
        return taken == 1

    def lease_owner(self, campaign_id: str) -> str | None:
        """See :meth:`.Store.lease_owner`."""
        found = self._fetchone("SELECT lease_owner FROM campaigns WHERE id = ?", (campaign_id,))
        return str(found[0]) if found and found[0] else None

    def release(self, campaign_id: str, owner: str) -> None:
        """See :meth:`.Store.release`."""
        self._write_one(
            "UPDATE campaigns SET lease_owner = NULL, lease_until = NULL "
            "WHERE id = ? AND lease_owner = ?",
            (campaign_id, owner),
        )

    # -- rows -----------------------------------------------------------------------------
    def add_rows(self, campaign_id: str, rows: Sequence[NewRow]) -> list[tuple[NewRow, int]]:
        """See :meth:`.Store.add_rows` (each backend has its own bulk insert)."""
        raise NotImplementedError

    def add_rejects(self, campaign_id: str, rejects: Sequence[Reject]) -> None:
        """See :meth:`.Store.add_rejects`."""
        if not rejects:
            return
        self._write(
            lambda ex: ex.executemany(
                "INSERT INTO campaign_rejects (campaign_id, line, field, reason, code, "
                "to_number) VALUES (?, ?, ?, ?, ?, ?)",
                [(campaign_id, r.line, r.field, r.reason, r.code, r.to_number) for r in rejects],
            )
        )

    def iter_rejects(self, campaign_id: str) -> Iterator[Reject]:
        """See :meth:`.Store.iter_rejects`."""
        key = self.dialect.reject_key
        last: tuple[int, int] = (-1, 0)
        while True:
            # Keyset paging: no cursor stays open while the caller writes to the ledger.
            batch = self._fetchall(
                f"SELECT line, {key}, field, reason, code, to_number FROM campaign_rejects "
                f"WHERE campaign_id = ? AND (line, {key}) > (?, ?) ORDER BY line, {key} LIMIT ?",
                (campaign_id, *last, BATCH),
            )
            if not batch:
                return
            last = (batch[-1][0], batch[-1][1])
            yield from (
                Reject(line=v[0], field=v[2], reason=v[3], code=v[4], to_number=v[5]) for v in batch
            )

    def claim(
        self, campaign_id: str, limit: int, *, zones: Sequence[str] | None, now: float
    ) -> list[Row]:
        """See :meth:`.Store.claim`."""
        if zones is not None and not zones:
            return []
        where = "campaign_id = ? AND state = ?"
        params: list[Any] = [campaign_id, RowState.PENDING.value]
        if zones is not None:
            cond, extra = self.dialect.one_of("zones", zones)
            where += f" AND {cond}"
            params += extra
        lease_sets, lease_params = self._claim_sets()

        def work(ex: Executor) -> list[Row]:
            candidates = ex.execute(
                f"SELECT line, to_number FROM campaign_rows WHERE {where} ORDER BY line LIMIT ?"
                + self.dialect.lock_claimed,
                (*params, limit),
            ).fetchall()
            if not candidates:
                return []
            # The opt-out list is read again here, just before the send, so a number added
            # mid-campaign is never contacted.
            blocked = self._opted_out(ex, [n for _, n in candidates])
            take = [line for line, number in candidates if number not in blocked]
            skip = [line for line, number in candidates if number in blocked]
            if skip:
                self._move(ex, campaign_id, skip, RowState.SKIPPED, now=now, reason="opted out")
            if not take:
                return []
            lines, line_params = self.dialect.one_of("line", take)
            states, state_params = self.dialect.one_of("state", sources_of(RowState.SENDING))
            ex.execute(
                f"UPDATE campaign_rows SET state = ?, sent_at = ?, attempts = attempts + 1"
                f"{lease_sets} WHERE campaign_id = ? AND {lines} AND {states}",
                (
                    RowState.SENDING.value,
                    now,
                    *lease_params,
                    campaign_id,
                    *line_params,
                    *state_params,
                ),
            )
            found = ex.execute(
                f"SELECT {ROW_COLUMNS} FROM campaign_rows WHERE campaign_id = ? "
                f"AND {lines} AND state = ? ORDER BY line",
                (campaign_id, *line_params, RowState.SENDING.value),
            ).fetchall()
            return [row_of(v) for v in found]

        return self._write(work)

    def _move(
        self,
        ex: Executor,
        campaign_id: str,
        lines: Sequence[int],
        target: RowState,
        *,
        now: float,
        broadcast_id: str | None = None,
        code: str | None = None,
        reason: str | None = None,
    ) -> int:
        # The only UPDATE of a row's state besides claim and recover; the allowed sources
        # come from the state machine, so a forbidden move changes nothing. A `sending` row
        # moves only by the store holding it: a late or retried answer of a worker whose row
        # was since recovered, reconciled and claimed again must not undo the new claim.
        sets = "state = ?, settled_at = ?, error_code = ?, error_reason = ?"
        values: list[Any] = [target.value, now, code, reason]
        if target is RowState.ACCEPTED:
            sets += ", broadcast_id = ?"
            values.append(broadcast_id)
        if target is RowState.PENDING:
            sets += ", sent_at = NULL"
        if target is RowState.SENDING:
            # Taken like a claim takes it (PostgreSQL: under this store's lease), or no
            # worker could move it on.
            lease_sets, lease_params = self._claim_sets()
            sets += lease_sets
            values += lease_params
        else:
            sets += self._settle_sets(target)
        in_lines, line_params = self.dialect.one_of("line", lines)
        in_states, state_params = self.dialect.one_of("state", sources_of(target))
        holder, holder_params = self._holder_only()
        cur = ex.execute(
            f"UPDATE campaign_rows SET {sets} WHERE campaign_id = ? AND {in_lines} AND {in_states}"
            + holder,
            (*values, campaign_id, *line_params, *state_params, *holder_params),
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
        moved = 0
        try:
            moved = self._autocommit(
                lambda ex: self._move(
                    ex,
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
            self._let_go(campaign_id, line, keep=target is RowState.SENDING and moved == 1)
        return moved == 1

    def recover(self, campaign_id: str) -> int:
        """See :meth:`.Store.recover`."""
        scope, reason = self._recover_scope()
        # sending → unknown, never → pending: the request may have gone out.
        return self._write_one(
            f"UPDATE campaign_rows SET state = ?, error_reason = ?"
            f"{self._settle_sets(RowState.UNKNOWN)} WHERE campaign_id = ? AND state = ?{scope}",
            (RowState.UNKNOWN.value, reason, campaign_id, RowState.SENDING.value),
        )

    def set_delivery(self, campaign_id: str, updates: Iterable[tuple[str, str, str | None]]) -> int:
        """See :meth:`.Store.set_delivery`."""
        items = list(updates)
        if not items:
            return 0

        def work(ex: Executor) -> int:
            changed = 0
            for broadcast_id, status, error in items:
                cur = ex.execute(
                    "UPDATE campaign_rows SET delivery_status = ?, delivery_error = ? "
                    "WHERE campaign_id = ? AND broadcast_id = ? AND state = ?",
                    (status, error, campaign_id, broadcast_id, RowState.ACCEPTED.value),
                )
                changed += cur.rowcount
            return changed

        return self._write(work)

    def counts(self, campaign_id: str) -> dict[str, int]:
        """See :meth:`.Store.counts`."""
        out = {s.value: 0 for s in RowState}
        for state, count in self._fetchall(
            "SELECT state, COUNT(*) FROM campaign_rows WHERE campaign_id = ? GROUP BY state",
            (campaign_id,),
        ):
            out[state] = int(count)
        return out

    def delivery_counts(self, campaign_id: str) -> dict[str, int]:
        """See :meth:`.Store.delivery_counts`."""
        found = self._fetchall(
            "SELECT delivery_status, COUNT(*) FROM campaign_rows WHERE campaign_id = ? "
            "AND state = ? GROUP BY delivery_status",
            (campaign_id, RowState.ACCEPTED.value),
        )
        return {(status or "none"): int(count) for status, count in found}

    def failures(self, campaign_id: str) -> list[tuple[str, str, str, int]]:
        """See :meth:`.Store.failures`."""

        def work(ex: Executor) -> list[tuple[str, str, str, int]]:
            refused = ex.execute(
                "SELECT COALESCE(error_code, ''), COALESCE(error_reason, ''), COUNT(*) "
                "FROM campaign_rows WHERE campaign_id = ? AND state = ? "
                "GROUP BY error_code, error_reason",
                (campaign_id, RowState.FAILED.value),
            ).fetchall()
            delivery = ex.execute(
                "SELECT COALESCE(delivery_error, ''), COUNT(*) FROM campaign_rows "
                "WHERE campaign_id = ? AND state = ? AND delivery_status = 'failed' "
                "GROUP BY delivery_error",
                (campaign_id, RowState.ACCEPTED.value),
            ).fetchall()
            out = [("refused", c, r, int(n)) for c, r, n in refused]
            for text, n in delivery:
                code, _, reason = str(text).partition(": ")
                out.append(("delivery", code, reason, int(n)))
            return out

        return sorted(self._read(work), key=lambda f: (-f[3], f[0], f[1], f[2]))

    def pending_zones(self, campaign_id: str) -> list[str]:
        """See :meth:`.Store.pending_zones`."""
        found = self._fetchall(
            "SELECT DISTINCT zones FROM campaign_rows WHERE campaign_id = ? AND state = ?",
            (campaign_id, RowState.PENDING.value),
        )
        return [z for (z,) in found]

    def iter_rows(
        self, campaign_id: str, states: Sequence[RowState] | None = None
    ) -> Iterator[Row]:
        """See :meth:`.Store.iter_rows`."""
        where = "campaign_id = ? AND line > ?"
        extra: list[Any] = []
        if states is not None:
            cond, extra = self.dialect.one_of("state", [s.value for s in states])
            where += f" AND {cond}"
        last = -1
        while True:
            # Keyset paging: no cursor stays open while the caller writes to the ledger.
            batch = self._fetchall(
                f"SELECT {ROW_COLUMNS} FROM campaign_rows WHERE {where} ORDER BY line LIMIT ?",
                (campaign_id, last, *extra, BATCH),
            )
            if not batch:
                return
            for values in batch:
                yield row_of(values)
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
        return {b for (b,) in self._fetchall(sql, params)}

    # -- opt-outs -------------------------------------------------------------------------
    def remove_optouts(self, numbers: Iterable[str]) -> int:
        """See :meth:`.Store.remove_optouts`."""
        items = list(dict.fromkeys(numbers))

        def work(ex: Executor) -> int:
            removed = 0
            for start in range(0, len(items), BATCH):
                cond, params = self.dialect.one_of("to_number", items[start : start + BATCH])
                removed += ex.execute(f"DELETE FROM optouts WHERE {cond}", params).rowcount
            return removed

        return self._write(work) if items else 0

    def iter_optouts(self) -> Iterator[tuple[str, str, float]]:
        """See :meth:`.Store.iter_optouts`."""
        last = ""
        while True:
            batch = self._fetchall(
                "SELECT to_number, reason, added_at FROM optouts WHERE to_number > ? "
                "ORDER BY to_number LIMIT ?",
                (last, BATCH),
            )
            if not batch:
                return
            yield from ((n, r, a) for n, r, a in batch)
            last = batch[-1][0]

    def opted_out(self, numbers: Sequence[str]) -> set[str]:
        """See :meth:`.Store.opted_out`."""
        return self._read(lambda ex: self._opted_out(ex, numbers))

    def _opted_out(self, ex: Executor, numbers: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(numbers), BATCH):
            cond, params = self.dialect.one_of("to_number", numbers[start : start + BATCH])
            found.update(
                n
                for (n,) in ex.execute(
                    f"SELECT to_number FROM optouts WHERE {cond}", params
                ).fetchall()
            )
        return found

    # -- delivery tracking (._tracking.TrackingStore) -------------------------------------
    def tracking_mark(self, campaign_id: str) -> tuple[str | None, int, int]:
        """``(webhook source, high-water mark, API requests spent on tracking)``."""
        found = self._fetchone(
            "SELECT webhook_source, webhook_seq, requests FROM campaign_tracking "
            "WHERE campaign_id = ?",
            (campaign_id,),
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
            "ON d.campaign_id = r.campaign_id AND d.line = r.line WHERE r.campaign_id = ? "
        )

        def work(ex: Executor) -> Any:
            found = None
            if external_id is not None:
                found = ex.execute(
                    select + "AND d.external_id = ?", (campaign_id, external_id)
                ).fetchone()
            if found is None and to_number is not None:
                found = ex.execute(
                    select + "AND r.to_number = ?", (campaign_id, to_number)
                ).fetchone()
            return found

        found = self._read(work)
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

        def work(ex: Executor) -> int:
            changed = 0
            for line, status, error, external_id, event_at in items:
                cur = ex.execute(
                    "UPDATE campaign_rows SET delivery_status = ?, delivery_error = ? "
                    "WHERE campaign_id = ? AND line = ? AND state = ? AND "
                    f"{rank.format('delivery_status')} < {rank.format('CAST(? AS TEXT)')}",
                    (status, error, campaign_id, line, RowState.ACCEPTED.value, status),
                )
                moved = cur.rowcount > 0
                changed += int(moved)
                if moved or external_id is not None:
                    ex.execute(
                        "INSERT INTO campaign_delivery (campaign_id, line, source, external_id,"
                        " event_at, heard) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (campaign_id,"
                        " line) DO UPDATE SET source = CASE WHEN CAST(? AS INTEGER) = 1 THEN "
                        "excluded.source ELSE campaign_delivery.source END, external_id = "
                        "COALESCE(campaign_delivery.external_id, excluded.external_id), "
                        "event_at = COALESCE(excluded.event_at, campaign_delivery.event_at), "
                        "heard = CASE WHEN excluded.heard = 1 THEN 1 ELSE "
                        "campaign_delivery.heard END",
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
                ex.execute(
                    "INSERT INTO campaign_tracking (campaign_id) VALUES (?) "
                    "ON CONFLICT (campaign_id) DO NOTHING",
                    (campaign_id,),
                )
                ex.execute(
                    "UPDATE campaign_tracking SET requests = requests + ? WHERE campaign_id = ?",
                    (requests, campaign_id),
                )
                if mark is not None:
                    ex.execute(
                        "UPDATE campaign_tracking SET webhook_source = ?, webhook_seq = ? "
                        "WHERE campaign_id = ?",
                        (mark[0], mark[1], campaign_id),
                    )
            return changed

        return self._write(work)

    def delivery_sources(self, campaign_id: str) -> dict[str, int]:
        """Accepted rows with a final status (read/failed), per source that settled them;
        rows settled before tracking kept a source count as ``poll``."""
        out = {"webhook": 0, "poll": 0}
        for source, count in self._fetchall(
            "SELECT COALESCE(d.source, 'poll'), COUNT(*) FROM campaign_rows r "
            "LEFT JOIN campaign_delivery d ON d.campaign_id = r.campaign_id AND d.line = r.line "
            "WHERE r.campaign_id = ? AND r.state = ? AND r.delivery_status IN ('read', 'failed') "
            "GROUP BY COALESCE(d.source, 'poll')",
            (campaign_id, RowState.ACCEPTED.value),
        ):
            out[source] = int(count)
        return out

    def unheard_rows(self, campaign_id: str, *, sent_before: float) -> list[tuple[int, str]]:
        """``(line, broadcast_id)`` of accepted rows not final, sent before ``sent_before``,
        of which no webhook event was heard."""
        return [
            (int(line), str(broadcast_id))
            for line, broadcast_id in self._fetchall(
                "SELECT r.line, r.broadcast_id FROM campaign_rows r WHERE r.campaign_id = ? "
                "AND r.state = ? AND r.broadcast_id IS NOT NULL AND r.sent_at < ? AND "
                "(r.delivery_status IS NULL OR r.delivery_status NOT IN ('read', 'failed')) "
                "AND NOT EXISTS (SELECT 1 FROM campaign_delivery d WHERE d.campaign_id = "
                "r.campaign_id AND d.line = r.line AND d.heard = 1) ORDER BY r.line",
                (campaign_id, RowState.ACCEPTED.value, sent_before),
            )
        ]
