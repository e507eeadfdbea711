"""A rate limiter whose budget is shared by every process that uses the same store.

:class:`SharedRateLimiter` keeps the exact rules of the in-memory
:class:`~qontak._ratelimit.RateLimiter` (a sliding log per rule, every window
:data:`~qontak._ratelimit.SAFETY_MARGIN` longer than the server's, ``send`` requests counted in
``send`` and ``all``, 429 and ``X-RateLimit-*`` pauses), but the log lives in a database:

- ``sqlite:///path/to/file.db`` (SQLAlchemy's convention: three slashes and a relative path, four
  for an absolute one) for several processes on one host;
- ``postgresql://user@host/db`` (or ``postgres://``) for many hosts (the ``qontak[postgres]``
  extra; psycopg is imported only when such a store is used).

**One claim, one transaction.** A slot is taken by one transaction that locks the budget's row
(PostgreSQL: ``SELECT … FOR UPDATE`` on the key's row in ``qontak_rate_budget``; SQLite:
``BEGIN IMMEDIATE``, the file's write lock), counts the windows, and inserts the slot only if
every rule allows it. Old rows (older than the longest window any user of the key declared, or
:data:`~qontak._ratelimit.IN_FLIGHT_SECONDS` for requests in flight) are pruned in a claim's
transaction, about once a second per key and process (every count looks only inside its
window). A caller that must wait sleeps until the earliest moment a slot can be free
(computed from the grants in the window), then claims again: no busy loop.

**Nothing to release.** A slot is one timestamp row and a pause is one "until" row; the only
lock is the transaction's, which the database drops when the transaction ends or its connection
dies. A process SIGKILLed in the middle of a claim leaves either a whole slot (counted, as it
should be: the request may have gone) or nothing; one killed with requests in flight leaves their
rows, counted for :data:`~qontak._ratelimit.IN_FLIGHT_SECONDS` (the answers may have reached the
server). A host that vanishes mid-claim without closing
its connection is cut off by PostgreSQL after ``idle_in_transaction_session_timeout`` (set to
10 s on our sessions); a lost connection is reopened once on the next claim.

**In flight, then answered.** The server counts a request when it arrives, somewhere between
the moment its slot was taken and the moment its answer comes back; a slow request (a stalled
event loop, a cold connection, a busy server's queue) can arrive long after its slot was taken.
As in the in-memory limiter, a slot taken by :meth:`~SharedRateLimiter.acquire` is a row of
``qontak_rate_flight`` (named by a random ``id`` that the limiter remembers under the moment
``acquire`` returned), which every rule counts as "now" for every user of the budget;
:meth:`~SharedRateLimiter.complete` moves it to ``qontak_rate_grant`` at the store's clock as the
move is written: after the answer, so not earlier than the server counted it, on the clock
every user of the budget shares. Counted from their grants instead, N requests taken at once
that reach the server late, followed by N that reach it at once a window later, put 2N into
one server window; a test has the server count five of them late and checks its windows.

**Never blocking an event loop.** :meth:`~SharedRateLimiter.acquire_async` claims in a worker
thread. The pipeline calls :meth:`~SharedRateLimiter.complete` and
:meth:`~SharedRateLimiter.pause` synchronously, so when they run inside an event loop their
write is handed to one worker thread per store, and the process's next claim writes whatever is
still waiting first (in that claim's turn on the connection), so this process never claims
without its own completions and pauses. The SQL of every statement is built once per store.

**Clocks.** Monotonic clocks of different hosts are not comparable, and a monotonic clock is not
even defined across reboots, while the store outlives both. So time is the store's:

- PostgreSQL: the database server's ``clock_timestamp()``, read inside the claiming transaction
  after the lock is held. One clock for every host, whatever their own clocks say.
- SQLite: the host's wall clock (``time.time()``), read after ``BEGIN IMMEDIATE``; every user
  of the file is on that host.

A grant is never logged earlier than the key's last grant (``last_at``), so a clock stepped back
(NTP) only makes the limiter stricter; a clock stepped forward can shorten the windows open at
that moment, once. The clock and sleep that the pipeline passes to :meth:`acquire` are used only
to sleep and to convert :meth:`pause`'s deadline into a wait; :meth:`pause_for` takes the wait
itself.

**Why not pyrate-limiter** (4.5.1, evaluated): its PostgreSQL bucket reads the clock in a
separate query (and silently falls back to the local clock when that fails), takes
``LOCK TABLE … NOWAIT`` and *rejects* on contention, so six busy processes mostly get refusals
rather than turns; it is sync only and needs ``psycopg_pool``. Its SQLite bucket counts then
inserts under a thread lock, and is atomic across processes only with the ``filelock`` extra;
its blocking wait advances the item's timestamp by the planned sleep instead of taking the slot
when the request really goes. It has no notion of a pause written by a 429 for everyone, and
our two scopes (``send`` counted in ``all``) would be two buckets claimed one after the other,
not atomically. The whole thing here is a few SQL statements on the two stores we already use.

Unlike the in-memory limiter, waiters are not served first come, first served (neither across
processes nor across threads of one process): each sleeps until a slot may free, and the first
claim then wins. The limit itself is exact either way.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import anyio
import anyio.to_thread
import sniffio

from ._config import Secret
from ._logging import log_kv, redact_url, register_secret
from ._ratelimit import SCOPE_ALL, RateLimiter, Rule
from ._sqlite import enable_wal
from .errors import APIConnectionError, ConfigurationError, QontakError

__all__ = ["SharedRateLimiter", "shared_from_setting"]

# A wait shorter than this is rounded up, so a poller always really sleeps.
_MIN_WAIT = 0.001

# A store's worker thread (writing completions and pauses handed over from an event loop)
# ends after this long without work, and starts again when there is some.
_FLUSHER_IDLE_SECONDS = 5.0

_PG_SCHEMES = ("postgresql", "postgres")

# Rows older than every window are deleted at most this often per key by one process: every
# count already looks only inside its window, so the delete is housekeeping (the tables stay
# a few seconds' worth of rows larger), not two more statements inside every claim's lock.
_PRUNE_EVERY_SECONDS = 1.0

# A claim holds its lock for milliseconds. A PostgreSQL session that sits inside a claim longer
# than this (its host froze or vanished without closing the connection, which TCP may take
# hours to notice) is ended by the server, and its lock with it.
_STUCK_CLAIM_SECONDS = 10.0

# Connections a forked child found open; see _Store._connection.
_INHERITED: list[Any] = []

# Taken while creating the tables, so two processes starting together do not race on
# CREATE TABLE IF NOT EXISTS (which PostgreSQL does not make atomic). Any fixed number works.
_SCHEMA_LOCK = 0x716E74_52

_SCHEMA = (
    # One row per budget: its lock (FOR UPDATE), the longest window any user declared (grants
    # older than that are pruned) and the last grant (grants are never logged earlier).
    """CREATE TABLE IF NOT EXISTS qontak_rate_budget (
        key TEXT PRIMARY KEY,
        horizon DOUBLE PRECISION NOT NULL,
        last_at DOUBLE PRECISION NOT NULL DEFAULT 0
    )""",
    # One row per request answered (or let through by reserve()): epoch seconds on the
    # store's clock, the moment its answer came back.
    """CREATE TABLE IF NOT EXISTS qontak_rate_grant (
        key TEXT NOT NULL,
        scope TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL
    )""",
    # One row per request in flight: granted at ``at``, counted as "now" by every rule until
    # complete() moves it to qontak_rate_grant (or it is older than the longest window).
    """CREATE TABLE IF NOT EXISTS qontak_rate_flight (
        key TEXT NOT NULL,
        id BIGINT NOT NULL,
        scope TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (key, id)
    )""",
    "CREATE INDEX IF NOT EXISTS qontak_rate_grant_key_at ON qontak_rate_grant (key, at)",
    """CREATE INDEX IF NOT EXISTS qontak_rate_grant_key_scope_at
        ON qontak_rate_grant (key, scope, at)""",
    # Nothing is granted in (key, scope) before ``until`` (a 429 or X-RateLimit-Remaining: 0).
    """CREATE TABLE IF NOT EXISTS qontak_rate_pause (
        key TEXT NOT NULL,
        scope TEXT NOT NULL,
        until DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (key, scope)
    )""",
)


def _passwords(url: str) -> list[str]:
    """Every password spelled in ``url`` (raw and decoded), to scrub from error texts."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
    if parts.password:
        found.append(parts.password)
    return [p for raw in found for p in {raw, unquote(raw)} if p]


@dataclass(frozen=True)
class _Check:
    """One rule as the store sees it: at most ``requests`` grants of ``scope`` (``None``:
    of any scope) in any window of ``span`` seconds (the margin included)."""

    scope: str | None
    requests: int
    span: float


def _earliest(
    now: float, paused_until: float | None, nth: Sequence[tuple[float | None, float]]
) -> float:
    """The first moment, not before ``now``, at which one more grant keeps every rule.

    ``nth`` holds, per full rule, the request whose leaving the window frees a slot (counting
    those in flight as answered now; ``None`` when none must leave) and the rule's span:
    exactly the in-memory limiter's ``grants[flying - requests] + span``.
    """
    at = now if paused_until is None else max(now, paused_until)
    for grant, span in nth:
        if grant is not None:
            at = max(at, grant + span)
    return at


def _store_error(url: Secret, exc: BaseException) -> APIConnectionError:
    """A store failure as our error: names the store (password hidden), never the secret."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for secret in _passwords(url.get()):
        text = text.replace(secret, "***")
    return APIConnectionError(
        f"rate-limit store {redact_url(url.get())} failed ({type(exc).__name__}: {text}); "
        "nothing was sent"
    )


@dataclass(frozen=True)
class _Slot:
    """A request in flight as the store holds it: its row's id and grant (store clock)."""

    key: str
    scope: str
    id: int
    at: float


_T = TypeVar("_T")
# Work done on the store's connection.
_Op = Callable[[Any], None]


def _flush_while_busy(ref: weakref.ref[_Store], wake: threading.Event) -> None:
    """A store's worker thread: writes what is handed over, and ends after a few idle
    seconds (holding the store only while it works, so an unused store is collected)."""
    while True:
        woken = wake.wait(_FLUSHER_IDLE_SECONDS)
        # Cleared before looking at the work: a hand-over after this point sets it again (and
        # is seen by the next wait); one before it is in ``_pending`` below. Looking at
        # ``woken`` alone lost work handed over between the wait's timeout and the clear.
        wake.clear()
        store = ref()
        if store is None:
            return
        if store._pending:
            store.flush()
        elif not woken and store._idle():
            return
        del store


# Every store of this process (weakly: an unused store goes), for the two hooks below.
_STORES: weakref.WeakSet[_Store] = weakref.WeakSet()


def _flush_at_exit() -> None:
    # The worker thread is a daemon, which the interpreter stops without waiting: what it has
    # not written yet is written here. One in the middle of a write finishes it first (it
    # holds the store's lock; not waited for forever: exit must not hang on a dead network).
    for store in list(_STORES):
        if store._pending_pid != os.getpid():
            continue
        if not store._lock.acquire(timeout=_STUCK_CLAIM_SECONDS):
            continue  # stuck on a store that does not answer: its slots expire on their own
        store._lock.release()
        if store._pending:
            store.flush()


def _after_fork_in_child() -> None:
    # A fork copies a lock held by another thread (a worker thread, or another thread's claim,
    # in the middle of a write) as held forever: the child's first claim would hang. The
    # child has no other threads; the connection itself is replaced on first use.
    for store in list(_STORES):
        store._lock = threading.Lock()
        store._pending_lock = threading.Lock()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _in_event_loop() -> bool:
    """Whether this thread runs an event loop (asyncio or trio): blocking I/O here would stall
    every task of the loop."""
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return False
    return True


class _Store:
    """A database holding budgets (one per key). Subclasses say how to connect, lock and
    read the clock; the claim itself is written once, here, and its SQL built once per store
    (per shape of rules) rather than per claim."""

    #: SQL placeholder for a named parameter, and the name of the two-argument maximum.
    _param = ":{}"
    _greatest = "max"

    def __init__(self, url: Secret) -> None:
        self.url = url
        self._lock = threading.Lock()  # one connection per process, used by one thread at a time
        self._conn: Any = None
        self._pid = 0
        self._known: dict[str, float] = {}  # keys whose budget row exists, with our horizon
        self._pruned: dict[str, float] = {}  # keys, with when (store clock) we last pruned
        # Completions and pauses handed over by code running in an event loop: written by a
        # worker thread (soon), or first thing by this process's next claim (whichever comes
        # first), so this process never claims without them.
        self._pending: list[_Op] = []
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._pending_pid = 0
        self._flusher: threading.Thread | None = None
        self._claim_sql: dict[tuple[bool, ...], str] = {}
        _STORES.add(self)
        p, now = self._p, self._now_sql()
        self._sql_register = (
            f"INSERT INTO qontak_rate_budget (key, horizon, last_at) VALUES ({p('k')}, {p('h')}, 0)"
            " ON CONFLICT (key) DO UPDATE SET horizon = "
            f"CASE WHEN qontak_rate_budget.horizon < {p('h')} THEN {p('h')}"
            " ELSE qontak_rate_budget.horizon END"
        )
        self._sql_grant = (
            f"INSERT INTO qontak_rate_grant (key, scope, at) VALUES ({p('k')}, {p('sc')}, {p('t')})"
        )
        self._sql_fly = (
            "INSERT INTO qontak_rate_flight (key, id, scope, at)"
            f" VALUES ({p('k')}, {p('id')}, {p('sc')}, {p('t')})"
        )
        self._sql_last = f"UPDATE qontak_rate_budget SET last_at = {p('t')} WHERE key = {p('k')}"
        self._sql_prune = f"DELETE FROM qontak_rate_grant WHERE key = {p('k')} AND at <= {p('cut')}"
        self._sql_prune_flight = (
            f"DELETE FROM qontak_rate_flight WHERE key = {p('k')} AND at <= {p('cut')}"
        )
        # The answer is back: the request counts from the store's "now", later than the server
        # can have counted it, on the clock every user of the store shares.
        self._sql_landed = (
            "INSERT INTO qontak_rate_grant (key, scope, at)"
            f" VALUES ({p('k')}, {p('sc')}, {self._greatest} ({now}, {p('at')}))"
        )
        self._sql_unfly = f"DELETE FROM qontak_rate_flight WHERE key = {p('k')} AND id = {p('id')}"
        self._sql_nth = {
            any_scope: (
                f"SELECT at FROM qontak_rate_grant WHERE key = {p('k')}"
                + ("" if any_scope else f" AND scope = {p('sc')}")
                + f" AND at > {p('t')} - {p('span')} ORDER BY at DESC LIMIT 1 OFFSET {p('off')}"
            )
            for any_scope in (True, False)
        }
        self._sql_pause = (
            "INSERT INTO qontak_rate_pause (key, scope, until)"
            f" VALUES ({p('k')}, {p('sc')}, {now} + {p('s')})"
            " ON CONFLICT (key, scope) DO UPDATE SET until = CASE"
            " WHEN qontak_rate_pause.until < excluded.until THEN excluded.until"
            " ELSE qontak_rate_pause.until END"
        )

    # -- per backend --------------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _begin_locked(self, conn: Any, key: str) -> tuple[float, float] | None:
        """Open the claiming transaction, lock ``key``'s budget; its (horizon, last_at), or
        ``None`` (transaction still open) when the row does not exist yet."""
        raise NotImplementedError

    def _now_sql(self) -> str:
        """SQL for "now" on the store's clock, in epoch seconds (may be a parameter that
        :meth:`_with_now` fills)."""
        raise NotImplementedError

    def _with_now(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` plus whatever :meth:`_now_sql` needs, read at this moment."""
        return params

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN")

    def _commit(self, conn: Any) -> None:
        conn.execute("COMMIT")

    def _rollback(self, conn: Any) -> None:
        conn.execute("ROLLBACK")

    def _is_store_error(self, exc: BaseException) -> bool:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def _p(self, name: str) -> str:
        return self._param.format(name)

    def _connection(self) -> Any:
        # A connection must not cross a fork: the child opens its own.
        if self._conn is None or self._pid != os.getpid():
            if self._conn is not None:
                # Inherited from the parent: never closed here (that would act on the parent's
                # socket or file locks), just kept from the garbage collector.
                _INHERITED.append(self._conn)
            self._conn = None
            self._known.clear()
            self._conn = self._connect()
            self._pid = os.getpid()
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._known.clear()
        if conn is not None:
            # The connection is already broken; nothing else to release.
            with contextlib.suppress(Exception):
                conn.close()

    def _run(self, work: Callable[[Any], _T]) -> _T:
        """Run ``work`` on this process's connection; a broken connection is reopened once."""
        with self._lock:
            for attempt in (0, 1):
                try:
                    return work(self._connection())
                except Exception as exc:
                    if not self._is_store_error(exc):
                        raise
                    self._drop()
                    if attempt:
                        raise _store_error(self.url, exc) from None
            raise AssertionError("unreachable")

    # -- work handed over from an event loop --------------------------------------------------
    def _take_pending(self) -> list[_Op]:
        with self._pending_lock:
            ops, self._pending = self._pending, []
            if self._pending_pid != os.getpid():
                # Handed over in the parent before a fork: the parent writes them.
                return []
        return ops

    def _apply(self, conn: Any, ops: list[_Op]) -> None:
        """Write handed-over work, each operation its own transaction."""
        for op in ops:
            op(conn)

    def _defer(self, op: _Op) -> None:
        """Have ``op`` written soon by a worker thread (never the event loop's)."""
        with self._pending_lock:
            if self._pending_pid != os.getpid():
                self._pending, self._pending_pid = [], os.getpid()
                self._flusher = None  # a forked child has no threads: it starts its own
            self._pending.append(op)
            if self._flusher is None:
                wake = threading.Event()
                flusher = threading.Thread(
                    target=_flush_while_busy,
                    args=(weakref.ref(self), wake),
                    daemon=True,
                    name="qontak-rate-store",
                )
                try:
                    flusher.start()
                except RuntimeError:
                    # No thread to be had (the interpreter is shutting down, a thread limit):
                    # the work waits for the next claim or exit, never raises to the caller.
                    return
                self._wake, self._flusher = wake, flusher
        self._wake.set()

    def _idle(self) -> bool:
        """For the worker thread: whether it may end (nothing waits); it then does."""
        with self._pending_lock:
            if self._pending:
                return False
            self._flusher = None
            return True

    def flush(self) -> None:
        """Write whatever was handed over by code in an event loop. A store that is down
        loses it (a warning says so): completions and pauses are advice for later claims."""
        try:
            self._run(lambda conn: self._apply(conn, self._take_pending()))
        except Exception as exc:  # a worker thread has nobody to raise to
            log_kv(logging.WARNING, "rate-limit store update lost", error=str(exc))

    # -- the operations -----------------------------------------------------------------------
    def _register(self, conn: Any, key: str, horizon: float) -> None:
        conn.execute(self._sql_register, {"k": key, "h": horizon})

    def claim(
        self,
        key: str,
        scope: str,
        checks: Sequence[_Check],
        horizon: float,
        *,
        flying: bool,
        lifetime: float,
    ) -> tuple[float, _Slot | None]:
        """Take one slot for ``key`` in ``scope`` now and return ``(0.0, slot)``, or take
        nothing and return the seconds until one may be free (and ``None``). One transaction,
        under the budget's lock. A ``flying`` slot counts as "now" until :meth:`complete`
        (``slot`` names it) or for ``lifetime`` seconds; otherwise it counts from now on
        (``slot`` is ``None``)."""

        def work(conn: Any) -> tuple[float, _Slot | None]:
            # This process's own completions and pauses count before it claims again.
            self._apply(conn, self._take_pending())
            locked = self._begin_locked(conn, key)
            try:
                if locked is None or self._known.get(key, 0.0) < horizon:
                    self._register(conn, key, horizon)
                    self._known[key] = horizon
                    if locked is None:
                        self._commit(conn)
                        locked = self._begin_locked(conn, key)
                        assert locked is not None
                stored_horizon, last_at = locked
                result = self._decide_and_take(
                    conn,
                    key,
                    scope,
                    checks,
                    (max(horizon, stored_horizon), max(lifetime, stored_horizon)),
                    last_at,
                    flying,
                )
                self._commit(conn)
                return result
            except BaseException:
                # A dead connection has rolled back on its own.
                with contextlib.suppress(Exception):
                    self._rollback(conn)
                raise

        return self._run(work)

    def _claim_query(self, checks: Sequence[_Check]) -> str:
        shape = tuple(c.scope is None for c in checks)
        sql = self._claim_sql.get(shape)
        if sql is None:
            p = self._p
            columns = [
                f"(SELECT max(until) FROM qontak_rate_pause WHERE key = {p('k')}"
                f" AND scope IN ({p('sa')}, {p('sc')}))"
            ]
            for i, any_scope in enumerate(shape):
                only = "" if any_scope else f" AND scope = {p('sc')}"
                # Per rule: the requests in flight, and those answered inside its window.
                columns.append(
                    f"(SELECT count(*) FROM qontak_rate_flight WHERE key = {p('k')}{only}"
                    f" AND at > n.t - {p('hz')})"
                )
                columns.append(
                    f"(SELECT count(*) FROM qontak_rate_grant WHERE key = {p('k')}{only}"
                    f" AND at > n.t - {p(f'span{i}')})"
                )
            sql = (
                f"SELECT n.t, {', '.join(columns)} FROM"
                f" (SELECT {self._greatest} ({self._now_sql()}, {p('last')}) AS t) AS n"
            )
            self._claim_sql[shape] = sql
        return sql

    def _decide_and_take(
        self,
        conn: Any,
        key: str,
        scope: str,
        checks: Sequence[_Check],
        horizons: tuple[float, float],
        last_at: float,
        flying: bool,
    ) -> tuple[float, _Slot | None]:
        horizon, lifetime = horizons
        params: dict[str, Any] = {
            "k": key,
            "last": last_at,
            "sa": SCOPE_ALL,
            "sc": scope,
            "hz": lifetime,
        }
        for i, check in enumerate(checks):
            params[f"span{i}"] = check.span
        row = conn.execute(self._claim_query(checks), self._with_now(params)).fetchone()
        now = float(row[0])
        full = [
            (check, int(row[2 + 2 * i]), int(row[3 + 2 * i]))
            for i, check in enumerate(checks)
            if int(row[2 + 2 * i]) + int(row[3 + 2 * i]) >= check.requests
        ]
        at = _earliest(now, row[1], self._nth(conn, key, scope, now, full))
        if at > now:
            return max(at - now, _MIN_WAIT), None
        slot = None
        if flying:
            slot = _Slot(key, scope, secrets.randbits(62) + 1, now)
            conn.execute(self._sql_fly, {"k": key, "id": slot.id, "sc": scope, "t": now})
        else:
            conn.execute(self._sql_grant, {"k": key, "sc": scope, "t": now})
        conn.execute(self._sql_last, {"k": key, "t": now})
        if not now - _PRUNE_EVERY_SECONDS < self._pruned.get(key, -math.inf) <= now:
            conn.execute(self._sql_prune, {"k": key, "cut": now - horizon})
            conn.execute(self._sql_prune_flight, {"k": key, "cut": now - lifetime})
            self._pruned[key] = now
        return 0.0, slot

    def _nth(
        self, conn: Any, key: str, scope: str, now: float, full: Sequence[tuple[_Check, int, int]]
    ) -> list[tuple[float | None, float]]:
        """For each full rule, the request whose leaving its window frees a slot, and the
        window: those in flight count as answered now, so with ``requests - flying`` answered
        in the window the oldest of those; with ``requests`` in flight, now."""
        nth: list[tuple[float | None, float]] = []
        for check, in_flight, _ in full:
            if in_flight >= check.requests:
                nth.append((now, check.span))
                continue
            found = conn.execute(
                self._sql_nth[check.scope is None],
                {
                    "k": key,
                    "sc": scope,
                    "t": now,
                    "span": check.span,
                    "off": check.requests - in_flight - 1,
                },
            ).fetchone()
            nth.append((None if found is None else float(found[0]), check.span))
        return nth

    def _complete_op(self, slot: _Slot) -> _Op:
        def op(conn: Any) -> None:
            # One transaction: the request counts in flight or answered, never neither.
            self._begin(conn)
            try:
                conn.execute(
                    self._sql_landed,
                    self._with_now({"k": slot.key, "sc": slot.scope, "at": slot.at}),
                )
                conn.execute(self._sql_unfly, {"k": slot.key, "id": slot.id})
                self._commit(conn)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._rollback(conn)
                raise

        return op

    def _pause_op(self, key: str, scope: str, seconds: float) -> _Op:
        asked = time.monotonic()

        def op(conn: Any) -> None:
            # Written later than asked (handed over): the pause still ends when it should.
            left = seconds - (time.monotonic() - asked)
            if left > 0:
                conn.execute(self._sql_pause, self._with_now({"k": key, "sc": scope, "s": left}))

        return op

    def _release_op(self, slot: _Slot) -> _Op:
        def op(conn: Any) -> None:
            conn.execute(self._sql_unfly, {"k": slot.key, "id": slot.id})

        return op

    def release(self, slot: _Slot) -> None:
        """The request of ``slot`` never went (its caller was cancelled while the slot was
        taken): the slot is freed. From an event loop the write is handed to a worker thread."""
        self._submit(self._release_op(slot))

    def complete(self, slot: _Slot) -> None:
        """The request of ``slot`` has its answer: its grant moves to the store's now. From
        an event loop the write is handed to a worker thread."""
        self._submit(self._complete_op(slot))

    def pause(self, key: str, scope: str, seconds: float) -> None:
        """Grant nothing for ``key`` in ``scope`` for ``seconds`` from now (store's clock).
        From an event loop the write is handed to a worker thread."""
        self._submit(self._pause_op(key, scope, seconds))

    def _submit(self, op: _Op) -> None:
        if _in_event_loop():
            self._defer(op)
        else:
            self._run(lambda conn: self._apply(conn, [*self._take_pending(), op]))

    def __del__(self) -> None:
        # A store nobody uses any more closes its connection (only one this process opened).
        if getattr(self, "_conn", None) is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self._conn.close()

    def close(self) -> None:
        """Write what was handed over, then close this process's connection (a later call
        reopens it)."""
        if self._pending:
            self.flush()
        with self._lock:
            if self._pid == os.getpid():
                self._drop()
            elif self._conn is not None:
                _INHERITED.append(self._conn)
                self._conn = None


class _SqliteStore(_Store):
    """A SQLite file: every process on the host that opens it shares its budgets."""

    def __init__(self, url: Secret, path: Path) -> None:
        super().__init__(url)
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: the claim's transaction is our explicit BEGIN IMMEDIATE. A writer
        # waiting for the lock is woken by SQLite's busy handler (no polling of our own).
        conn = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        enable_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise
        return conn

    def _begin_locked(self, conn: Any, key: str) -> tuple[float, float] | None:
        # BEGIN IMMEDIATE takes the file's write lock now, so the count and the insert below
        # see and change the same state; no other process can claim in between.
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(
            "SELECT horizon, last_at FROM qontak_rate_budget WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else (float(row[0]), float(row[1]))

    def _begin(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def _now_sql(self) -> str:
        return self._p("now")

    def _with_now(self, params: dict[str, Any]) -> dict[str, Any]:
        # Wall time of this host, read under the lock (one host shares a SQLite file).
        params["now"] = time.time()
        return params

    def _is_store_error(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.Error)


def _load_psycopg(setting: str) -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            f"{setting}: a PostgreSQL rate-limit store needs psycopg: "
            "pip install 'qontak[postgres]'",
            setting=setting,
            reason="the qontak[postgres] extra is not installed",
        ) from None
    return psycopg


class _PostgresStore(_Store):
    """A PostgreSQL database: every process on every host that uses it shares its budgets."""

    _param = "%({})s"
    _greatest = "greatest"

    def __init__(self, url: Secret, setting: str) -> None:
        super().__init__(url)
        self._psycopg = _load_psycopg(setting)

    def _connect(self) -> Any:
        conn = self._psycopg.connect(self.url.get(), autocommit=True, connect_timeout=10)
        try:
            conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                (f"{int(_STUCK_CLAIM_SECONDS * 1000)}ms",),
            )
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    def _begin_locked(self, conn: Any, key: str) -> tuple[float, float] | None:
        conn.execute("BEGIN")
        # The budget's row lock serializes claims on one key (other keys go in parallel). It is
        # the transaction's: released at COMMIT/ROLLBACK or when the connection dies.
        row = conn.execute(
            "SELECT horizon, last_at FROM qontak_rate_budget WHERE key = %s FOR UPDATE", (key,)
        ).fetchone()
        return None if row is None else (float(row[0]), float(row[1]))

    def _now_sql(self) -> str:
        # The database's clock, read inside the claiming transaction after the row lock:
        # one clock for every host.
        return "extract(epoch FROM clock_timestamp())::float8"

    def _is_store_error(self, exc: BaseException) -> bool:
        # Any database error (a lost connection, a dropped table) reconnects once, which also
        # recreates the tables; a second failure is reported as ours.
        return isinstance(exc, self._psycopg.Error)


def _open_store(url: str, setting: str) -> _Store:
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(
            f"{setting}: expected a store URL such as sqlite:///limits.db or postgresql://host/db",
            setting=setting,
            reason="empty or not text",
        )
    secret = Secret(url.strip())
    for password in _passwords(secret.get()):
        register_secret(password)
    scheme = secret.get().partition("://")[0].lower()
    if scheme in _PG_SCHEMES:
        return _PostgresStore(secret, setting)
    if scheme == "sqlite":
        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db
        rest = secret.get()[len("sqlite://") :]
        if not rest.startswith("/") or len(rest) < 2 or "?" in rest:
            _bad_url(secret, setting)
        return _SqliteStore(secret, Path(rest[1:]))
    _bad_url(secret, setting)


def _bad_url(url: Secret, setting: str) -> NoReturn:
    raise ConfigurationError(
        f"{setting}: {redact_url(url.get())!r} is not a rate-limit store "
        "(use sqlite:///path/to/file.db or postgresql://user@host/db)",
        setting=setting,
        reason="unknown store URL",
    )


class SharedRateLimiter(RateLimiter):
    """A :class:`~qontak._ratelimit.RateLimiter` whose budget lives in a database, shared by
    every process (on every host) that uses the same store and key.

    >>> limiter = SharedRateLimiter("postgresql://app@db.internal/qontak")  # doctest: +SKIP
    >>> client = Qontak(rate_limiter=limiter)  # doctest: +SKIP

    Args:
        url: ``sqlite:///path/to/file.db`` (processes on one host) or
            ``postgresql://user@host/db`` (many hosts; the ``qontak[postgres]`` extra). A
            password in it is never shown.
        limits: rules by scope, as for :class:`RateLimiter`; ``None`` takes the client's
            ``rate_limits`` (or ``QONTAK_RATE_LIMITS``) when given to a client, else the
            documented defaults.
        key: the budget's name in the store; given to a client, ``None`` means the client id,
            so two accounts never share a budget.

    A slot is a timestamp row taken in one locked transaction, in flight until
    :meth:`complete`; a pause (a 429 or ``X-RateLimit-Remaining: 0``) is a row every user of
    the budget sees. See the module documentation for the clocks used.
    """

    def __init__(
        self,
        url: str,
        *,
        limits: Mapping[str, Iterable[Rule]] | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(limits)
        self._explicit_limits = limits is not None
        self._store = _open_store(url, "url")
        if key is not None and (not isinstance(key, str) or not key):
            raise ConfigurationError(
                "key: expected a non-empty text naming the budget", setting="key", reason="empty"
            )
        self.key = key
        self._init_local()

    def _init_local(self) -> None:
        # The clock the pipeline last gave to acquire: pause(scope, until) is on it.
        self._local_clock: Callable[[], float] = time.monotonic
        # The slots handed out, by the moment acquire returned (what complete() gets back),
        # oldest first; complete() moves each one's grant in the store.
        self._slots: dict[float, _Slot] = {}
        self._slots_lock = threading.Lock()

    # -- configuration ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The store's URL with any password replaced by ``***``."""
        return redact_url(self._store.url.get())

    @property
    def has_own_limits(self) -> bool:
        """Whether rules were given to the constructor (a client's ``rate_limits`` then yield)."""
        return self._explicit_limits

    def bound(
        self, key: str, limits: Mapping[str, Iterable[Rule]] | None = None
    ) -> SharedRateLimiter:
        """This limiter for budget ``key`` (with ``limits`` if it has no rules of its own),
        sharing this one's connection."""
        rules = self.rules if self._explicit_limits or limits is None else limits
        clone = object.__new__(SharedRateLimiter)
        RateLimiter.__init__(clone, rules)
        clone._explicit_limits = self._explicit_limits
        clone._store = self._store
        clone.key = self.key if self.key is not None else key
        clone._init_local()
        return clone

    def __repr__(self) -> str:
        return f"SharedRateLimiter({self.url!r}, key={self.key!r})"

    def __reduce__(self) -> NoReturn:
        # Its URL may hold a password, and secrets never go into pickles: build one per process.
        raise TypeError(
            "SharedRateLimiter cannot be pickled; pass its URL and build one per process"
        )

    def close(self) -> None:
        """Close this process's connection to the store (reopened on next use)."""
        self._store.close()

    # -- the claim -------------------------------------------------------------------------------
    def _checks(self, scope: str) -> list[_Check]:
        scopes = (SCOPE_ALL,) if scope == SCOPE_ALL else (SCOPE_ALL, scope)
        return [
            _Check(None if sc == SCOPE_ALL else sc, w.rule.requests, w.span)
            for sc in scopes
            for w in self._windows.get(sc, ())
        ]

    def _key(self) -> str:
        if self.key is None:
            raise ConfigurationError(
                "key: missing; pass key= to SharedRateLimiter or give it to a client "
                "(the client id names the budget)",
                setting="key",
                reason="missing",
            )
        return self.key

    def _claim(self, scope: str, flying: bool = True) -> tuple[float, _Slot | None]:
        return self._store.claim(
            self._key(),
            scope,
            self._checks(scope),
            self._horizon,
            flying=flying,
            lifetime=self._flight_lifetime,
        )

    def _granted(self, slot: _Slot, clock: Callable[[], float]) -> float:
        """The moment on ``clock`` to return for ``slot``: unique among the open slots, so
        that :meth:`complete` finds it again."""
        granted = clock()
        with self._slots_lock:
            while granted in self._slots:
                granted = math.nextafter(granted, math.inf)
            # A slot whose complete() never came (the caller died) is let go once it cannot
            # count against anything: judged on the store's clock, which every caller shares
            # (two clients with different clocks may share this limiter).
            cut = slot.at - self._flight_lifetime
            for old, held in list(itertools.islice(self._slots.items(), 64)):
                if held.at > cut:
                    break
                del self._slots[old]
            self._slots[granted] = slot
        return granted

    def reserve(self, scope: str = SCOPE_ALL, *, now: float | None = None) -> float:
        """Take one slot in ``scope`` (and ``"all"``) if one is free now and return 0.0;
        otherwise take nothing and return the seconds until one may be free. ``now`` is
        ignored: the store's clock decides. The slot counts from the moment it was taken
        (:meth:`acquire`'s slots count as in flight until :meth:`complete`)."""
        return self._claim(scope, flying=False)[0]

    def acquire(
        self, scope: str = SCOPE_ALL, *, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> float:
        """Wait (with ``sleep``) until a slot in ``scope`` is free and take it; returns the
        moment on ``clock`` (give it back to :meth:`complete`). The wait is in real time: a
        ``sleep`` that returns early (a fake clock) is topped up with :func:`time.sleep`, so
        polling never spins."""
        self._local_clock = clock
        while True:
            wait, slot = self._claim(scope)
            if slot is not None:
                return self._granted(slot, clock)
            started = time.monotonic()
            sleep(wait)
            left = wait - (time.monotonic() - started)
            if left > 0:
                time.sleep(left)

    async def acquire_async(
        self,
        scope: str = SCOPE_ALL,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> float:
        """The async form of :meth:`acquire`: the claim runs in a worker thread, the wait
        with ``sleep`` (topped up with :func:`anyio.sleep`)."""
        self._local_clock = clock
        while True:
            wait, slot = await self._claim_in_thread(scope)
            if slot is not None:
                return self._granted(slot, clock)
            started = time.monotonic()
            await sleep(wait)
            left = wait - (time.monotonic() - started)
            if left > 0:
                await anyio.sleep(left)

    async def _claim_in_thread(self, scope: str) -> tuple[float, _Slot | None]:
        """:meth:`_claim` in a worker thread. A task cancelled meanwhile (``asyncio.wait_for``,
        a task group) stops waiting but the thread claims on: a slot it took then is freed,
        not left counted as in flight for :data:`~qontak._ratelimit.IN_FLIGHT_SECONDS`."""
        lock = threading.Lock()
        done: list[tuple[float, _Slot | None]] = []
        abandoned = False

        def claim() -> tuple[float, _Slot | None]:
            result = self._claim(scope)
            with lock:
                done.append(result)
                if not abandoned:
                    return result
            if result[1] is not None:
                with contextlib.suppress(Exception):  # nobody to raise to
                    self._store.release(result[1])
            return result

        try:
            return await anyio.to_thread.run_sync(claim)
        except BaseException:
            with lock:
                abandoned = True
                slot = done[0][1] if done else None
            if slot is not None:  # claimed, but its caller is gone
                with contextlib.suppress(Exception):
                    self._store.release(slot)
            raise

    def complete(self, scope: str, granted: float, now: float) -> None:
        """The request whose slot :meth:`acquire` returned as ``granted`` has its answer.

        As in the in-memory limiter, the request counted as in flight ("now") until here,
        and from here on counts from the moment its answer came back, the latest the server
        can have counted it, so a slow request never lets the next ones into its server
        window. That moment is the store's (``now``, on the caller's clock, is not comparable
        across hosts): the row moves out of flight at the store's clock as the move is
        written, for every user of the budget. Called from an event loop, the write goes to a
        worker thread (and comes before this process's next claim either way). A store that
        is down leaves the request in flight, counted for
        :data:`~qontak._ratelimit.IN_FLIGHT_SECONDS` (a warning is logged; nothing raised).
        """
        with self._slots_lock:
            slot = self._slots.pop(granted, None)
        if slot is None:
            return
        try:
            self._store.complete(slot)
        except Exception as exc:
            # Called once the answer is in: nothing here (a store that is down, an unexpected
            # bug) may turn that answer, perhaps an accepted send, into an error. The slot then
            # stays in flight. Store errors come without the URL's password (_store_error).
            text = str(exc) if isinstance(exc, QontakError) else type(exc).__name__
            log_kv(logging.WARNING, "rate-limit slot not moved", scope=scope, error=text)

    def pause_for(self, scope: str, seconds: float) -> None:
        """Grant nothing in ``scope`` to any user of this budget for ``seconds`` from now."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        self._store.pause(self._key(), scope, float(seconds))

    def pause(self, scope: str, until: float) -> None:
        """Grant nothing in ``scope`` before ``until`` on the clock last given to
        :meth:`acquire` (the pipeline's monotonic clock; :func:`time.monotonic` before any
        acquire), for every user of the budget. Prefer :meth:`pause_for`."""
        self.pause_for(scope, until - self._local_clock())


def shared_from_setting(
    url: str, setting: str, limits: Mapping[str, Iterable[Rule]] | None = None
) -> SharedRateLimiter:
    """A :class:`SharedRateLimiter` whose configuration errors name ``setting`` (e.g.
    ``QONTAK_RATE_LIMIT_STORE``) instead of ``url``."""
    try:
        return SharedRateLimiter(url, limits=limits)
    except ConfigurationError as exc:
        if exc.setting != "url":
            raise
        message = setting + str(exc)[len("url") :]
        raise ConfigurationError(message, setting=setting, reason=exc.reason) from None
