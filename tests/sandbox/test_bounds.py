"""Nothing the sandbox keeps grows without bound: fault events, webhook retries, the change
log, and the ground truth served by ``GET /_sandbox/messages``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    FaultConfig,
    Sandbox,
    SandboxConfig,
    SyncASGITransport,
)
from qontak.sandbox._api import synthetic_sends
from qontak.sandbox._faults import MAX_FAULT_EVENTS
from qontak.sandbox._interactions import RetryQueue

from .conftest import FakeClock
from .examples import TEXT

MESSAGES = "/_sandbox/messages"
STATUSES = ("sent", "delivered", "read")


def _fill(box: Sandbox, count: int, clock: FakeClock) -> None:
    """``count`` accepted sends, a second apart, ending now, straight into the store."""
    sends = synthetic_sends(
        box, TEXT, count, start=clock() - count, step=1.0, client_id=SANDBOX_CLIENT_ID
    )
    box.store.add_sends(sends)


@pytest.fixture
def make(clock: FakeClock) -> Iterator[Any]:
    boxes: list[Sandbox] = []

    def factory(**changes: Any) -> Sandbox:
        boxes.append(Sandbox(SandboxConfig(clock=clock, faults=FaultConfig(), **changes)))
        return boxes[-1]

    yield factory
    for box in boxes:
        box.close()


# -- fault events: a ring ---------------------------------------------------------------------


def test_fault_events_keep_the_latest_and_count_the_rest(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    sandbox.set_faults("error_before=1,scope=all")
    extra = 500
    for _ in range(MAX_FAULT_EVENTS + extra):
        sandbox.faults.draw("GET", "/qontak/chat/v1/integrations")
    events = sandbox.faults.events
    assert len(events) == MAX_FAULT_EVENTS
    assert [events[0].seq, events[-1].seq] == [extra + 1, MAX_FAULT_EVENTS + extra]
    view = client.get("/_sandbox/faults").json()["data"]
    assert len(view["events"]) == MAX_FAULT_EVENTS and view["events_dropped"] == extra
    sandbox.set_faults("error_before=1")  # new settings: a new record
    assert sandbox.faults.events == [] and sandbox.faults.events_dropped == 0


# -- webhook retries: at most max_size wait, the rest waits on disk ---------------------------


class Receiver:
    """A webhook receiver that is down (503) until told otherwise; records what it got."""

    def __init__(self) -> None:
        self.up = False
        self.got: list[tuple[str, str]] = []
        self.client = httpx.Client(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            return httpx.Response(503)
        body = json.loads(request.content)
        self.got.append((body["external_id"], body["status"]))
        return httpx.Response(200)


def test_retry_queue_is_capped_and_nothing_is_lost(clock: FakeClock, make: Any) -> None:
    box = make(webhook_url="http://hooks.example/in")
    queue = box.webhooks.retries
    queue.max_size = 5
    receiver = Receiver()
    _fill(box, 20, clock)
    clock.advance(10)  # every message is read: 60 statuses to post
    try:
        for _ in range(3):  # the receiver is down for a while
            assert box.webhooks.deliver_due(receiver.client) == 0
            clock.advance(queue.policy.cap)
        assert len(queue) == 5  # not 60
        assert box.webhooks.stalls >= 3
        assert box.webhooks.high_water_mark < box.store.head()  # the rest waits in the log
        receiver.up = True
        clock.advance(queue.policy.cap)
        assert box.webhooks.deliver_due(receiver.client) == 60
        assert len(queue) == 0
    finally:
        receiver.client.close()
    wamids = [m["whatsapp_message_id"] for m in box.messages()]
    assert sorted(receiver.got) == sorted((w, s) for w in wamids for s in STATUSES)
    for wamid in wamids:  # each message's statuses in order
        assert [s for w, s in receiver.got if w == wamid] == list(STATUSES)


# -- the change log: capped, and cleared up to the webhook mark ------------------------------


def _logged(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def test_change_log_keeps_at_most_max_events(tmp_path: Path, clock: FakeClock, make: Any) -> None:
    db = tmp_path / "box.db"
    box = make(db=db, max_events=100)
    store = box.store
    _fill(box, 300, clock)  # 300 "pending" changes logged
    assert _logged(db) == 100 and store.events_dropped == 200
    clock.advance(10)
    store.advance(box.now(), box.config.delivery_delays)  # 900 more: sent, delivered, read
    slack = 100 // 8  # pruned every few writes, not at each one
    assert _logged(db) <= 100 + slack
    assert store.events_dropped == store.head() - _logged(db) == 1200 - _logged(db)
    # The inbox's feed does not read the log: every message is still there, read.
    with httpx.Client(transport=SyncASGITransport(box.app), base_url="http://sandbox.local") as h:
        page = h.get(MESSAGES, params={"after": 0, "limit": 1000}).json()
    assert len(page["data"]) == 300 and {m["status"] for m in page["data"]} == {"read"}
    box.reset()
    assert store.events_dropped == 0 and _logged(db) == 0


def test_posted_changes_leave_the_log(tmp_path: Path, clock: FakeClock, make: Any) -> None:
    db = tmp_path / "box.db"
    box = make(db=db, webhook_url="http://hooks.example/in")
    receiver = Receiver()
    receiver.up = True
    _fill(box, 10, clock)
    clock.advance(10)
    try:
        assert box.webhooks.deliver_due(receiver.client) == 30
    finally:
        receiver.client.close()
    assert _logged(db) == 0  # dealt with: nothing kept
    assert box.store.events_dropped == 0


# -- GET /_sandbox/messages: pages with a cursor ------------------------------------------------


def test_ground_truth_comes_in_pages(sandbox: Sandbox, client: httpx.Client, clock: Any) -> None:
    _fill(sandbox, 1200, clock)
    first = client.get(MESSAGES).json()
    assert len(first["data"]) == 1000 and first["next"] is not None
    seen = list(first["data"])
    cursor = first["next"]
    while cursor is not None:
        page = client.get(MESSAGES, params={"cursor": cursor}).json()
        seen += page["data"]
        cursor = page["next"]
    assert [m["id"] for m in seen] == [m["id"] for m in sandbox.messages()]
    small = client.get(MESSAGES, params={"limit": 7, "cursor": first["next"]}).json()
    assert [m["id"] for m in small["data"]] == [m["id"] for m in seen[1000:1007]]
    assert len(client.get(MESSAGES, params={"limit": 10**6}).json()["data"]) == 1000
    for bad in ({"cursor": "x"}, {"cursor": "-1"}, {"limit": "0"}):
        refused = client.get(MESSAGES, params=bad)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == 400


def test_pages_neither_skip_nor_repeat_while_messages_arrive(
    sandbox: Sandbox, client: httpx.Client, clock: Any
) -> None:
    _fill(sandbox, 30, clock)
    seen: list[str] = []
    page = client.get(MESSAGES, params={"limit": 7}).json()
    while True:
        seen += [m["id"] for m in page["data"]]
        _fill(sandbox, 3, clock)  # new sends between two pages
        if page["next"] is None:
            break
        page = client.get(MESSAGES, params={"limit": 7, "cursor": page["next"]}).json()
    everything = [m["id"] for m in sandbox.messages()]
    assert len(set(seen)) == len(seen)  # nothing twice
    assert seen == everything[: len(seen)]  # nothing skipped, oldest first
    # The inbox's feed (?after=) still answers in its own shape, every message included.
    feed = client.get(MESSAGES, params={"after": 0, "limit": 1000}).json()
    assert sorted(m["id"] for m in feed["data"]) == sorted(everything) and "next" not in feed


def test_the_log_cap_never_drops_a_change_the_webhook_poller_still_has_to_post(
    tmp_path: Path, clock: FakeClock, make: Any
) -> None:
    # 300 messages all read at once are 1,200 changes, twelve times the cap: with a receiver
    # to post to, each status still reaches it (a campaign tracked from webhooks would
    # otherwise wait for ever on the ones dropped).
    db = tmp_path / "box.db"
    box = make(db=db, max_events=100, webhook_url="http://hooks.example/in")
    receiver = Receiver()
    receiver.up = True
    _fill(box, 300, clock)
    clock.advance(10)
    try:
        assert box.webhooks.deliver_due(receiver.client) == 900
    finally:
        receiver.client.close()
    wamids = [m["whatsapp_message_id"] for m in box.messages()]
    assert sorted(receiver.got) == sorted((w, s) for w in wamids for s in STATUSES)
    assert box.store.events_dropped == 0
    assert _logged(db) == 0  # and all of it left the log once posted


def test_a_retry_queue_that_could_never_take_a_status_is_refused() -> None:
    with pytest.raises(ValueError, match="max_size"):
        RetryQueue(FakeClock(), max_size=0)
