"""A campaign of a few thousand rows against the real sandbox with every fault on (5xx
before and after acting, 429, dropped connections, lost responses; seeded): each row is
accepted at most once, and after reconcile the ledger says exactly what the server did."""

from __future__ import annotations

from pathlib import Path

import pytest

from qontak import campaigns
from qontak.sandbox import FaultConfig, RateLimitConfig, Sandbox
from qontak.testing import async_sandbox_client

from .conftest import (
    ALL_FAULTS,
    CHANNEL_ID,
    advancing,
    assert_ledger_matches_ground_truth,
    write_customers,
)

ROWS = 1500


@pytest.mark.anyio
@pytest.mark.parametrize("seed", [11])
async def test_every_fault_on_each_row_accepted_once_and_ledger_matches(
    tmp_path: Path, seed: int
) -> None:
    box = Sandbox(
        rate_limits=RateLimitConfig(enabled=False),
        faults=FaultConfig(seed=seed, **ALL_FAULTS),
    )
    # Not fsynced: this test is about the protocol, not power cuts (fsync would triple its time).
    store = campaigns.SQLiteStore(tmp_path / "ledger.db", durable=False)
    source = write_customers(tmp_path / "customers.csv", ROWS)
    async with async_sandbox_client(box, max_retries=8) as (client, sandbox):
        template = await client.templates.find("order_update", language="id")
        created = campaigns.create(
            store,
            source,
            template=template,
            channel=CHANNEL_ID,
            mapping={"phone": "to_number", "nama": "1", "order": "2"},
        )
        cid = created.campaign.id
        options = campaigns.RunOptions(clock=sandbox.now, sleep=advancing(sandbox), concurrency=8)
        unknown_seen = 0
        for _ in range(6):
            await campaigns.run(client, store, cid, options)
            unknown_seen += store.counts(cid)["unknown"]
            sandbox.advance(120)  # past settle_after: absence is proof now
            await campaigns.reconcile(client, store, cid, settle_after=60, now=sandbox.now())
            counts = store.counts(cid)
            if counts["pending"] == 0 and counts["unknown"] == 0:
                break
        assert_ledger_matches_ground_truth(store, cid, sandbox.messages())
        assert unknown_seen > 0, "the faults should have left some rows unknown"
        assert store.counts(cid)["accepted"] == ROWS
    store.close()
    box.close()
