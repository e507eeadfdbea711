"""Settling unknown outcomes from the broadcast list, against the in-process sandbox.

The sandbox's own store is the ground truth: what it holds was accepted, what it does not
was not. Its clock is shared with the client, and the client's sleeps advance it, so
back-off under faults costs no real time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from qontak import (
    AsyncQontak,
    DeliveryUnknownError,
    Qontak,
    SentQuery,
    SentSearch,
    ValidationError,
)
from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    RateLimitConfig,
    Sandbox,
    SandboxConfig,
    SyncASGITransport,
)
from qontak.sandbox._validation import check_send
from qontak.testing import SANDBOX_BASE_URL, SANDBOX_HOST

ORDER = "d3e1083c-66ea-410b-b807-1d84182ffa82"  # order_update (id), two body variables
OTP = "60cccaa0-ccd9-4efd-bdfb-875859c4b50a"  # login_otp (id)
CHANNEL = "56b60c3c-0123-46af-958b-32f3ad12ee37"


def payload(number: str, template: str = ORDER) -> dict[str, Any]:
    if template == OTP:
        params: dict[str, Any] = {
            "body": [{"key": "1", "value": "otp", "value_text": "123456"}],
            "buttons": [{"index": "0", "type": "url", "value": "123456"}],
        }
    else:
        params = {
            "body": [
                {"key": "1", "value": "name", "value_text": "Budi"},
                {"key": "2", "value": "order", "value_text": "#1"},
            ]
        }
    return {
        "to_name": "Budi",
        "to_number": number,
        "message_template_id": template,
        "channel_integration_id": CHANNEL,
        "language": {"code": "id"},
        "parameters": params,
    }


def land(box: Sandbox, number: str, template: str = ORDER) -> str:
    """Store an accepted send directly (fast seeding, or a request that lands late)."""
    body = payload(number, template)
    valid = check_send(
        body,
        find_template=lambda i: box.store.get_object("templates", i),
        find_channel=lambda i: box.store.get_object("channels", i),
    )
    return str(box.record_send(valid, SANDBOX_CLIENT_ID, body)["id"])


STEP = 15  # seconds between two stored broadcasts


def number(i: int) -> str:
    return f"62812{i:08d}"


class Counting(httpx.BaseTransport):
    """Counts the requests that really reach the sandbox."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.count = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def box() -> Iterator[Sandbox]:
    sandbox = Sandbox(
        SandboxConfig(rate_limits=RateLimitConfig(enabled=False), faults=FaultConfig())
    )
    yield sandbox
    sandbox.close()


@pytest.fixture
def wired(box: Sandbox) -> Iterator[tuple[Qontak, Counting]]:
    transport = Counting(SyncASGITransport(box.app))
    http = httpx.Client(transport=transport, base_url=SANDBOX_HOST)
    client = Qontak(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        base_url=SANDBOX_BASE_URL,
        env_file=None,
        clock=box.now,
        sleep=box.advance,
        http_client=http,
        rate_limits=False,
    )
    yield client, transport
    client.close()
    http.close()


def unknown_send(client: Qontak, box: Sandbox, fault: str, to: str) -> DeliveryUnknownError:
    box.set_faults(FaultConfig(scope="send", **{fault: 1.0}))
    try:
        with pytest.raises(DeliveryUnknownError) as info:
            client.broadcasts.send_direct(payload(to), validate=False)
    finally:
        box.set_faults(FaultConfig())
    return info.value


def truth(box: Sandbox) -> dict[str, list[str]]:
    """Broadcast ids the sandbox holds, by number."""
    out: dict[str, list[str]] = {}
    for m in box.messages():
        out.setdefault(m["to_number"], []).append(m["broadcast_id"])
    return out


def busy_history(
    box: Sandbox, client: Qontak
) -> tuple[list[SentQuery], dict[str, DeliveryUnknownError], set[str]]:
    """800 broadcasts over three hours and a half, with four unknown outcomes in the middle:
    two that landed (lost response, 500 after acting) and two that did not."""
    # the number of one unknown, same template, 100 minutes earlier: not this attempt
    filler: set[str] = {land(box, number(9004))}
    for i in range(400):
        filler.add(land(box, number(i), OTP if i % 3 == 0 else ORDER))
        box.advance(STEP)
    errors = {
        "lost": unknown_send(client, box, "lost_response", number(9001)),
        "dropped": unknown_send(client, box, "drop_before", number(9002)),
    }
    box.advance(5)
    errors["after"] = unknown_send(client, box, "error_after", number(9003))
    errors["refused"] = unknown_send(client, box, "error_before", number(9004))
    for i in range(400, 800):
        filler.add(land(box, number(i), OTP if i % 3 == 0 else ORDER))
        box.advance(STEP)
    queries = [SentQuery.from_error(e, key) for key, e in errors.items()]
    return queries, errors, filler


def test_many_broadcasts_one_windowed_pass(box: Sandbox, wired: tuple[Qontak, Counting]) -> None:
    client, transport = wired
    queries, _, filler = busy_history(box, client)
    ground = truth(box)
    before = transport.count
    search = client.broadcasts.find_sent_many(queries)
    assert isinstance(search, SentSearch)
    assert {k: [b.id for b in v] for k, v in search.found.items()} == {
        "lost": ground[number(9001)],
        "after": ground[number(9003)],
    }
    assert sorted(search.absent) == ["dropped", "refused"]
    assert search.pending == {}
    # honest count, and bounded by the window, not by the 800 broadcasts stored
    assert search.requests == transport.count - before
    in_window = 2 * 120 + 60 + 5  # seconds of history the window holds
    same_template = (in_window // STEP + 2) * 2 // 3 + 1  # ORDER broadcasts only
    assert search.requests <= 1 + same_template + 2, search.requests
    # the ledger already knows the filler broadcasts: only the unknown sends are read
    again = client.broadcasts.find_sent_many(queries, known_ids=filler)
    assert again.found.keys() == search.found.keys() and again.absent == search.absent
    assert again.requests == 1 + 2


def test_single_find_sent_is_a_thin_windowed_wrapper(
    box: Sandbox, wired: tuple[Qontak, Counting]
) -> None:
    client, transport = wired
    _, errors, _ = busy_history(box, client)
    err = errors["lost"]
    before = transport.count
    found = client.broadcasts.find_sent(
        err.to_number or "", message_template_id=err.message_template_id, since=err.sent_at
    )
    assert [b.id for b in found] == truth(box)[number(9001)]
    assert transport.count - before < 20  # it used to read every log since `since`
    # outside [since - skew, until]: nothing
    late = (err.sent_at or 0) + 400
    assert client.broadcasts.find_sent(number(9001), since=late, until=late + 100) == []


def test_get_faults_still_settle_and_cost_more_requests(
    box: Sandbox, wired: tuple[Qontak, Counting]
) -> None:
    client, _ = wired
    queries, _, _ = busy_history(box, client)
    clean = client.broadcasts.find_sent_many(queries)
    box.set_faults(
        FaultConfig(seed=7, error_before=0.1, rate_limit=0.08, drop_before=0.08, error_after=0.04)
    )
    stormy = client.broadcasts.find_sent_many(queries, now=box.now())
    box.set_faults(FaultConfig())
    assert {k: [b.id for b in v] for k, v in stormy.found.items()} == {
        k: [b.id for b in v] for k, v in clean.found.items()
    }
    assert sorted(stormy.absent) == sorted(clean.absent) and stormy.pending == {}
    assert stormy.requests > clean.requests


def test_a_list_that_cannot_be_read_leaves_queries_pending_not_absent(
    box: Sandbox, wired: tuple[Qontak, Counting]
) -> None:
    client, transport = wired
    queries, _, _ = busy_history(box, client)
    box.set_faults(FaultConfig(error_before=1.0))
    before = transport.count
    search = client.broadcasts.find_sent_many(queries)
    box.set_faults(FaultConfig())
    assert search.found == {} and search.absent == []
    assert set(search.pending) == {q.key for q in queries}
    assert search.requests == transport.count - before == 6  # retried, then gave up
    assert min(search.pending.values()) > box.now()


def test_absence_waits_for_settle_after_and_a_late_landing_is_found(
    box: Sandbox, wired: tuple[Qontak, Counting]
) -> None:
    client, _ = wired
    for i in range(50):
        land(box, number(i))
        box.advance(7)
    # the client gave up (no answer); the request reaches Qontak later
    err = unknown_send(client, box, "drop_before", number(7777))
    query = SentQuery.from_error(err, "row-1")
    box.advance(10)
    early = client.broadcasts.find_sent_many([query], settle_after=60)
    assert early.found == {} and early.absent == []
    assert early.pending == {"row-1": pytest.approx((err.sent_at or 0) + 60)}
    box.advance(140)  # lands 150 s after the attempt: beyond skew, within skew + settle
    late_id = land(box, number(7777))
    box.advance(5)
    later = client.broadcasts.find_sent_many([query], settle_after=60)
    assert [b.id for b in later.found["row-1"]] == [late_id]
    # had it never landed, the closed window proves absence
    other = SentQuery("row-2", number(7778), ORDER, err.sent_at or 0)
    assert client.broadcasts.find_sent_many([other], settle_after=60).absent == ["row-2"]


def test_bad_queries_are_refused_before_any_request(wired: tuple[Qontak, Counting]) -> None:
    client, transport = wired
    with pytest.raises(ValidationError) as info:
        client.broadcasts.find_sent_many([SentQuery(1, "not a number", None, 1.0)])
    assert info.value.field == "to_number"
    with pytest.raises(ValidationError) as info:
        client.broadcasts.find_sent_many([SentQuery(1, number(1), None, float("nan"))])
    assert info.value.field == "sent_at"
    with pytest.raises(ValidationError) as info:
        client.broadcasts.find_sent_many([SentQuery(1, number(1), None, 1.0)], skew=-1)
    assert info.value.field == "skew"
    with pytest.raises(ValidationError):
        client.broadcasts.find_sent(number(1), since="yesterday")
    assert client.broadcasts.find_sent_many([]).requests == 0
    assert transport.count == 0


@pytest.mark.anyio
async def test_async_batch_matches_the_sync_one(
    box: Sandbox, wired: tuple[Qontak, Counting]
) -> None:
    client, _ = wired
    queries, _, filler = busy_history(box, client)
    want = client.broadcasts.find_sent_many(queries, known_ids=filler)

    async def advance(seconds: float) -> None:
        box.advance(seconds)

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=box.app), base_url=SANDBOX_HOST)
    aclient = AsyncQontak(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        base_url=SANDBOX_BASE_URL,
        env_file=None,
        clock=box.now,
        sleep=advance,
        http_client=http,
        rate_limits=False,
    )
    got = await aclient.broadcasts.find_sent_many(queries, known_ids=filler)
    assert {k: [b.id for b in v] for k, v in got.found.items()} == {
        k: [b.id for b in v] for k, v in want.found.items()
    }
    assert got.absent == want.absent and got.requests == want.requests
    err = queries[0]
    found = await aclient.broadcasts.find_sent(
        err.to_number, message_template_id=err.message_template_id, since=err.sent_at
    )
    assert [b.id for b in found] == [b.id for b in want.found["lost"]]
    await aclient.aclose()
    await http.aclose()


def test_a_broadcast_counts_only_for_an_attempt_whose_own_window_holds_it(
    box: Sandbox, wired: tuple[Qontak, Counting]
) -> None:
    client, _ = wired
    t0 = box.now()
    box.advance(1500)
    # X got this template 1,500 s after X's attempt: inside the walk (Y's attempt is then)
    # but far outside X's own window, so it is not X's unknown send
    land(box, number(1))
    y_id = land(box, number(2))
    box.advance(300)
    queries = [
        SentQuery("x", number(1), ORDER, t0),
        SentQuery("y", number(2), ORDER, t0 + 1500),
    ]
    search = client.broadcasts.find_sent_many(queries)
    assert {k: [b.id for b in v] for k, v in search.found.items()} == {"y": [y_id]}
    assert search.absent == ["x"]


def test_a_server_that_ignores_the_date_filter_is_not_walked_to_the_beginning(
    make_client: Any, server: Any, clock: Any
) -> None:
    # Qontak's own filter precision is not documented (a day? an instant?). Should it answer
    # with everything, newest first, the walk stops at the first broadcast older than the
    # window instead of paging through the whole history.
    def iso(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")

    sent_at = clock.now - 600
    times = [clock.now - 10 * i for i in range(200)]  # every 10 s, newest first
    broadcasts = [
        {"id": f"b{i}", "created_at": iso(t), "message_template": {"id": ORDER}}
        for i, t in enumerate(times)
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/whatsapp/log"):
            bid = request.url.path.split("/")[-3]
            row = {"id": "r", "contact_phone_number": number(1 if bid == "b60" else 2)}
            return httpx.Response(200, json={"status": "success", "data": [row]})
        page = int(request.url.params.get("offset") or 1)
        data = broadcasts[(page - 1) * 20 : page * 20]
        meta = {"pagination": {"offset": page, "limit": 20, "total": len(broadcasts)}}
        return httpx.Response(200, json={"status": "success", "data": data, "meta": meta})

    server.default = answer
    client = make_client(rate_limits=False)
    search = client.broadcasts.find_sent_many(
        [SentQuery("row", number(1), ORDER, sent_at)], skew=60, settle_after=30
    )
    assert [b.id for b in search.found["row"]] == ["b60"]
    paths = [r.url.path for r in server.requests]
    lists = [p for p in paths if p.endswith("/broadcasts/whatsapp")]
    logs = [p for p in paths if p.endswith("/log")]
    assert len(lists) == 4  # 200 broadcasts in pages of 20: it stopped in the fourth page
    assert len(logs) == 16  # the broadcasts of [sent_at - 60, sent_at + 90] only
    assert search.requests == len(server.requests)
