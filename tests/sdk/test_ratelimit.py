"""The client-side limiter never exceeds its rules, and the server's word pauses it."""

from __future__ import annotations

import threading
from email.utils import parsedate_to_datetime

import httpx
import pytest

from qontak import RateLimiter, RateLimitError, Rule
from qontak._ratelimit import DEFAULT_LIMITS, parse_reset, parse_retry_after


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_bucket_never_exceeds_its_rate() -> None:
    limiter = RateLimiter(DEFAULT_LIMITS)
    now = 0.0
    grants_all, grants_send = [], []
    for i in range(400):
        scope = "send" if i % 2 else "all"
        at = now + limiter.reserve(scope, now=now)
        (grants_send if scope == "send" else grants_all).append(at)
        now = at  # the caller waits, then goes
    everything = grants_all + grants_send
    assert max_in_window(everything, 60.0) <= 100
    assert max_in_window(everything, 1.0) <= 10
    assert max_in_window(grants_send, 60.0) <= 60
    # and it is not needlessly slow: 400 requests at 100/min take about 3 minutes
    assert max(everything) < 4 * 60


def test_burst_of_ten_goes_at_once_then_waits() -> None:
    limiter = RateLimiter()
    waits = [limiter.reserve(now=0.0) for _ in range(11)]
    assert waits[:10] == [0.0] * 10
    assert waits[10] == pytest.approx(1.0)


def test_shared_between_threads() -> None:
    limiter = RateLimiter({"all": (Rule(50, 60.0),)})
    out: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            w = limiter.reserve(now=0.0)
            with lock:
                out.append(w)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out).count(0.0) == 50
    assert min(w for w in out if w > 0) == pytest.approx(60.0)


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
    assert clock.now - start == pytest.approx(60.0)


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
