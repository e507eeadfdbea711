"""The campaign ``qontak demo`` can end with: twenty customers, one bad row, one duplicate and
one opt-out, sent with faults on, reconciled and reported, on an in-process sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from qontak import campaigns
from qontak.sandbox import FaultConfig, RateLimitConfig, Sandbox
from qontak.testing import async_sandbox_client

from .conftest import CHANNEL_ID, advancing, assert_ledger_matches_ground_truth


@pytest.mark.anyio
async def test_demo_campaign_shows_the_whole_job(tmp_path: Path) -> None:
    box = Sandbox(
        rate_limits=RateLimitConfig(enabled=False),
        faults=FaultConfig(seed=4, lost_response=0.2, error_before=0.1, scope="send"),
        delivery_delays=(0.5, 1.0, 1.5),
    )
    store = campaigns.SQLiteStore(tmp_path / "l.db", durable=False)
    async with async_sandbox_client(box) as (client, sandbox):
        template = await client.templates.find("order_update", language="id")
        outcome = await campaigns.demo_campaign(
            client,
            store,
            template=template,
            channel=CHANNEL_ID,
            directory=tmp_path,
            clock=sandbox.now,
            sleep=advancing(sandbox),
        )
        assert outcome.checked.summary.invalid == 1
        assert outcome.status.rejects == {"invalid": 1, "duplicate": 1, "opted_out": 1}
        assert outcome.status.counts["accepted"] == 19
        assert outcome.reconciled, "the faults should have needed a reconcile"
        assert outcome.report.read_text().startswith("<!doctype html>")
        assert_ledger_matches_ground_truth(store, outcome.campaign_id, sandbox.messages())
    store.close()
    box.close()
