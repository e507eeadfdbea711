"""A campaign's delivery funnel filled from webhooks: sandbox → real sockets → receiver → ledger.

The receiver keeps its events in the campaign ledger's own file; ``qontak campaign status``
(and :func:`qontak.campaigns.track_delivery`) link them to rows by WhatsApp message id or by
number + time, never move a status back, keep a high-water mark, and poll only rows no event
was heard of. The sandbox counts every request, so "no log polled" is measured, not assumed.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from typer.testing import CliRunner

from qontak import AsyncQontak, campaigns
from qontak.campaigns import RowState
from qontak.cli import app
from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    RateLimitConfig,
    Sandbox,
    SandboxConfig,
)
from qontak.sandbox._views import message_state
from qontak.testing import async_sandbox_client
from qontak.webhooks import SQLiteWebhookStore, WebhookReceiver, parse_event

from ..campaigns.conftest import CHANNEL_ID, advancing, normalised, write_customers
from .test_registration import serve

pytestmark = pytest.mark.anyio

TOKEN = "campaign-hooks-0123456789abcdef"
MAP = {"phone": "to_number", "nama": "1", "order": "2"}
LOG = "/whatsapp/log"
LIST = "/broadcasts/whatsapp"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "ledger.db"


async def _run(client: AsyncQontak, store: campaigns.SQLiteStore, box: Sandbox, count: int) -> str:
    source = write_customers(store.path.parent / "customers.csv", count)
    template = await client.templates.find("order_update", language="id")
    created = campaigns.create(store, source, template=template, channel=CHANNEL_ID, mapping=MAP)
    cid = created.campaign.id
    options = campaigns.RunOptions(clock=box.now, sleep=advancing(box), concurrency=8)
    result = await campaigns.run(client, store, cid, options)
    assert result.counts["accepted"] == count
    return cid


async def _status_cli(ledger: Path, cid: str, *args: str) -> dict[str, Any]:
    """``qontak --json campaign status`` in process (in a thread: the CLI runs its own loop),
    with no ``QONTAK_*`` setting, so no credentials."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("QONTAK_")}
    argv = ["--json", "campaign", "status", cid, "--db", str(ledger), *args]
    result = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, argv, env=env))
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


async def test_a_campaign_reaches_read_from_webhooks_alone(ledger: Path) -> None:
    count = 300
    box = Sandbox(
        SandboxConfig(
            rate_limits=RateLimitConfig(enabled=False),
            faults=FaultConfig(),
            delivery_delays=(0.01, 0.02, 0.03),
            webhook_poll_seconds=0.05,
        )
    )
    events = SQLiteWebhookStore(ledger)  # the receiver writes into the ledger's own file
    store = campaigns.SQLiteStore(ledger, durable=False)
    try:
        with serve(WebhookReceiver(events, token=TOKEN)) as port, box.run_in_thread() as base:
            async with AsyncQontak(
                SANDBOX_CLIENT_ID,
                SANDBOX_CLIENT_SECRET,
                base_url=base + "/qontak/chat/v1",
                env_file=None,
                rate_limits=False,
            ) as client:
                await client.webhooks.register(f"http://127.0.0.1:{port}/qontak/{TOKEN}")
                cid = await _run(client, store, box, count)
            deadline = time.monotonic() + 15
            while events.count() < 3 * count and time.monotonic() < deadline:
                time.sleep(0.05)
            assert events.count() == 3 * count
        before = sum(box.requests.values())

        # No credentials in the environment: with every row heard, no client is needed.
        shown = await _status_cli(ledger, cid)
        assert shown["delivery"] == {"read": count}
        assert shown["tracking"]["by_webhook"] == count
        assert shown["tracking"]["by_polling"] == 0
        assert shown["tracking"]["requests"] == 0
        assert shown["refresh"]["webhook_events"] == 3 * count
        assert box.request_count("GET", path_suffix=LOG) == 0
        assert box.request_count("GET", path_suffix=LIST) == 0
        assert sum(box.requests.values()) == before  # status itself asked nothing

        again = await _status_cli(ledger, cid)  # the high-water mark: nothing read twice
        assert again["refresh"]["webhook_events"] == 0
        assert again["tracking"]["high_water_mark"] == shown["tracking"]["high_water_mark"]
        argv = ["campaign", "status", cid, "--db", str(ledger)]
        text = await anyio.to_thread.run_sync(lambda: CliRunner().invoke(app, argv).stdout)
        assert f"settled by webhook {count}, by polling 0; tracking cost 0 API requests" in text
    finally:
        store.close()
        events.close()
        box.close()


@pytest.fixture
async def in_process(
    ledger: Path,
) -> AsyncIterator[tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore, Clock]]:
    clock = Clock()
    box = Sandbox(
        SandboxConfig(clock=clock, rate_limits=RateLimitConfig(enabled=False), faults=FaultConfig())
    )
    store = campaigns.SQLiteStore(ledger, durable=False)
    async with async_sandbox_client(box, rate_limits=False) as (client, _):
        yield client, box, store, clock
    store.close()
    box.close()


def _payloads(box: Sandbox, statuses: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The sandbox's own callback bodies for every message, per number."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in box.store.messages():
        state = message_state(row, box.now(), box.config.delivery_delays)
        out[row.to_number] = [
            box.webhooks.payload(row, status, at)
            for status, at in state.history
            if status in statuses
        ]
    return out


def _post_all(port: int, bodies: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        for body in bodies:
            assert http.post(f"/in/{TOKEN}", json=body).status_code == 200


async def test_duplicated_and_reordered_callbacks_never_move_a_row_back(
    in_process: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore, Clock], ledger: Path
) -> None:
    client, box, store, clock = in_process
    cid = await _run(client, store, box, 30)
    clock.now += 60
    numbers = [normalised(i) for i in range(30)]
    rng = random.Random(11)
    events = SQLiteWebhookStore(ledger)
    try:
        with serve(WebhookReceiver(events, token=TOKEN)) as port:
            late = _payloads(box, {"read"})
            early = _payloads(box, {"sent", "delivered"})
            # Rows 0-14 read first, rows 15-24 only delivered, rows 25-29 never heard of.
            first = [late[n][0] for n in numbers[:15]]
            first += [b for n in numbers[15:25] for b in early[n] if b["status"] == "delivered"]
            first += first[:7]  # duplicates
            rng.shuffle(first)
            _post_all(port, first)
            heard = await campaigns.track_delivery(None, store, cid, webhooks=events)
            assert heard.webhook_events == 25 and heard.from_webhooks == 25

            # Then every earlier status, twice, shuffled: nothing moves back.
            second = [b for n in numbers[:25] for b in early[n]] * 2
            rng.shuffle(second)
            # Not this campaign's: an unknown number, and an older message to a known one.
            stranger = dict(late[numbers[0]][0], external_id="wamid.stranger", id="s1")
            stranger["room"] = dict(stranger["room"], account_uniq_id="6289999999999")
            old = dict(late[numbers[25]][0], external_id="wamid.old", id="o1")
            old["created_at"] = "2020-01-01T00:00:00.000Z"
            _post_all(port, [*second, stranger, old])
            again = await campaigns.track_delivery(None, store, cid, webhooks=events)
            # Duplicates are kept once (rows 15-24's "delivered" came in the first round).
            assert again.webhook_events == len(second) // 2 - 10 + 2
            assert again.from_webhooks == 0
        delivery = {r.to_number: r.delivery_status for r in store.iter_rows(cid)}
        assert all(delivery[n] == "read" for n in numbers[:15])
        assert all(delivery[n] == "delivered" for n in numbers[15:25])
        assert all(delivery[n] is None for n in numbers[25:])
        tracking = campaigns.status(store, cid).tracking
        assert tracking["by_webhook"] == 15 and tracking["requests"] == 0
        assert tracking["high_water_mark"] == events.events_after(0, limit=1000)[-1][0]

        # The rows never heard of are polled once they are older than poll_after; only they.
        logs_before = box.request_count("GET", path_suffix=LOG)
        polled = await campaigns.track_delivery(
            client, store, cid, webhooks=events, poll_after=30, now=clock.now
        )
        assert polled.polled == 5 and polled.requests >= 1
        assert box.request_count("GET", path_suffix=LOG) == logs_before == 0
        tracking = campaigns.status(store, cid).tracking
        assert tracking["by_polling"] == 5 and tracking["requests"] == polled.requests
        delivery = {r.to_number: r.delivery_status for r in store.iter_rows(cid)}
        assert all(delivery[n] == "delivered" for n in numbers[15:25])  # not polled
    finally:
        events.close()


async def test_sandbox_retries_with_backoff_while_the_receiver_is_down(
    in_process: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore, Clock], ledger: Path
) -> None:
    client, box, store, clock = in_process
    events = SQLiteWebhookStore(ledger)
    receiver = WebhookReceiver(events, token=TOKEN)
    with serve(receiver) as port:
        pass  # a port that is ours, now closed: the receiver is down
    try:
        await client.webhooks.register(f"http://127.0.0.1:{port}/in/{TOKEN}")
        cid = await _run(client, store, box, 40)
        clock.now += 60
        dispatcher = box.webhooks
        assert dispatcher.deliver_due() == 0
        assert len(dispatcher.retries) == 40 * 3  # every status waits, per message
        tried = dispatcher.retries.retried
        clock.now += dispatcher.retries.policy.initial / 2
        assert dispatcher.deliver_due() == 0 and dispatcher.retries.retried == tried  # backoff

        with serve(receiver, port=port):
            clock.now += dispatcher.retries.policy.initial
            assert dispatcher.deliver_due() == 40 * 3
        assert len(dispatcher.retries) == 0
        # Per message, the statuses arrived in order.
        for row in store.iter_rows(cid):
            assert row.state is RowState.ACCEPTED
        order: dict[str, list[str]] = {}
        for _, event in events.events_after(0, limit=1000):
            order.setdefault(event.external_id or "", []).append(event.status)
        assert all(s == ["sent", "delivered", "read"] for s in order.values())

        shown = await _status_cli(ledger, cid)
        assert shown["delivery"] == {"read": 40}
        assert shown["tracking"]["by_webhook"] == 40
        assert box.request_count("GET", path_suffix=LOG) == 0
    finally:
        events.close()


async def test_an_event_for_a_row_still_being_sent_waits_for_its_answer(
    in_process: tuple[AsyncQontak, Sandbox, campaigns.SQLiteStore, Clock], ledger: Path
) -> None:
    # The callback can beat the runner's record of the 201: the event must not be skipped.
    client, _, store, clock = in_process
    source = write_customers(ledger.parent / "two.csv", 2)
    template = await client.templates.find("order_update", language="id")
    cid = campaigns.create(
        store, source, template=template, channel=CHANNEL_ID, mapping=MAP
    ).campaign.id
    (row, other) = store.claim(cid, 2, zones=None, now=clock.now)
    events = SQLiteWebhookStore(ledger)
    try:
        body = {
            "id": "e1",
            "status": "sent",
            "external_id": "wamid.first",
            "created_at": "2999-01-01T00:00:00.000Z",
            "room": {"account_uniq_id": row.to_number},
        }
        events.record(parse_event(body))
        stranger = {"account_uniq_id": "62800"}
        events.record(parse_event({**body, "id": "e2", "external_id": "wamid.x", "room": stranger}))
        held = campaigns.apply_webhook_events(store, cid, events, now=clock.now)
        assert held.held and held.events == 0 and held.high_water_mark == 0

        store.transition(cid, row.line, RowState.ACCEPTED, now=clock.now, broadcast_id="b-1")
        store.transition(cid, other.line, RowState.ACCEPTED, now=clock.now, broadcast_id="b-2")
        done = campaigns.apply_webhook_events(store, cid, events, now=clock.now)
        assert not done.held and done.events == 2 and done.updated == 1
        assert done.high_water_mark == 2
        statuses = {r.line: r.delivery_status for r in store.iter_rows(cid)}
        assert statuses == {row.line: "sent", other.line: None}
        # The row now answers to its WhatsApp id, whatever number a later event names.
        events.record(parse_event({**body, "id": "e3", "status": "read", "room": {}}))
        assert campaigns.apply_webhook_events(store, cid, events, now=clock.now).updated == 1
        assert store.iter_rows(cid).__next__().delivery_status == "read"
    finally:
        events.close()
