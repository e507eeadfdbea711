"""Reconcile and tracking against the sandbox in process: accepted-but-lost sends are found,
absence only counts after the settling time, --resend-unknown is explicit, the search costs
one list walk plus one log read per unknown candidate, and delivery statuses come back."""

from __future__ import annotations

from pathlib import Path

import pytest

from qontak import campaigns
from qontak.campaigns import RowState
from qontak.sandbox import FaultConfig, RateLimitConfig, Sandbox
from qontak.testing import async_sandbox_client

from .conftest import CHANNEL_ID, advancing, write_customers

MAP = {"phone": "to_number", "nama": "1", "order": "2"}


async def _sent_with_faults(
    tmp_path: Path, faults: FaultConfig, rows: int = 30
) -> tuple[Sandbox, campaigns.SQLiteStore]:
    box = Sandbox(
        rate_limits=RateLimitConfig(enabled=False), faults=faults, delivery_delays=(1.0, 2.0, 3.0)
    )
    store = campaigns.SQLiteStore(tmp_path / "l.db", durable=False)
    return box, store


@pytest.mark.anyio
async def test_lost_responses_are_found_and_absent_rows_wait_for_the_settling_time(
    tmp_path: Path,
) -> None:
    # Every send is acted on but half the answers are lost; the other half fail before
    # acting (503): both look the same to the client (unknown).
    box, store = await _sent_with_faults(
        tmp_path, FaultConfig(seed=3, lost_response=0.5, error_before=0.5, scope="send")
    )
    async with async_sandbox_client(box) as (client, sandbox):
        template = await client.templates.find("order_update", language="id")
        created = campaigns.create(
            store,
            write_customers(tmp_path / "c.csv", 30),
            template=template,
            channel=CHANNEL_ID,
            mapping=MAP,
        )
        cid = created.campaign.id
        options = campaigns.RunOptions(clock=sandbox.now, sleep=advancing(sandbox))
        first = await campaigns.run(client, store, cid, options)
        assert first.counts["unknown"] == 30
        landed = {m["to_number"] for m in sandbox.messages()}
        sandbox.set_faults(FaultConfig())

        early = await campaigns.reconcile(client, store, cid, settle_after=60, now=sandbox.now())
        assert early.accepted == len(landed) and early.absent == 0
        assert len(early.waiting) == 30 - len(landed)
        assert all(w["settle_at"] > sandbox.now() for w in early.waiting)
        # One page of the broadcast list, then one log read per broadcast not in the ledger.
        assert early.requests == 1 + len(landed)

        sandbox.advance(61)
        late = await campaigns.reconcile(client, store, cid, settle_after=60, now=sandbox.now())
        assert late.absent == 30 - len(landed) and not late.waiting
        assert late.requests == 1  # every broadcast is known now: no log read
        for row in store.iter_rows(cid):
            assert (row.state is RowState.ACCEPTED) == (row.to_number in landed)

        done = await campaigns.run(client, store, cid, options)
        assert done.counts["accepted"] == 30 and len(sandbox.messages()) == 30
    store.close()
    box.close()


@pytest.mark.anyio
async def test_resend_unknown_is_the_callers_explicit_word(tmp_path: Path) -> None:
    box, store = await _sent_with_faults(
        tmp_path, FaultConfig(seed=1, error_before=1.0, scope="send")
    )
    async with async_sandbox_client(box) as (client, sandbox):
        template = await client.templates.find("order_update", language="id")
        created = campaigns.create(
            store,
            write_customers(tmp_path / "c.csv", 5),
            template=template,
            channel=CHANNEL_ID,
            mapping=MAP,
        )
        cid = created.campaign.id
        options = campaigns.RunOptions(clock=sandbox.now, sleep=advancing(sandbox))
        await campaigns.run(client, store, cid, options)
        result = await campaigns.reconcile(
            client, store, cid, settle_after=600, resend_unknown=True, now=sandbox.now()
        )
        assert result.resent == 5 and store.counts(cid)["pending"] == 5
    store.close()
    box.close()


@pytest.mark.anyio
async def test_delivery_statuses_and_whatsapp_errors_come_back_from_the_list(
    tmp_path: Path,
) -> None:
    box, store = await _sent_with_faults(tmp_path, FaultConfig())
    source = write_customers(tmp_path / "c.csv", 150, extra=[["0812-3413-1026", "Gone", "#x"]])
    async with async_sandbox_client(box) as (client, sandbox):
        template = await client.templates.find("order_update", language="id")
        created = campaigns.create(
            store, source, template=template, channel=CHANNEL_ID, mapping=MAP
        )
        cid = created.campaign.id
        options = campaigns.RunOptions(clock=sandbox.now, sleep=advancing(sandbox))
        await campaigns.run(client, store, cid, options)
        sandbox.advance(10)  # everything read, or failed with its WhatsApp error
        tracked = await campaigns.refresh_delivery(client, store, cid, max_requests=10)
        assert tracked.complete and tracked.updated == 151
        assert tracked.requests == 2 + 1  # two pages of the list, one log for the failure
        report = campaigns.status(store, cid)
        assert report.delivery == {"failed": 1, "read": 150}
        [failure] = report.failures
        assert failure["kind"] == "delivery" and failure["code"] == "131026"
        # A budget of one request stops early and says so.
        store.set_delivery(
            cid, [(r.broadcast_id or "", "sent", None) for r in store.iter_rows(cid)]
        )
        partial = await campaigns.refresh_delivery(client, store, cid, max_requests=1)
        assert not partial.complete and partial.requests == 1
    store.close()
    box.close()
