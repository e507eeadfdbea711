"""A small end-to-end campaign for ``qontak demo``: a generated file of customers with one
bad row, one duplicate and one opt-out, sent, reconciled, tracked and reported."""

from __future__ import annotations

import csv
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from .._client import AsyncQontak
from ..models import Channel, Template
from ._create import CheckReport, check, create
from ._reconcile import ReconcileResult, reconcile
from ._report import write_report
from ._runner import RunOptions, RunResult, run_campaign
from ._store import Store
from ._tracking import StatusReport, refresh_delivery, status

__all__ = ["DemoOutcome", "demo_campaign", "write_demo_customers"]

#: Column mapping of the generated file (for the ``order_update`` template: {{1}}, {{2}}).
DEMO_MAPPING = {"phone": "to_number", "nama": "to_name", "nama_depan": "1", "pesanan": "2"}
_NAMES = ("Budi", "Siti", "Andi", "Dewi", "Rina", "Agus", "Putri", "Joko", "Wati", "Eko")


def write_demo_customers(path: Path, count: int = 20) -> str:
    """Write ``count`` customers (plus a bad row and a duplicate) as CSV; returns the number
    to put on the opt-out list."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["phone", "nama", "nama_depan", "pesanan"])
        for i in range(count):
            first = _NAMES[i % len(_NAMES)]
            out.writerow([f"0812-7770-{i:04d}", f"{first} {i}", first, f"#D{i:04d}"])
        out.writerow(["0812-77", "Nomor Salah", "Salah", "#BAD"])
        out.writerow(["0812-7770-0002", "Andi lagi", "Andi", "#DUP"])
    return "6281277700005"


@dataclass
class DemoOutcome:
    """Everything the demo shows."""

    campaign_id: str
    checked: CheckReport
    runs: list[RunResult]
    reconciled: list[ReconcileResult]
    status: StatusReport
    report: Path

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "campaign_id": self.campaign_id,
            "check": self.checked.to_dict(),
            "runs": [r.to_dict() for r in self.runs],
            "reconciled": [r.to_dict() for r in self.reconciled],
            "status": self.status.to_dict(),
            "report": str(self.report),
        }


async def demo_campaign(
    client: AsyncQontak,
    store: Store,
    *,
    template: Template,
    channel: Channel | str,
    directory: Path,
    count: int = 20,
    settle_after: float = 2.0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> DemoOutcome:
    """Run the whole job on a generated file (``order_update``-shaped template): check,
    import (valid rows only), send, reconcile the unknown rows (waiting ``settle_after``
    seconds of ``clock`` first), send what reconcile proved absent, read delivery
    statuses, and write ``directory/campaign-report.html``."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "demo-customers.csv"
    opted = write_demo_customers(source, count)
    store.add_optouts([opted], reason="replied STOP (demo)", now=clock())
    checked = check(source, template=template, channel=channel, mapping=DEMO_MAPPING, optouts=store)
    created = create(
        store,
        source,
        template=template,
        channel=channel,
        mapping=DEMO_MAPPING,
        name="qontak demo campaign",
        skip_invalid=True,
        now=clock(),
    )
    cid = created.campaign.id
    options = RunOptions(clock=clock, sleep=sleep, on_event=on_event)
    runs = [await run_campaign(client, store, cid, options)]
    settled: list[ReconcileResult] = []
    for _ in range(3):
        counts = store.counts(cid)
        if not counts["unknown"]:
            break
        await sleep(settle_after)
        settled.append(await reconcile(client, store, cid, settle_after=settle_after, now=clock()))
        if store.counts(cid)["pending"]:
            runs.append(await run_campaign(client, store, cid, options))
    await refresh_delivery(client, store, cid)
    report = write_report(store, cid, directory / "campaign-report.html")
    return DemoOutcome(cid, checked, runs, settled, status(store, cid), report)
