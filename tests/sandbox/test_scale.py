"""The sandbox at scale: SQL pagination, the inbox's change feed, the webhook high-water mark,
and costs that stay flat as the store grows (counted in SQLite steps, never timed)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    FaultConfig,
    RateLimitConfig,
    Sandbox,
    SandboxConfig,
    SyncASGITransport,
)
from qontak.sandbox._api import synthetic_sends
from qontak.sandbox._delivery import iso

from .conftest import BASE, START, FakeClock, HmacAuth
from .examples import TEXT

LIST = BASE + "/broadcasts/whatsapp"
SEND = BASE + "/broadcasts/whatsapp/direct"
FEED = "/_sandbox/messages"


def _fill(box: Sandbox, count: int, *, start: float, step: float = 60.0) -> None:
    """``count`` accepted sends, ``step`` seconds apart from ``start``, straight into the store;
    every third one named "promo …" so the name filter has something to find."""
    sends = list(
        synthetic_sends(box, TEXT, count, start=start, step=step, client_id=SANDBOX_CLIENT_ID)
    )
    for i, (broadcast, _, _) in enumerate(sends):
        if i % 3 == 0:
            broadcast["name"] = f"Promo {i}"
    box.store.add_sends(sends)


def _page(client: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")


# ------------------------------------------------------------------------ SQL pagination
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"limit": 7},
        {"limit": 7, "offset": 3},
        {"limit": 7, "offset": 15},  # the last, short page
        {"limit": 7, "offset": 16},  # past the end
        {"limit": 10, "order_direction": "asc", "offset": 2},
        {"limit": 5, "query": "PROMO"},
        {"limit": 4, "query": "promo 1", "order_direction": "asc", "offset": 2},
        {"limit": 9, "start_date": "DAY1"},
        {"limit": 9, "start_date": "DAY0", "end_date": "DAY0", "offset": 2},
        {"limit": 9, "start_date": "DAY0", "end_date": "DAY0", "query": "promo"},
        {"target_channel[]": "wa_cloud", "limit": 6, "offset": 2},
        {"target_channel[]": "wa", "limit": 6},
        {"execute_types[]": ["immediately", "scheduled"], "limit": 50},
        {"execute_types[]": "scheduled"},
    ],
)
def test_broadcast_list_pages_match_filtering_everything_in_python(
    client: httpx.Client, sandbox: Sandbox, params: dict[str, Any]
) -> None:
    start = START - 110 * 1500.0 - 10
    _fill(sandbox, 110, start=start, step=1500.0)  # spans three days, all in the past
    everything = sandbox.store.list_broadcasts()
    day0 = _day(start)
    day1 = _day(start + 86400)
    wanted = [{k: (day0 if v == "DAY0" else day1 if v == "DAY1" else v)} for k, v in params.items()]
    query: dict[str, Any] = {k: v for item in wanted for k, v in item.items()}

    # The oracle: the old in-memory filtering, written out plainly.
    def created(b: dict[str, Any]) -> float:
        return datetime.fromisoformat(b["created_at"].replace("Z", "+00:00")).timestamp()

    expected = list(everything)
    if "start_date" in query:
        since = datetime.fromisoformat(query["start_date"]).replace(tzinfo=timezone.utc)
        expected = [b for b in expected if created(b) >= since.timestamp()]
    if "end_date" in query:
        until = datetime.fromisoformat(query["end_date"]).replace(tzinfo=timezone.utc)
        expected = [b for b in expected if created(b) < until.timestamp() + 86400]
    if "query" in query:
        expected = [b for b in expected if query["query"].lower() in b["name"].lower()]
    if "target_channel[]" in query:
        expected = [b for b in expected if b["target_channel"] == query["target_channel[]"]]
    if "execute_types[]" in query:
        types = query["execute_types[]"]
        types = types if isinstance(types, list) else [types]
        expected = [b for b in expected if b["execute_type"] in types]
    if query.get("order_direction") != "asc":
        expected.reverse()
    limit = int(query.get("limit", 100))
    page = int(query.get("offset", 1))
    body = _page(client, LIST, **query)
    assert [b["id"] for b in body["data"]] == [
        b["id"] for b in expected[(page - 1) * limit : page * limit]
    ]
    meta = body["meta"]["pagination"]
    assert (meta["total"], meta["offset"], meta["limit"]) == (len(expected), page, limit)
    assert (meta["cursor"]["next"] is None) == (page * limit >= len(expected))
    for item in body["data"]:
        assert item["message_status_count"]["read"] == 1  # statuses counted for each row


def test_cursor_walk_covers_every_broadcast_once_in_both_directions(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    _fill(sandbox, 23, start=START - 3600)
    ids = [b["id"] for b in reversed(sandbox.store.list_broadcasts())]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 5}
    while True:
        body = _page(client, LIST, **params)
        seen += [b["id"] for b in body["data"]]
        cursor = body["meta"]["pagination"]["cursor"]
        if cursor["next"] is None:
            break
        params = {"limit": 5, "cursor": cursor["next"]}
    assert seen == ids
    back = _page(client, LIST, limit=5, cursor=cursor["prev"], cursor_direction="before")
    assert [b["id"] for b in back["data"]] == ids[15:20]


def test_cursor_walk_while_broadcasts_arrive_neither_repeats_nor_skips(
    client: httpx.Client, sandbox: Sandbox, clock: FakeClock
) -> None:
    sandbox.set_rate_limits(RateLimitConfig(enabled=False))
    _fill(sandbox, 30, start=START - 3600)
    before = [b["id"] for b in reversed(sandbox.store.list_broadcasts())]  # newest first
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 7}
    while True:
        body = _page(client, LIST, **params)
        seen += [b["id"] for b in body["data"]]
        assert client.post(SEND, json=TEXT).status_code == 201  # lands at the front
        cursor = body["meta"]["pagination"]["cursor"]
        if cursor["next"] is None:
            break
        params = {"limit": 7, "cursor": cursor["next"]}
    assert seen == before  # no page repeated what the arrivals pushed down
    back = _page(client, LIST, limit=7, cursor=cursor["prev"], cursor_direction="before")
    assert [b["id"] for b in back["data"]] == before[-9:-2]  # the last page held two


def test_log_pages_and_templates_filter_in_sql(client: httpx.Client, sandbox: Sandbox) -> None:
    _fill(sandbox, 3, start=START - 60)
    broadcast = sandbox.store.list_broadcasts()[1]
    log = BASE + f"/broadcasts/{broadcast['id']}/whatsapp/log"
    first = _page(client, log)
    assert [r["messages_broadcast_id"] for r in first["data"]] == [broadcast["id"]]
    assert first["meta"]["pagination"]["total"] == 1
    assert _page(client, log, offset=2)["data"] == []
    everything = _page(client, BASE + "/templates/whatsapp")["data"]
    newest = _page(client, BASE + "/templates/whatsapp", order_direction="desc", limit=3)
    assert newest["data"] == everything[::-1][:3]
    marketing = _page(
        client,
        BASE + "/templates/whatsapp",
        **{"excluded_category[]": "marketing", "statuses[]": "approved", "language": "en"},
    )
    assert marketing["data"] == [
        t
        for t in everything
        if t["category"] != "MARKETING" and t["status"] == "APPROVED" and t["language"] == "en"
    ]
    assert marketing["meta"]["pagination"]["total"] == len(marketing["data"]) > 0


# -------------------------------------------------------------------- ?after= change feed
def _poll(client: httpx.Client, after: int, **params: Any) -> dict[str, Any]:
    return _page(client, FEED, after=after, **params)


def test_feed_gives_new_messages_then_only_what_changed(
    client: httpx.Client, sandbox: Sandbox, clock: FakeClock
) -> None:
    empty = _poll(client, 0)
    assert (empty["data"], empty["reset"], empty["more"]) == ([], False, False)
    ids = [client.post(SEND, json=TEXT).json()["data"]["id"] for _ in range(3)]
    first = _poll(client, empty["seq"])
    assert [m["broadcast_id"] for m in first["data"]] == ids
    assert [m["status"] for m in first["data"]] == ["pending"] * 3
    assert first["data"][0]["order"] < first["data"][1]["order"] < first["data"][2]["order"]
    assert first["seq"] > empty["seq"]
    assert _poll(client, first["seq"])["data"] == []  # nothing new: nothing sent
    clock.advance(0.6)  # sent
    moved = _poll(client, first["seq"])
    assert [(m["broadcast_id"], m["status"]) for m in moved["data"]] == [(i, "sent") for i in ids]
    # Whole messages, as the full ground truth has them (plus their order).
    truth = {m["id"]: m for m in sandbox.messages()}
    for message in moved["data"]:
        assert {k: v for k, v in message.items() if k != "order"} == truth[message["id"]]
    assert _poll(client, moved["seq"])["data"] == []


def test_feed_pages_with_limit_without_gaps_or_repeats(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    _fill(sandbox, 25, start=START - 3600)
    after, seen, pages = 0, [], 0
    while True:
        body = _poll(client, after, limit=10)
        seen += [m["id"] for m in body["data"]]
        after, pages = body["seq"], pages + 1
        if not body["more"]:
            break
    assert pages == 3
    assert sorted(seen) == sorted(m["id"] for m in sandbox.messages())
    assert len(set(seen)) == len(seen) == 25


def test_feed_tells_a_reader_to_start_over_after_a_reset(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    client.post(SEND, json=TEXT)
    before = _poll(client, 0)
    assert len(before["data"]) == 1
    sandbox.reset()
    after_id = client.post(SEND, json=TEXT).json()["data"]["id"]
    again = _poll(client, before["seq"], feed=before["feed"])
    assert again["reset"] is True and again["feed"] != before["feed"]
    assert [m["broadcast_id"] for m in again["data"]] == [after_id]
    assert _poll(client, again["seq"], feed=again["feed"])["reset"] is False
    # A position beyond the newest change (a restart on another database) starts over too.
    beyond = _poll(client, again["seq"] + 1000)
    assert beyond["reset"] is True and len(beyond["data"]) == 1


@pytest.mark.parametrize("params", [{"after": "x"}, {"after": -1}, {"after": 0, "limit": 0}])
def test_feed_rejects_bad_positions(client: httpx.Client, params: dict[str, Any]) -> None:
    assert client.get(FEED, params=params).status_code == 400


def test_feed_under_concurrent_sends_has_no_gaps_and_no_repeats(clock: FakeClock) -> None:
    # The fake clock stands still, so every message stays pending: each must appear once.
    box = Sandbox(clock=clock, faults=FaultConfig(), rate_limits=RateLimitConfig(enabled=False))
    with box.run_in_thread() as url, httpx.Client(base_url=url, auth=HmacAuth(clock)) as live:
        _concurrent_sends_and_polls(live)
    box.close()


def _concurrent_sends_and_polls(live: httpx.Client) -> None:
    sent: list[str] = []
    lock = threading.Lock()
    done = threading.Event()

    def sender() -> None:
        for _ in range(15):
            response = live.post(SEND, json=TEXT)
            assert response.status_code == 201
            with lock:
                sent.append(response.json()["data"]["id"])

    seen: list[str] = []

    def poller() -> None:
        after = 0
        while True:
            last_round = done.is_set()
            body = live.get(FEED, params={"after": after, "limit": 7}).json()
            seen.extend(m["broadcast_id"] for m in body["data"])
            after = body["seq"]
            if last_round and not body["more"]:
                return

    watcher = threading.Thread(target=poller)
    watcher.start()
    senders = [threading.Thread(target=sender) for _ in range(4)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    done.set()
    watcher.join(timeout=30)
    assert not watcher.is_alive()
    assert len(seen) == len(set(seen)) == 60
    assert set(seen) == set(sent)


# ------------------------------------------------------------------ webhook high-water mark
def test_webhooks_post_each_change_once_across_polls_failures_and_a_restart(
    tmp_path: Path, clock: FakeClock
) -> None:
    db = tmp_path / "sandbox.db"
    received: list[tuple[str, str]] = []
    fail_next = [False]

    def receiver(request: httpx.Request) -> httpx.Response:
        if fail_next[0]:
            fail_next[0] = False
            return httpx.Response(503)
        body = json.loads(request.content)
        received.append((body["id"], body["status"]))
        return httpx.Response(200)

    def box() -> Sandbox:
        config = SandboxConfig(
            db=db, clock=clock, faults=FaultConfig(), webhook_url="http://hooks.local/in"
        )
        return Sandbox(config)

    first = box()
    hooks = httpx.Client(transport=httpx.MockTransport(receiver))
    _fill(first, 4, start=START, step=0.01)
    assert first.webhooks.deliver_due(hooks) == 0  # all pending: nothing to post
    clock.advance(0.6)
    fail_next[0] = True
    # One POST refused: only that message waits for its backoff, the other three go on.
    assert first.webhooks.deliver_due(hooks) == 3
    assert first.webhooks.deliver_due(hooks) == 0  # its backoff has not passed yet
    clock.advance(1.0)
    # The refused "sent" first, then delivered × 4 (its message's in order, after it).
    assert first.webhooks.deliver_due(hooks) == 1 + 4
    _fill(first, 2, start=clock(), step=0.01)
    assert first.webhooks.deliver_due(hooks) == 0  # the new two are pending
    mark = first.webhooks.high_water_mark
    first.close()

    second = box()  # a restart on the same database goes on from the mark
    assert second.webhooks.high_water_mark == mark
    clock.advance(5)
    assert second.webhooks.deliver_due(hooks) == 4 + 2 * 3  # read × 4, and the new two
    assert second.webhooks.deliver_due(hooks) == 0
    second.close()
    hooks.close()
    assert len(received) == len(set(received)) == 6 * 3
    by_message: dict[str, list[str]] = {}
    for message_id, status in received:
        by_message.setdefault(message_id, []).append(status)
    assert all(s == ["sent", "delivered", "read"] for s in by_message.values())


# ------------------------------------------------------------- flat cost as the store grows
def _costs(small: int) -> dict[str, int]:
    """SQLite steps of each read, with ``small`` broadcasts stored and then ten times as many."""
    clock = FakeClock()
    box = Sandbox(
        SandboxConfig(
            clock=clock,
            faults=FaultConfig(),
            webhook_url="http://h/in",
            rate_limits=RateLimitConfig(enabled=False),
        )
    )
    hooks = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    auth = HmacAuth(clock)
    http = httpx.Client(
        transport=SyncASGITransport(box.app), base_url="http://sandbox.local", auth=auth
    )
    _fill(box, small, start=clock() - small * 60, step=60.0)
    box.store.advance(clock(), box.config.delivery_delays)
    box.store.set_meta("webhook_hwm", str(box.store.head()))  # the backlog counts as posted
    box.webhooks.deliver_due(hooks)  # a poller that has caught up (and cleared its log)
    one = box.store.list_broadcasts()[-1]["id"]
    after, more = 0, True
    while more:  # an inbox tab that has caught up
        body = http.get(FEED, params={"after": after, "limit": 1000}).json()
        after, more = body["seq"], body["more"]

    def steps(call: Any) -> int:
        with box.store.counting_steps() as counted:
            call()
        return counted[0]

    window = {"start_date": iso(clock() - 600)}  # the last ten sends, however many are stored
    # Cursors as deep in the list as the store is big: the next page after the last but one,
    # and back from there.
    pages = -(-box.store.broadcast_count() // 20)
    meta = http.get(LIST, params={"limit": 20, "offset": pages - 1}).json()["meta"]
    last_page = {"limit": 20, "cursor": meta["pagination"]["cursor"]["next"]}
    meta = http.get(LIST, params=last_page).json()["meta"]
    back = {
        "limit": 20,
        "cursor": meta["pagination"]["cursor"]["prev"],
        "cursor_direction": "before",
    }
    figures = {
        "list first page": steps(lambda: http.get(LIST, params={"limit": 20})),
        "list last hour": steps(lambda: http.get(LIST, params=window | {"limit": 20})),
        "list page 3 by offset": steps(lambda: http.get(LIST, params={"limit": 20, "offset": 3})),
        "list last page by cursor": steps(lambda: http.get(LIST, params=last_page)),
        "list back from the last page": steps(lambda: http.get(LIST, params=back)),
        "detail": steps(lambda: http.get(BASE + f"/broadcasts/{one}/whatsapp")),
        "log": steps(lambda: http.get(BASE + f"/broadcasts/{one}/whatsapp/log")),
        "inbox poll, nothing new": steps(lambda: http.get(FEED, params={"after": after})),
        "webhook poll, nothing new": steps(lambda: box.webhooks.deliver_due(hooks)),
        "send": steps(lambda: http.post(SEND, json=TEXT)),
    }
    clock.advance(5)  # the one new message moves on: sent, delivered, read
    figures["inbox poll, one change"] = steps(lambda: http.get(FEED, params={"after": after}))
    figures["webhook poll, three changes"] = steps(lambda: box.webhooks.deliver_due(hooks))
    http.close()
    hooks.close()
    box.close()
    return figures


def test_what_a_request_reads_does_not_grow_with_the_store() -> None:
    small, large = _costs(300), _costs(3000)
    grew = {k: (small[k], large[k]) for k in small if large[k] > small[k] * 1.2 + 100}
    assert not grew, f"SQLite steps grew with the store (300 → 3000 broadcasts): {grew}"


def test_feed_turns_a_stored_nan_into_null_instead_of_breaking_every_poll(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    from dataclasses import replace

    client.post(SEND, json=TEXT)
    [good] = sandbox.store.messages()
    # A row from an older database, stored before sends were parsed strictly.
    poison = replace(good, id="poison", rendered={"body": float("nan")})
    sandbox.store.add_send(broadcast={"id": "b-poison"}, client_id="x", message=poison)
    body = _poll(client, 0)
    assert [m["id"] for m in body["data"]] == [good.id, "poison"]
    assert body["data"][1]["rendered"] == {"body": None}


def test_a_database_from_before_the_change_feed_is_upgraded_in_place(
    tmp_path: Path, clock: FakeClock
) -> None:
    import sqlite3

    from qontak.sandbox._store import _SCHEMA

    db = tmp_path / "old.db"
    source = Sandbox(clock=clock, faults=FaultConfig())
    [(broadcast, client_id, message)] = synthetic_sends(
        source, TEXT, 1, start=clock() - 60, step=1, client_id=SANDBOX_CLIENT_ID
    )
    source.close()
    old = sqlite3.connect(db)  # the tables exactly as the previous version made them
    old.executescript(_SCHEMA)
    old.execute(
        "INSERT INTO broadcasts (id, client_id, created_at, data) VALUES (?,?,?,?)",
        (broadcast["id"], client_id, message.accepted_at, json.dumps(broadcast)),
    )
    old.execute(
        "INSERT INTO messages (id, broadcast_id, accepted_at, to_number, to_name, "
        "channel_integration_id, wamid, error_code, template, parameters, rendered) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            message.id,
            message.broadcast_id,
            message.accepted_at,
            message.to_number,
            message.to_name,
            message.channel_integration_id,
            message.wamid,
            None,
            json.dumps(message.template),
            json.dumps(message.parameters),
            json.dumps(message.rendered),
        ),
    )
    old.execute("INSERT INTO webhook_sent VALUES (?, 'sent')", (message.id,))  # posted before
    old.commit()
    old.close()

    posted: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content)["status"])
        return httpx.Response(200)

    box = Sandbox(db=db, clock=clock, faults=FaultConfig(), webhook_url="http://h/in")
    with httpx.Client(
        transport=SyncASGITransport(box.app), base_url="http://sandbox.local", auth=HmacAuth(clock)
    ) as http:
        feed = _poll(http, 0)
        assert [(m["id"], m["status"]) for m in feed["data"]] == [(message.id, "read")]
        listed = _page(http, LIST)
        assert [b["id"] for b in listed["data"]] == [broadcast["id"]]
        assert listed["meta"]["pagination"]["total"] == 1
        assert http.post(SEND, json=TEXT).status_code == 201
        assert _page(http, LIST)["meta"]["pagination"]["total"] == 2
    with httpx.Client(transport=httpx.MockTransport(receiver)) as hooks:
        box.webhooks.deliver_due(hooks)
    assert posted == ["delivered", "read"]  # "sent" was posted by the older version
    box.close()
