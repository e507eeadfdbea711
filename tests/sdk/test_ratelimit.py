"""The client-side limiter never exceeds its rules, and the server's word pauses it."""

from __future__ import annotations

import heapq
import itertools
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from pathlib import Path

import anyio
import httpx
import pytest

from qontak import ConfigurationError, Qontak, RateLimiter, RateLimitError, Rule
from qontak._ratelimit import (
    DEFAULT_LIMITS,
    SAFETY_MARGIN,
    SAFETY_MARGIN_MIN_SECONDS,
    parse_rate_limit_items,
    parse_rate_limits,
    parse_reset,
    parse_retry_after,
)

MARGIN = 1.0 + SAFETY_MARGIN  # every window is this much longer than the server's


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_rules_hold_over_a_long_run_and_use_the_budget() -> None:
    limiter = RateLimiter(DEFAULT_LIMITS)
    now = 0.0
    grants_all: list[float] = []
    grants_send: list[float] = []
    i = 0
    while i < 400:
        scope = "send" if i % 2 else "all"
        wait = limiter.reserve(scope, now=now)
        if wait > 0:
            now += wait  # nothing was taken: sleep, then ask again
            continue
        (grants_send if scope == "send" else grants_all).append(now)
        i += 1
    everything = grants_all + grants_send
    # the server's windows, and the widened ones (a hair less: they end exactly on a grant)
    for per in (60.0, 60.0 * MARGIN - 1e-9):
        assert max_in_window(everything, per) <= 100
        assert max_in_window(grants_send, per) <= 60
    for per in (1.0, MARGIN - 1e-9):
        assert max_in_window(everything, per) <= 10
    # and it is not needlessly slow: 400 requests at 100/min, 2% margin
    assert max(everything) < 4 * 60 * MARGIN


def test_burst_of_ten_goes_at_once_then_waits_a_window_and_the_margin() -> None:
    limiter = RateLimiter()
    waits = [limiter.reserve(now=0.0) for _ in range(11)]
    assert waits[:10] == [0.0] * 10
    # A one-second window is kept 100 ms longer (2% would be 20 ms: less than jitter).
    assert waits[10] == pytest.approx(1.0 + SAFETY_MARGIN_MIN_SECONDS)
    assert limiter.reserve(now=0.5) == pytest.approx(0.6)  # nothing was taken meanwhile
    minute = RateLimiter({"send": (Rule(1, 60.0),)})
    assert [minute.reserve("send", now=0.0), minute.reserve("send", now=0.0)] == [
        0.0,
        pytest.approx(60.0 * MARGIN),  # on a minute the 2% is the larger: 1.2 s
    ]
    exact = RateLimiter({"all": (Rule(1, 1.0),)}, margin=0)
    assert [exact.reserve(now=0.0), exact.reserve(now=0.0)] == [0.0, 1.0]


def test_margin_is_checked() -> None:
    for bad in (-0.1, 1.0, float("nan"), "2%"):
        with pytest.raises(ValueError, match="margin"):
            RateLimiter(margin=bad)  # type: ignore[arg-type]


def test_shared_between_threads_never_grants_past_the_window() -> None:
    # Sixteen threads walk the same instants, one window apart, and a barrier releases them
    # together to ask for the one slot every instant has; thread switches are forced as
    # often as the interpreter allows. Every instant is a race for the last free slot:
    # without the limiter's lock two threads win one, and the window holds two grants.
    instants = [i * 1.2 for i in range(200)]  # 1.2 s apart, one rule window is 1.1 s
    # many rules make the check-then-take step long enough to be interrupted
    rules = tuple(Rule(1, 1.0 - k * 1e-3) for k in range(40))
    limiter = RateLimiter({"all": rules, "send": rules})
    threads_n = 16
    barrier = threading.Barrier(threads_n, timeout=30)
    granted: list[float] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        scope = "send" if n % 2 else "all"
        try:
            for now in instants:
                barrier.wait()  # everybody asks for this instant's slot at once
                if limiter.reserve(scope, now=now) == 0.0:
                    granted.append(now)
        except BaseException as exc:  # a thread's error must fail the test
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert max_in_window(granted, 1.0) == 1  # never two grants in one window
    assert len(granted) == len(instants)  # and no instant went unused


def test_threads_blocking_in_acquire_keep_the_rule_on_the_real_clock() -> None:
    limiter = RateLimiter({"all": (Rule(4, 0.05),)})
    barrier = threading.Barrier(8)
    times: list[float] = []

    def worker() -> None:
        barrier.wait()
        for _ in range(3):
            granted = limiter.acquire(clock=time.monotonic, sleep=time.sleep)
            times.append(granted)
            limiter.complete("all", granted, granted)  # answered at once

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(times) == 24
    assert max_in_window(times, 0.05 * MARGIN - 1e-9) == 4


class VirtualTime:
    """Virtual time for async tasks: sleepers wake in deadline order, and the clock can
    stall (jump ahead while everyone sleeps), as a blocked event loop does."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._seq = itertools.count()
        self.stalls: dict[float, float] = {}  # at this time, jump ahead by that much

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        event = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), event))
        await event.wait()

    async def run(self, steps: int = 10_000, alive: Callable[[], int] | None = None) -> None:
        for _ in range(steps):
            for _ in range(2_000):  # let every runnable task reach its next sleep
                await anyio.sleep(0)
                if alive is None or len(self._sleepers) >= alive():
                    break
            if not self._sleepers:
                return
            deadline, _, event = heapq.heappop(self._sleepers)
            self.now = max(self.now, deadline)
            for at in sorted(self.stalls):
                if self.now >= at:
                    self.now += self.stalls.pop(at)
            event.set()
        raise AssertionError("tasks never finished (a waiter is stuck)")


@pytest.mark.anyio
async def test_a_stall_does_not_make_late_tasks_fire_together() -> None:
    # The old limiter handed out future slots and slept: after a stall every late task
    # woke at once and fired together. Slots are now taken when the request really goes.
    vt = VirtualTime()
    limiter = RateLimiter({"all": (Rule(2, 1.0),)})
    sent: list[float] = []

    async def task() -> None:
        granted = await limiter.acquire_async(clock=vt.clock, sleep=vt.sleep)
        sent.append(vt.now)
        limiter.complete("all", granted, vt.now)  # answered at once

    vt.stalls[1.5] = 4.0  # at 1.5 s the loop freezes for 4 s
    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(task)
        await vt.run()
    assert len(sent) == 12
    assert max_in_window(sent, 1.0) == 2
    assert max(sent) > 5.5  # the stall really happened


@pytest.mark.anyio
async def test_a_task_that_arrives_later_never_overtakes_one_that_waits() -> None:
    vt = VirtualTime()
    limiter = RateLimiter({"all": (Rule(1, 1.0),)})
    order: list[str] = []

    async def task(name: str, start: float) -> None:
        if start:
            await vt.sleep(start)
        granted = await limiter.acquire_async(clock=vt.clock, sleep=vt.sleep)
        order.append(name)
        limiter.complete("all", granted, vt.now)

    # B queues at 0.1 for the slot at 1.02; the loop stalls at 1.0 until 2.5, and C arrives
    # then, when a slot is free but B has not woken up yet: C must still go after B.
    vt.stalls[1.0] = 1.5
    async with anyio.create_task_group() as tg:
        tg.start_soon(task, "A", 0.0)
        tg.start_soon(task, "B", 0.1)
        tg.start_soon(task, "C", 1.0)
        await vt.run()
    assert order == ["A", "B", "C"]


@pytest.mark.anyio
async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    vt = VirtualTime()
    limiter = RateLimiter({"all": (Rule(1, 1.0),)})
    done: list[str] = []
    limiter.reserve(now=0.0)

    async def waiter() -> None:
        await limiter.acquire_async(clock=vt.clock, sleep=vt.sleep)
        done.append("cancelled one went")

    async def later() -> None:
        await vt.sleep(0.5)
        granted = await limiter.acquire_async(clock=vt.clock, sleep=vt.sleep)
        done.append("later")
        limiter.complete("all", granted, vt.now)

    async with anyio.create_task_group() as tg:
        async with anyio.create_task_group() as inner:
            inner.start_soon(waiter)
            for _ in range(5):
                await anyio.sleep(0)
            inner.cancel_scope.cancel()
        tg.start_soon(later)
        await vt.run()
    assert done == ["later"]


@pytest.mark.anyio
async def test_matched_limits_and_stalls_draw_no_429_from_the_sandbox() -> None:
    # The issue-9 scenario end to end: 32 tasks share one AsyncQontak whose limits match the
    # sandbox's (60 sends/min, 100 requests/min, 10/s, fixed windows); the event loop stalls
    # three times. Each request reaches the sandbox at the virtual moment it was let through.
    from qontak import AsyncQontak
    from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, FaultConfig, Sandbox
    from qontak.testing import SANDBOX_BASE_URL, SANDBOX_HOST

    vt = VirtualTime()
    vt.now = 1_760_000_000.0
    vt.stalls = {vt.now + 5.0: 3.0, vt.now + 20.3: 7.5, vt.now + 40.9: 0.7}
    box = Sandbox(clock=vt.clock, faults=FaultConfig())
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=box.app), base_url=SANDBOX_HOST)
    client = AsyncQontak(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        base_url=SANDBOX_BASE_URL,
        env_file=None,
        clock=vt.clock,
        sleep=vt.sleep,
        http_client=http,
        max_retries=0,
    )
    statuses: list[int] = []
    alive = 32

    async def worker() -> None:
        nonlocal alive
        try:
            for _ in range(6):
                try:
                    await client.channels.list()
                    statuses.append(200)
                except RateLimitError:
                    statuses.append(429)
        finally:
            alive -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(32):
            tg.start_soon(worker)
        await vt.run(alive=lambda: alive)
    await client.aclose()
    await http.aclose()
    box.close()
    assert len(statuses) == 192 and statuses.count(429) == 0
    assert not vt.stalls  # every stall happened


def test_pause_blocks_until_the_named_time() -> None:
    limiter = RateLimiter({"all": (Rule(100, 60.0),)})
    limiter.pause("all", 30.0)
    assert limiter.reserve(now=10.0) == pytest.approx(20.0)


def test_reset_parsing_accepts_seconds_epoch_and_epoch_ms() -> None:
    now = 1_700_000_000.0
    assert parse_reset("5", now) == 5.0
    assert parse_reset("1700000007", now) == 7.0
    assert parse_reset("1700000009000", now) == 9.0
    assert parse_reset("soon", now) is None
    assert parse_retry_after({"Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT"}, now) == 10.0


def test_client_waits_when_server_says_no_requests_remain(make_client, server, clock) -> None:
    ok = {"status": "success", "data": []}
    server.replies = [
        httpx.Response(
            200, json=ok, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "20"}
        ),
        httpx.Response(200, json=ok),
    ]
    client = make_client()
    client.channels.list()
    start = clock.now
    client.channels.list()
    assert clock.now - start == pytest.approx(20.0)


def test_client_limiter_spaces_direct_sends(make_client, server, clock) -> None:
    server.default = lambda r: httpx.Response(201, json={"status": "success", "data": {"id": "b"}})
    client = make_client(rate_limits={"send": [Rule(2, 60.0)]})
    msg = {
        "to_name": "A",
        "to_number": "6281234567890",
        "message_template_id": "t",
        "channel_integration_id": "c",
        "language": {"code": "id"},
        "parameters": {},
    }
    start = clock.now
    for _ in range(3):
        client.broadcasts.send_direct(msg, validate=False)
    assert clock.now - start == pytest.approx(60.0 * MARGIN)


def test_limiter_can_be_switched_off(make_client, server, clock) -> None:
    client = make_client(rate_limits=False)
    assert client.rate_limiter is None
    for _ in range(30):
        client.channels.list()
    assert clock.sleeps == []


@pytest.mark.anyio
async def test_async_tasks_share_one_budget_and_a_429_pauses_other_callers(server, clock) -> None:
    import anyio

    from qontak import AsyncQontak

    ok = {"status": "success", "data": []}
    server.default = lambda r: httpx.Response(200, json=ok)
    client = AsyncQontak(
        "id",
        server.secret,
        base_url="https://api.mekari.com",
        http_client=httpx.AsyncClient(transport=server.transport()),
        env_file=None,
        clock=clock,
        sleep=clock.asleep,
        rate_limits={"all": [Rule(3, 60.0)]},
    )
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(client.channels.list)
    # five tasks, three slots a minute: the two late ones waited for the next window
    signed = [parsedate_to_datetime(r.headers["date"]).timestamp() for r in server.requests]
    assert len(signed) == 5 and max_in_window(signed, 60.0) == 3
    assert sorted(signed)[3] - sorted(signed)[0] >= 60.0
    # a 429 seen by one call pauses the next, separate call as well (not only its own retry)
    clock.sleeps.clear()
    client2 = AsyncQontak(
        "id",
        server.secret,
        base_url="https://api.mekari.com",
        http_client=httpx.AsyncClient(transport=server.transport()),
        env_file=None,
        clock=clock,
        sleep=clock.asleep,
        max_retries=0,
    )
    server.replies = [httpx.Response(429, headers={"Retry-After": "30"})]
    with pytest.raises(RateLimitError):
        await client2.channels.list()
    await client2.channels.list()
    assert clock.sleeps == pytest.approx([30.0])
    await client.aclose()
    await client2.aclose()


# -- limits as text -------------------------------------------------------------------------


def test_rate_limits_text_gives_the_limiter_rules() -> None:
    assert parse_rate_limits("send=600/min,all=1000/min,burst=20/s") == {
        "send": (Rule(600, 60.0),),
        "all": (Rule(1000, 60.0), Rule(20, 1.0)),
    }
    # a limit not named keeps its documented default; spaces, case and units are forgiving
    assert parse_rate_limits(" Send = 120 / minute ") == {
        "send": (Rule(120, 60.0),),
        "all": (Rule(100, 60.0), Rule(10, 1.0)),
    }
    assert parse_rate_limits("burst=5/2s,all=3000/h")["all"] == (Rule(3000, 3600.0), Rule(5, 2.0))
    for off in ("off", "OFF", " none ", "0", "false"):
        assert parse_rate_limits(off) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("send", "not key=N/unit"),
        ("sned=60/min", "unknown limit 'sned'"),
        ("send=60/min,send=30/min", "given twice"),
        ("send=sixty/min", "not N/unit"),
        ("send=60/fortnight", "not N/unit"),
        ("send=0/min", "at least 1"),
        ("send=-1/min", "not N/unit"),
        ("send=60/0s", "a period of more than 0 s"),
        ("send=99999999999999999/min", "at most 1,000,000,000 requests"),
        ("send=60/min,", "not key=N/unit"),
    ],
)
def test_bad_rate_limits_text_is_one_clear_line(text: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_rate_limits(text)
    err = info.value
    assert err.setting == "rate_limits" and words in str(err), str(err)
    assert "\n" not in str(err) and str(err).startswith("rate_limits: ")


def test_client_takes_rate_limits_as_text_and_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def rules(**kw: object) -> dict[str, tuple[Rule, ...]] | None:
        client = Qontak("id", "secret", env_file=kw.pop("env_file", None), **kw)  # type: ignore[arg-type]
        return None if client.rate_limiter is None else client.rate_limiter.rules

    monkeypatch.delenv("QONTAK_RATE_LIMITS", raising=False)
    assert rules() == dict(DEFAULT_LIMITS)
    assert rules(rate_limits="send=5/min")["send"] == (Rule(5, 60.0),)  # type: ignore[index]
    assert rules(rate_limits="off") is None
    dotenv = tmp_path / ".env"
    dotenv.write_text("QONTAK_RATE_LIMITS=send=7/min\n")
    assert rules(env_file=dotenv)["send"] == (Rule(7, 60.0),)  # type: ignore[index]
    monkeypatch.setenv("QONTAK_RATE_LIMITS", "send=600/min,all=1000/min,burst=20/s")
    assert rules(env_file=dotenv)["all"] == (Rule(1000, 60.0), Rule(20, 1.0))  # env beats .env
    assert rules(rate_limits="send=9/min")["send"] == (Rule(9, 60.0),)  # argument beats env
    assert rules(rate_limits=False) is None
    monkeypatch.setenv("QONTAK_RATE_LIMITS", "off")
    assert rules() is None
    monkeypatch.setenv("QONTAK_RATE_LIMITS", "send=lots")
    with pytest.raises(ConfigurationError) as info:
        rules()
    assert info.value.setting == "QONTAK_RATE_LIMITS"
    assert str(info.value).startswith("QONTAK_RATE_LIMITS: send=lots is not N/unit")
    with pytest.raises(ConfigurationError) as info:
        rules(rate_limits="burst=1/s,x=1/s")
    assert info.value.setting == "rate_limits"


def test_cli_rate_limits_option_reaches_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from qontak.cli import app
    from qontak.cli._state import State

    monkeypatch.delenv("QONTAK_RATE_LIMITS", raising=False)
    bad = CliRunner().invoke(app, ["--rate-limits", "send=fast", "--env", "sandbox", "channels"])
    assert bad.exit_code == 2
    assert "--rate-limits: send=fast is not N/unit" in bad.output
    assert bad.output.strip().count("\n") == 0
    client = State(env="sandbox", rate_limits="send=600/min,burst=20/s").client()
    assert client.rate_limiter is not None
    assert client.rate_limiter.rules["send"] == (Rule(600, 60.0),)
    assert State(env="sandbox", rate_limits="off").client().rate_limiter is None
    monkeypatch.setenv("QONTAK_RATE_LIMITS", "send=3/min")
    limiter = State(env="sandbox").client().rate_limiter
    assert limiter is not None and limiter.rules["send"] == (Rule(3, 60.0),)


def test_a_slow_request_holds_its_slot_until_its_answer() -> None:
    # The server counts a request when it arrives, which for a slow one (a cold connection,
    # a busy server) is long after its slot was taken: counted from the grant alone, the
    # next requests would land in the same server window (seen as 429s in the rate bench).
    limiter = RateLimiter({"all": (Rule(2, 1.0),)}, margin=0)
    assert [limiter.reserve(now=0.0), limiter.reserve(now=0.0)] == [0.0, 0.0]
    limiter.complete("all", 0.0, 0.6)  # both answered only at 0.6
    limiter.complete("all", 0.0, 0.6)
    assert limiter.reserve(now=1.0) == pytest.approx(0.6)  # not before 1.6, not at 1.0
    assert limiter.reserve(now=1.6) == 0.0
    # An answer later than the whole window (the grant already pruned) still counts.
    limiter.complete("all", 1.6, 5.0)
    assert limiter.reserve(now=5.5) == 0.0  # one of two slots taken at 5.0
    assert limiter.reserve(now=5.5) == pytest.approx(0.5)


def test_the_pipeline_moves_each_slot_to_its_answer() -> None:
    clock = [0.0]

    def slow(request: httpx.Request) -> httpx.Response:
        clock[0] += 0.6  # the answer comes 0.6 s after the request left
        return httpx.Response(200, json={"status": "success", "data": []})

    client = Qontak(
        "id",
        "secret",
        base_url="https://api.example.test",
        env_file=None,
        rate_limits={"all": [Rule(2, 1.0)]},
        http_client=httpx.Client(transport=httpx.MockTransport(slow)),
        clock=lambda: 1_700_000_000.0 + clock[0],
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
    )
    for _ in range(3):
        client.channels.list()
    # Slots taken at 0.0 and 0.6 move to their answers, 0.6 and 1.2: the third may go only at
    # 0.6 + 1.1 (the window and its margin), answered at 2.3. Counted from the grants it
    # would have gone at 1.2 (0.0 + 1.1 had passed), answered at 1.8.
    assert clock[0] == pytest.approx(2.3)


def test_one_cli_run_keeps_one_budget_for_all_its_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    # `qontak campaign run` resolves the template with a sync client, then sends with an
    # async one: with a budget each, their requests together overran the server's second.
    from qontak.cli._state import State

    monkeypatch.delenv("QONTAK_RATE_LIMITS", raising=False)
    st = State(env="sandbox", rate_limits="send=600/min,burst=20/s")
    sync, other = st.client(), st.async_client()
    assert sync.rate_limiter is not None and sync.rate_limiter is other.rate_limiter
    assert st.client(rate_limits="off").rate_limiter is None


def test_a_limiter_that_cannot_record_a_pause_never_turns_an_accepted_send_into_an_error() -> None:
    # A shared limiter whose store is down raises "nothing was sent" from pause(); fed from
    # the answer to a send that was accepted, that error would make the caller send again.
    from qontak import APIConnectionError, messages
    from qontak.sandbox import RateLimitConfig, Sandbox, SandboxConfig
    from qontak.testing import sandbox_client

    class StoreDown(RateLimiter):
        def pause(self, scope: str, until: float) -> None:
            raise APIConnectionError("rate-limit store failed; nothing was sent")

    box = Sandbox(SandboxConfig(rate_limits=RateLimitConfig(direct_per_minute=1)))
    with sandbox_client(box, rate_limiter=StoreDown()) as (client, _):
        template = client.templates.find("order_update", language="id")
        channel = client.channels.list()[0]
        msg = messages.text("6281234567890", ["Budi", "sepatu"], template=template, channel=channel)
        sent = client.broadcasts.send_direct(msg)  # answered with X-RateLimit-Remaining: 0
    assert sent.id and [m["broadcast_id"] for m in box.messages()] == [sent.id]
    box.close()


def test_a_request_in_flight_counts_as_now_until_its_answer() -> None:
    # The server counts a request when it arrives, any time before its answer: one stuck in
    # a stalled loop or a slow server's queue for longer than the window would, counted from
    # its grant, let the next ones into the server's window beside it.
    from qontak._ratelimit import IN_FLIGHT_SECONDS

    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    limiter = RateLimiter({"all": (Rule(2, 1.0),)}, margin=0)
    a = limiter.acquire(clock=lambda: clock[0], sleep=sleep)
    b = limiter.acquire(clock=lambda: clock[0], sleep=sleep)
    assert (a, b) == (0.0, 0.0)
    # 1.5 s later both are still in flight: a whole window from now at the earliest.
    assert limiter.reserve(now=1.5) == pytest.approx(1.0)
    limiter.complete("all", a, 1.6)
    assert limiter.reserve(now=1.7) == pytest.approx(0.9)  # b still flies: a must leave
    limiter.complete("all", b, 1.8)
    assert limiter.reserve(now=2.5) == pytest.approx(0.1)  # a counts from 1.6, to 2.6
    assert limiter.reserve(now=2.6) == 0.0
    # An answer never reported (the caller died) is let go after IN_FLIGHT_SECONDS.
    lost = limiter.acquire(clock=lambda: 2.9, sleep=sleep)
    assert limiter.reserve(now=3.5) == pytest.approx(0.1)  # lost flies; 2.6 leaves at 3.6
    later = lost + IN_FLIGHT_SECONDS - 0.1
    assert limiter.reserve(now=later) == 0.0  # one slot of two: lost still holds the other
    assert limiter.reserve(now=later) == pytest.approx(1.0)
    assert limiter.reserve(now=lost + IN_FLIGHT_SECONDS + 0.1) == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "x" * 70_000,
        "send=" + "9" * 70_000 + "/min",
        "z" * 70_000 + "=1/s",
        "send=1/" + "s" * 70_000,
    ],
)
def test_a_huge_rate_limit_value_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_rate_limit_items(text)
    assert caught.value.setting == "rate_limits" and len(str(caught.value)) < 200


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_request_that_cannot_be_built_gives_its_slot_back(mode: str) -> None:
    # The slot is taken before the request is built and signed: an error there (a file in
    # text mode, a clock that fails) must still give the slot back, or it counts as in
    # flight for IN_FLIGHT_SECONDS and a few such errors stop every request for a minute.
    import io

    from qontak._pipeline import ApiRequest

    now = [1000.0]
    limiter = RateLimiter({"all": (Rule(1, 1.0),)}, margin=0)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"data": []}))
    client = Qontak(
        "id",
        "secret",
        base_url="https://api.example.test",
        env_file=None,
        rate_limiter=limiter,
        http_client=httpx.Client(transport=transport),
        clock=lambda: now[0],
    )
    pipeline = client._pipeline
    req = ApiRequest("POST", "/upload", files={"file": ("a.txt", io.StringIO("text mode"))})
    with pytest.raises(TypeError):
        if mode == "sync":
            pipeline.run_sync(client._http, req)
        else:

            async def run() -> None:
                async with httpx.AsyncClient(transport=transport) as http:
                    await pipeline.run_async(http, req)

            anyio.run(run)
    client.close()
    now[0] += 1.5  # a window later the slot is free again
    assert limiter.reserve(now=now[0]) == 0.0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_is_not_stuck_on_a_lock_or_queue_its_parent_held() -> None:
    limiter = RateLimiter({"all": (Rule(100, 1.0),)})
    parked = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with limiter._lock:  # another thread mid-acquire at the moment of the fork
            parked.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    parked.wait(10)
    limiter._queues.setdefault("all", deque()).append(object())  # a parent's waiter
    pid = os.fork()
    if pid == 0:  # the child: one slot, at once, or exit 1 after 5 s
        signal.alarm(5)
        granted = limiter.acquire(clock=time.monotonic, sleep=time.sleep)
        os._exit(0 if granted else 1)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        thread.join()
    assert os.waitstatus_to_exitcode(status) == 0
