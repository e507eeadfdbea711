"""The shared rate limiter on real stores: a SQLite file and a throw-away PostgreSQL cluster.

Several processes (spawned, each with its own connection) share one budget; the grants the store
recorded are checked window by window. The atomic claim, the 429 pause, a process killed in the
middle of a claim and the per-account keys each have a test that fails when the rule is broken.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import qontak
from qontak import ConfigurationError, Qontak, RateLimiter, Rule, SharedRateLimiter
from qontak._ratelimit import SAFETY_MARGIN
from qontak.errors import APIConnectionError, RateLimitError
from tests.conftest import CLIENT_ID, CLIENT_SECRET, FakeClock, RecordingServer

_names = itertools.count()
# Fresh processes (no connection or lock inherited), forked from one server that imported the
# SDK once: six spawned interpreters importing it on two busy cores would take seconds each.
_SPAWN = multiprocessing.get_context("forkserver")
_SPAWN.set_forkserver_preload(
    ["qontak._shared_ratelimit", "psycopg", "tests.sdk.test_shared_ratelimit"]
)


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'limits.db'}"
    cluster = request.getfixturevalue("postgres")
    return str(cluster.createdb(f"rl_{os.getpid()}_{next(_names)}"))


def grants(url: str, key: str) -> list[float]:
    """The grant moments the store holds for ``key``, read with plain SQL (oldest first)."""
    query = "SELECT at FROM qontak_rate_grant WHERE key = {} ORDER BY at"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///") :]) as conn:
            return [r[0] for r in conn.execute(query.format("?"), (key,))]
    import psycopg

    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(query.format("%s"), (key,))]


def worst_window(times: list[float], per: float) -> int:
    """The most grants inside any window of ``per`` seconds (every window start checked)."""
    times = sorted(times)
    worst, j = 0, 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < start + per:
            j += 1
        worst = max(worst, j - i)
    return worst


def client(url_or_limiter: Any, *, client_id: str = CLIENT_ID, **kw: Any) -> Qontak:
    limiter = (
        SharedRateLimiter(url_or_limiter) if isinstance(url_or_limiter, str) else url_or_limiter
    )
    server = kw.pop("server", RecordingServer())
    return Qontak(
        client_id,
        CLIENT_SECRET,
        base_url="https://api.mekari.com",
        http_client=httpx.Client(transport=server.transport()),
        env_file=None,
        rate_limiter=limiter,
        **kw,
    )


# -- same rules as the in-memory limiter ---------------------------------------------------------


def test_shared_claims_follow_the_in_memory_rules(store_url: str) -> None:
    limits = {"all": (Rule(3, 1.0),), "send": (Rule(2, 1.0),)}
    shared = SharedRateLimiter(store_url, limits=limits, key="k")
    memory = RateLimiter(limits)
    for scope in ("send", "send", "send", "all", "all"):
        want = memory.reserve(scope, now=0.0)
        got = shared.reserve(scope)
        # The store's clock moves on a little between claims; the decision is the same.
        assert (got == 0.0) == (want == 0.0), (scope, got, want)
        assert got == pytest.approx(want, abs=0.2)
    assert len(grants(store_url, "k")) == 3
    assert shared.rules == memory.rules


def test_windows_are_the_servers_plus_the_safety_margin(tmp_path: Path) -> None:
    shared = SharedRateLimiter(f"sqlite:///{tmp_path / 'm.db'}", limits={"all": (Rule(1, 10.0),)})
    limiter = shared.bound("acct")
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(10.0 * (1 + SAFETY_MARGIN), abs=0.1)


# -- many processes, one budget -------------------------------------------------------------------

_RULE = Rule(20, 1.0)
# A rule that never binds but keeps a minute of grants in the store, for the test to read
# (grants older than the longest window are pruned).
_KEEP = Rule(10_000, 60.0)


def _hammer(url: str, key: str, count: int, start: Any, out: Any) -> None:
    limiter = SharedRateLimiter(url, limits={"all": (_RULE, _KEEP)}, key=key)
    start.wait(30)
    taken = []
    for _ in range(count):
        granted = limiter.acquire(clock=time.time, sleep=time.sleep)
        taken.append(time.time())
        limiter.complete("all", granted, time.time())  # as the pipeline does, answered at once
    out.put(taken)


def test_six_processes_never_exceed_the_shared_limit(store_url: str) -> None:
    key, per_process = "acct-six", 5  # 30 grants: a full window, then the next one
    start, out = _SPAWN.Event(), _SPAWN.Queue()
    procs = [
        _SPAWN.Process(target=_hammer, args=(store_url, key, per_process, start, out))
        for _ in range(6)
    ]
    for p in procs:
        p.start()
    start.set()
    reported = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    recorded = grants(store_url, key)
    assert len(recorded) == 6 * per_process == sum(map(len, reported))
    # Every window of the server's length, wherever it starts, holds at most the limit...
    assert worst_window(recorded, _RULE.per) <= _RULE.requests
    # ...and the budget was used, not starved: the first window filled up.
    assert worst_window(recorded, _RULE.per * (1 + SAFETY_MARGIN) + 0.05) >= _RULE.requests


def test_a_claim_in_progress_holds_off_other_processes(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count and the insert are one transaction under the budget's lock: a second
    limiter (its own connection, as another process would have) waits for the first claim
    to finish and then sees its grant. Without the lock both would be granted."""
    import qontak._shared_ratelimit as module

    inside, go = threading.Event(), threading.Event()
    real = module._earliest

    def slow(*args: Any) -> float:
        if threading.current_thread().name == "first":
            inside.set()
            go.wait(10)
        return real(*args)

    monkeypatch.setattr(module, "_earliest", slow)
    limits = {"all": (Rule(1, 30.0),)}
    first = SharedRateLimiter(store_url, limits=limits, key="k")
    second = SharedRateLimiter(store_url, limits=limits, key="k")
    results: dict[str, float] = {}
    a = threading.Thread(target=lambda: results.update(a=first.reserve()), name="first")
    b = threading.Thread(target=lambda: results.update(b=second.reserve()), name="second")
    a.start()
    assert inside.wait(10)
    b.start()
    b.join(0.3)
    assert b.is_alive(), "the second claim went ahead while the first held the budget"
    go.set()
    a.join(10)
    b.join(10)
    assert results["a"] == 0.0
    assert results["b"] > 1.0
    assert len(grants(store_url, "k")) == 1


# -- a server that counts requests late ------------------------------------------------------------

_SLOW_RULE = Rule(5, 0.5)  # a window of 0.6 s on the client (the 0.1 s minimum margin)
_LATE = 0.8  # the first five requests reach the server this long after they were sent


class _LateServer:
    """A loopback HTTP server that counts each request when it "arrives": the first five
    arrive :data:`_LATE` seconds after they were sent (a queue in front of the server, a cold
    connection), the others at once. Every request is answered right after it is counted."""

    def __init__(self) -> None:
        import http.server
        import json as _json

        self.arrivals: list[float] = []
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    seq = len(outer.arrivals) + outer.waiting
                    outer.waiting += 1
                if seq < _SLOW_RULE.requests:
                    time.sleep(_LATE)
                with lock:
                    outer.arrivals.append(time.time())  # counted here, on the host's clock
                    outer.waiting -= 1
                body = _json.dumps({"status": "success", "data": []}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.waiting = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _send_through_pipeline(
    url: str, base_url: str, key: str, count: int, ready: Any, start: Any, out: Any
) -> None:
    limiter = SharedRateLimiter(url, limits={"all": (_SLOW_RULE,)}, key=key)
    limiter._store._connection()  # connected before the test starts timing
    with Qontak(
        CLIENT_ID,
        CLIENT_SECRET,
        base_url=base_url,
        env_file=None,
        rate_limiter=limiter,
        max_retries=0,
    ) as c:
        ready.release()
        start.wait(30)
        for _ in range(count):
            c.channels.list()  # the pipeline: acquire, send, complete(granted, answered)
    out.put(count)


def test_requests_the_server_counts_late_never_overrun_its_window(store_url: str) -> None:
    """Five processes share a budget of 5 per 0.5 s; the server counts the first five requests
    0.8 s late (longer than the client's whole window). A slot counted from its grant frees at
    0.6 s, and five more requests then land in the server's window beside the five late ones;
    counted as "now" while in flight and from its answer afterwards, the next five wait for
    the answers and a window after them. Fails when complete() does nothing (the budget
    stays taken: nothing more goes for a minute), when slots count from their grant, and
    when requests in flight are not counted."""
    server = _LateServer()
    key, per_process, processes = "acct-late", 2, 5
    ready, start, out = _SPAWN.Semaphore(0), _SPAWN.Event(), _SPAWN.Queue()
    procs = [
        _SPAWN.Process(
            target=_send_through_pipeline,
            args=(store_url, server.url, key, per_process, ready, start, out),
        )
        for _ in range(processes)
    ]
    try:
        for p in procs:
            p.start()
        for _ in procs:
            assert ready.acquire(timeout=60)
        start.set()
        done = [out.get(timeout=15) for _ in procs]
        for p in procs:
            p.join(10)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        server.close()
    assert sum(done) == len(server.arrivals) == processes * per_process
    # No window of the server's length, wherever it starts, counts more than the limit...
    assert worst_window(server.arrivals, _SLOW_RULE.per) <= _SLOW_RULE.requests, sorted(
        round(t - min(server.arrivals), 3) for t in server.arrivals
    )
    # ...and the second five went a window after the late answers, not a minute later.
    assert max(server.arrivals) - min(server.arrivals) < 5.0


@pytest.mark.anyio
async def test_an_event_loop_never_waits_for_the_store(tmp_path: Path) -> None:
    """complete() and pause() are called synchronously by the pipeline, also from an event
    loop: with the store busy (another process holds the SQLite file's write lock), they hand
    their write to a worker thread and return at once; the writes land when the store is free,
    and this process's next claim sees them."""
    import anyio

    path = tmp_path / "busy.db"
    url = f"sqlite:///{path}"
    limiter = SharedRateLimiter(url, limits={"all": (Rule(5, 1.0),)}, key="k")
    granted = await limiter.acquire_async(clock=time.monotonic, sleep=anyio.sleep)
    busy = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    busy.execute("BEGIN IMMEDIATE")  # the file's write lock, as a claim elsewhere holds it
    release = threading.Timer(1.0, lambda: busy.execute("ROLLBACK"))
    release.start()
    try:
        started = time.monotonic()
        limiter.complete("all", granted, time.monotonic())
        limiter.pause("all", time.monotonic() + 30.0)
        returned = time.monotonic() - started
    finally:
        release.join()
        busy.close()
    assert returned < 0.3, f"the event loop waited {returned:.2f} s for the store"
    # The next claim comes after both writes: the pause holds it off.
    wait = await anyio.to_thread.run_sync(limiter.reserve)
    assert wait == pytest.approx(29.0, abs=1.5)
    assert len(grants(url, "k")) == 1  # the answered request, moved out of flight


# -- pauses ---------------------------------------------------------------------------------------


def _wait_for_slot(url: str, key: str, ready: Any, go: Any, out: Any) -> None:
    limiter = SharedRateLimiter(url, key=key)
    limiter._store._connection()  # connected before the test starts timing
    ready.set()
    go.wait(30)
    started = time.monotonic()
    limiter.acquire(clock=time.monotonic, sleep=time.sleep)
    out.put(time.monotonic() - started)


def test_a_429_seen_by_one_process_pauses_the_others(store_url: str) -> None:
    ready, go, out = _SPAWN.Event(), _SPAWN.Event(), _SPAWN.Queue()
    other = _SPAWN.Process(target=_wait_for_slot, args=(store_url, CLIENT_ID, ready, go, out))
    other.start()
    try:
        assert ready.wait(60)
        server = RecordingServer()
        server.replies.append(httpx.Response(429, headers={"Retry-After": "0.6"}, json={}))
        with client(store_url, server=server, max_retries=0) as c:
            with pytest.raises(RateLimitError):
                c.channels.list()
            go.set()
            waited = out.get(timeout=30)
    finally:
        other.join(30)
    assert other.exitcode == 0
    assert waited >= 0.45  # the pause (0.6 s) held in the other process, not a window


def test_ratelimit_remaining_zero_pauses_every_user_of_the_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    server = RecordingServer()
    server.replies.append(
        httpx.Response(
            200,
            headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "20"},
            json={"status": "success", "data": []},
        )
    )
    clock = FakeClock()  # an injected clock: the pause is converted from it, not mixed with it
    with client(url, server=server, clock=clock, sleep=clock.sleep) as c:
        c.channels.list()
    elsewhere = SharedRateLimiter(url, key=CLIENT_ID)
    assert elsewhere.reserve() == pytest.approx(20.0, abs=1.0)
    assert SharedRateLimiter(url, key="another-account").reserve() == 0.0


# -- a process dies in the middle of a claim -----------------------------------------------------


def _die_inside_claim(url: str, key: str, inside: Any) -> None:
    import qontak._shared_ratelimit as module

    def hang(*args: Any) -> float:
        inside.set()
        time.sleep(60)
        raise AssertionError("should have been killed")

    module._earliest = hang
    SharedRateLimiter(url, limits={"all": (Rule(2, 30.0),)}, key=key).reserve()


def test_a_process_killed_mid_claim_leaves_the_budget_usable(store_url: str) -> None:
    inside = _SPAWN.Event()
    victim = _SPAWN.Process(target=_die_inside_claim, args=(store_url, "k", inside))
    victim.start()
    assert inside.wait(60), "the victim never reached the middle of its claim"
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    limiter = SharedRateLimiter(store_url, limits={"all": (Rule(2, 30.0),)}, key="k")
    done: list[float] = []
    t = threading.Thread(target=lambda: done.extend([limiter.reserve(), limiter.reserve()]))
    t.start()
    t.join(20)
    assert not t.is_alive(), "the dead process's lock was never released"
    # Nothing half-done was left behind: the killed claim counted nothing, both slots are free.
    assert done == [0.0, 0.0]
    assert limiter.reserve() > 1.0


# -- the SDK --------------------------------------------------------------------------------------


def test_two_accounts_never_share_a_budget(tmp_path: Path) -> None:
    shared = SharedRateLimiter(f"sqlite:///{tmp_path / 'a.db'}")
    a = client(shared, client_id="account-a", rate_limits="all=1/min")
    b = client(shared, client_id="account-b", rate_limits="all=1/min")
    la, lb = a.rate_limiter, b.rate_limiter
    assert isinstance(la, SharedRateLimiter) and isinstance(lb, SharedRateLimiter)
    assert (la.key, lb.key) == ("account-a", "account-b")
    assert la.rules["all"][0] == Rule(1, 60.0)  # the client's rate_limits apply
    assert la.reserve() == 0.0
    assert la.reserve() > 1.0
    assert lb.reserve() == 0.0
    # A limiter that names its key and its rules keeps both.
    own = SharedRateLimiter(
        f"sqlite:///{tmp_path / 'a.db'}", key="ops", limits={"all": (Rule(3, 1.0),)}
    )
    kept = client(own, client_id="account-c", rate_limits="all=1/min").rate_limiter
    assert isinstance(kept, SharedRateLimiter)
    assert kept.key == "ops" and kept.rules["all"] == (Rule(3, 1.0),)


def test_store_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("QONTAK_RATE_LIMIT_STORE", url)
    monkeypatch.setenv("QONTAK_RATE_LIMITS", "send=5/min,all=7/min,burst=3/s")
    with client(None) as c:
        limiter = c.rate_limiter
        assert isinstance(limiter, SharedRateLimiter)
        assert limiter.key == CLIENT_ID
        assert limiter.rules["send"] == (Rule(5, 60.0),)
        c.channels.list()
    assert len(grants(url, CLIENT_ID)) == 1
    monkeypatch.setenv("QONTAK_RATE_LIMIT_STORE", "memory")
    with client(None) as c:
        assert type(c.rate_limiter) is RateLimiter
    monkeypatch.setenv("QONTAK_RATE_LIMIT_STORE", "redis://:hunter22@cache/0")
    with pytest.raises(ConfigurationError) as info:
        client(None)
    assert info.value.setting == "QONTAK_RATE_LIMIT_STORE"
    assert "hunter22" not in str(info.value) and "\n" not in str(info.value)


def test_rate_limiter_with_limits_switched_off_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        client(f"sqlite:///{tmp_path / 'x.db'}", rate_limits=False)
    assert info.value.setting == "rate_limiter"


@pytest.mark.anyio
async def test_async_client_shares_the_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'async.db'}"
    server = RecordingServer()
    limiter = SharedRateLimiter(url, limits={"all": (Rule(2, 0.3), _KEEP)})
    started = time.monotonic()
    async with qontak.AsyncQontak(
        CLIENT_ID,
        CLIENT_SECRET,
        base_url="https://api.mekari.com",
        http_client=httpx.AsyncClient(transport=server.transport()),
        env_file=None,
        rate_limiter=limiter,
    ) as c:
        for _ in range(3):
            await c.channels.list()
    assert time.monotonic() - started >= 0.3
    limiter.close()  # writes the last answer's move, handed over to a worker thread
    recorded = grants(url, CLIENT_ID)
    assert len(recorded) == 3 and recorded[2] - recorded[0] >= 0.3


def test_missing_postgres_extra_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigurationError) as info:
        SharedRateLimiter("postgresql://app:pw1234@db/q")
    assert "qontak[postgres]" in str(info.value) and "\n" not in str(info.value)
    assert "pw1234" not in str(info.value)


def test_the_store_password_never_shows(tmp_path: Path) -> None:
    url = f"postgresql://app:s3cr3t-pw@/nodb?host={tmp_path}&connect_timeout=1"
    limiter = SharedRateLimiter(url, key="k")
    assert "s3cr3t-pw" not in repr(limiter) and "s3cr3t-pw" not in limiter.url
    with pytest.raises(APIConnectionError) as info:
        limiter.reserve()  # nobody listens on that socket directory
    assert "s3cr3t-pw" not in str(info.value)
    with pytest.raises(TypeError):
        pickle.dumps(limiter)
    with pytest.raises(ConfigurationError) as bad:
        SharedRateLimiter("mysql://app:s3cr3t-pw@db/q")
    assert "s3cr3t-pw" not in str(bad.value)


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("QONTAK_RATE_LIMIT_STORE", raising=False)
    monkeypatch.delenv("QONTAK_RATE_LIMITS", raising=False)
    yield


def _freeze_inside_claim(url: str, key: str, inside: Any) -> None:
    import qontak._shared_ratelimit as module

    module._STUCK_CLAIM_SECONDS = 1.0

    def hang(*args: Any) -> float:
        inside.set()
        time.sleep(60)
        raise AssertionError("should have been killed")

    module._earliest = hang
    SharedRateLimiter(url, limits={"all": (Rule(2, 30.0),)}, key=key).reserve()


def test_a_host_frozen_mid_claim_loses_its_lock(postgres: Any) -> None:
    """A stopped process keeps its connection open (as a vanished host would until TCP gives
    up): the server ends its transaction, and the others go ahead."""
    url = postgres.createdb(f"rl_frozen_{os.getpid()}")
    inside = _SPAWN.Event()
    victim = _SPAWN.Process(target=_freeze_inside_claim, args=(url, "k", inside))
    victim.start()
    try:
        assert inside.wait(60)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGSTOP)
        limiter = SharedRateLimiter(url, limits={"all": (Rule(2, 30.0),)}, key="k")
        done: list[float] = []
        t = threading.Thread(target=lambda: done.append(limiter.reserve()), daemon=True)
        t.start()
        t.join(20)
        assert done == [0.0], "a frozen claim kept the budget locked"
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)


def test_a_lost_connection_is_reopened(postgres: Any) -> None:
    import psycopg

    url = postgres.createdb(f"rl_lost_{os.getpid()}")
    limiter = SharedRateLimiter(url, limits={"all": (Rule(5, 30.0),)}, key="k")
    assert limiter.reserve() == 0.0
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    assert limiter.reserve() == 0.0
    assert len(grants(url, "k")) == 2


def _claim_in_child(limiter: SharedRateLimiter, out: Any) -> None:
    out.put([limiter.reserve(), limiter.reserve()])


def test_a_forked_worker_opens_its_own_connection(store_url: str) -> None:
    """A client made before the fork (gunicorn --preload): each worker claims on its own
    connection and the parent's keeps working."""
    limiter = SharedRateLimiter(store_url, limits={"all": (Rule(3, 30.0),)}, key="k")
    assert limiter.reserve() == 0.0  # the parent's connection is open
    fork = multiprocessing.get_context("fork")
    out = fork.Queue()
    child = fork.Process(target=_claim_in_child, args=(limiter, out))
    child.start()
    assert out.get(timeout=30) == [0.0, 0.0]
    child.join(10)
    assert child.exitcode == 0
    assert limiter.reserve() > 1.0  # the parent sees the child's grants on its own connection
    assert len(grants(store_url, "k")) == 3


# -- slots and writes never lost ------------------------------------------------------------------


def _flight_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM qontak_rate_flight").fetchone()[0])


def test_a_task_cancelled_while_its_slot_is_claimed_frees_the_slot(tmp_path: Path) -> None:
    """asyncio.wait_for (or a task group) cancels a task waiting for the claim's worker thread;
    the thread claims on. The slot it took must be freed, not counted as in flight for a
    minute (a budget of one would then let nothing through)."""
    import asyncio

    import anyio

    path = tmp_path / "cancel.db"
    limiter = SharedRateLimiter(f"sqlite:///{path}", limits={"all": (Rule(1, 1.0),)}, key="k")
    store = limiter._store
    store._connection()
    freed = threading.Event()
    release_slot = store.release

    def release_and_tell(slot: Any) -> None:  # the real release, then a signal for the test
        release_slot(slot)
        freed.set()

    store.release = release_and_tell  # type: ignore[method-assign]
    busy = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    busy.execute("BEGIN IMMEDIATE")  # the claim waits in its thread for the file's lock
    unlock = threading.Timer(0.3, lambda: busy.execute("ROLLBACK"))

    async def main() -> None:
        unlock.start()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                limiter.acquire_async(clock=time.monotonic, sleep=anyio.sleep), 0.05
            )
        await anyio.to_thread.run_sync(freed.wait, 10.0)  # the thread claims at 0.3 s

    try:
        asyncio.run(main())
    finally:
        unlock.join()
        busy.close()
    assert freed.is_set(), "the slot claimed for a cancelled task was never freed"
    assert _flight_rows(path) == 0
    assert limiter.reserve() == 0.0  # the only slot is free
    limiter.close()


def test_work_handed_over_between_the_idle_timeout_and_the_wake_up_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker thread's wait times out just as an event loop hands over a write (and wakes
    it): the wake-up is cleared, and the write must still go, not wait for the next claim."""
    import weakref

    from qontak import _shared_ratelimit as srl

    monkeypatch.setattr(srl, "_FLUSHER_IDLE_SECONDS", 0.05)
    path = tmp_path / "race.db"
    limiter = SharedRateLimiter(f"sqlite:///{path}", key="k")
    store = limiter._store
    # The state the race leaves: work waiting, its wake-up cleared, the worker still counted.
    store._pending_pid = os.getpid()
    store._pending.append(store._pause_op("k", "all", 30.0))
    worker = threading.Thread(
        target=srl._flush_while_busy, args=(weakref.ref(store), threading.Event()), daemon=True
    )
    store._flusher = worker
    worker.start()
    deadline = time.monotonic() + 3.0
    while store._pending and time.monotonic() < deadline:
        time.sleep(0.02)
    written = not store._pending
    del store
    limiter.close()
    del limiter  # lets the worker end either way
    worker.join(3.0)
    assert written, "the handed-over pause waited for a wake-up that had been cleared"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM qontak_rate_pause").fetchone()[0] == 1


def test_complete_never_raises_into_an_answered_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker thread to be had (a thread limit, interpreter shutdown): complete(), called
    from an event loop once the answer is in, returns; the next claim writes the move."""
    import anyio

    path = tmp_path / "nothread.db"
    limiter = SharedRateLimiter(f"sqlite:///{path}", limits={"all": (Rule(5, 1.0),)}, key="k")

    async def main() -> None:
        granted = await limiter.acquire_async(clock=time.monotonic, sleep=anyio.sleep)

        def refuse(self: threading.Thread) -> None:
            raise RuntimeError("can't start new thread")

        with monkeypatch.context() as m:
            m.setattr(threading.Thread, "start", refuse)
            limiter.complete("all", granted, time.monotonic())
        assert _flight_rows(path) == 1  # waiting for the next claim
        await anyio.to_thread.run_sync(limiter.reserve)

    anyio.run(main)
    assert _flight_rows(path) == 0
    assert len(grants(f"sqlite:///{path}", "k")) == 2
    limiter.close()


def _claim_after_fork(limiter: SharedRateLimiter, out: Any) -> None:
    out.put(limiter.reserve())


def test_a_fork_while_another_thread_writes_leaves_the_child_usable(tmp_path: Path) -> None:
    """Forked while another thread (a worker writing handed-over work, a thread's claim) holds
    the store's lock, the child inherits that lock held forever: its first claim hung."""
    limiter = SharedRateLimiter(f"sqlite:///{tmp_path / 'fork.db'}", key="k")
    assert limiter.reserve() == 0.0
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with limiter._store._lock:
            held.set()
            done.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    fork = multiprocessing.get_context("fork")
    out = fork.Queue()
    child = fork.Process(target=_claim_after_fork, args=(limiter, out))
    try:
        child.start()
        assert out.get(timeout=10) == 0.0
        child.join(10)
        assert child.exitcode == 0
    finally:
        done.set()
        holder.join()
        if child.is_alive():
            child.kill()
    limiter.close()


_EXIT_RIGHT_AFTER_COMPLETE = """
import asyncio, sys, time
import anyio
from qontak import Rule, SharedRateLimiter

limiter = SharedRateLimiter(sys.argv[1], limits={"all": (Rule(5, 1.0),)}, key="k")

async def main():
    granted = await limiter.acquire_async(clock=time.monotonic, sleep=anyio.sleep)
    print("ready", flush=True)
    sys.stdin.readline()  # the test now holds the store's write lock
    limiter.complete("all", granted, time.monotonic())  # handed to the worker thread

asyncio.run(main())
"""


def test_a_write_in_progress_at_exit_is_finished(tmp_path: Path) -> None:
    """The worker thread is a daemon: the interpreter stops it at exit without waiting. A
    process that exits while its worker is writing (here: waiting for a busy store) must
    finish that write, or the request stays counted in flight for a minute."""
    import subprocess

    path = tmp_path / "exit.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _EXIT_RIGHT_AFTER_COMPLETE, f"sqlite:///{path}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    busy = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        assert child.stdout.readline().strip() == "ready"
        busy.execute("BEGIN IMMEDIATE")
        child.stdin.write("go\n")
        child.stdin.flush()
        time.sleep(0.5)  # the child hands the write over and exits meanwhile
        busy.execute("ROLLBACK")
        assert child.wait(30) == 0
    finally:
        busy.close()
        if child.poll() is None:
            child.kill()
        child.stdin.close()
        child.stdout.close()
    assert _flight_rows(path) == 0
    assert len(grants(f"sqlite:///{path}", "k")) == 1


def test_clients_with_different_clocks_sharing_a_limiter_complete_their_own_slots(
    tmp_path: Path,
) -> None:
    """A client given its own clock (a simulation) and one on the monotonic clock share a
    limiter: the second's acquire must not take the first's slot for a stale one, or its
    complete() finds nothing and the request counts as in flight for a minute."""
    path = tmp_path / "clocks.db"
    limiter = SharedRateLimiter(f"sqlite:///{path}", limits={"all": (Rule(5, 1.0),)}, key="k")
    a = limiter.acquire(clock=time.monotonic, sleep=time.sleep)
    b = limiter.acquire(clock=lambda: 1_700_000_000.0, sleep=time.sleep)
    limiter.complete("all", a, time.monotonic())
    limiter.complete("all", b, 1_700_000_000.5)
    assert _flight_rows(path) == 0
    limiter.close()


def test_old_rows_are_pruned_but_not_inside_every_claim(tmp_path: Path) -> None:
    """Every count looks only inside its window, so deleting older rows is housekeeping: done
    about once a second per key, not as two more statements inside every claim's lock; and
    done, so the tables stay the size of the windows."""
    path = tmp_path / "prune.db"
    limiter = SharedRateLimiter(f"sqlite:///{path}", limits={"all": (Rule(1000, 0.05),)}, key="k")
    statements: list[str] = []
    limiter._store._connection().set_trace_callback(statements.append)
    for _ in range(50):
        assert limiter.reserve() == 0.0
    deletes = [s for s in statements if s.lstrip().upper().startswith("DELETE")]
    assert len(deletes) <= 4, f"{len(deletes)} deletes for 50 claims"
    time.sleep(1.1)  # every grant is now older than the window (0.15 s with the margin)
    assert limiter.reserve() == 0.0
    assert len(grants(f"sqlite:///{path}", "k")) == 1
    limiter.close()
