"""A campaign: one template sent to a file of customers, resumable, never twice, never lost.

The steps a script (or ``qontak campaign run``) takes: check the file, import it into the
ledger (a SQLite file), send, settle any row whose outcome is unknown, read the delivery
statuses back, and write a report. Re-running the script continues the same campaign.

Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/campaign.py
"""

from __future__ import annotations

import asyncio
import csv
import sys
import tempfile
import time
from pathlib import Path

from qontak import AsyncQontak, campaigns, normalize_phone


def write_customers(path: Path) -> None:
    """Ten customers, one bad number, one duplicate (what real exports look like)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["phone", "nama", "pesanan"])
        for i in range(10):
            out.writerow([f"0812-5550-{i:04d}", f"Pelanggan {i}", f"#A{i:03d}"])
        out.writerow(["0812", "Nomor salah", "#BAD"])  # too short: reported, not sent
        out.writerow(["0812-5550-0001", "Dobel", "#DUP"])  # a duplicate: first row wins


async def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="qontak-campaign-"))
    customers = workdir / "customers.csv"
    write_customers(customers)
    store = campaigns.open_ledger(str(workdir / "campaigns.db"))
    # Someone replied STOP: an opted-out number is never contacted, by any campaign.
    store.add_optouts(
        [normalize_phone("0812-5550-0007")],
        reason="replied STOP",
        now=time.time(),
    )
    mapping = {"phone": "to_number", "nama": "1", "pesanan": "2"}

    async with AsyncQontak() as client:
        template = await client.templates.find("order_update", language="id")
        channel = (await client.channels.list())[0]

        checked = campaigns.check(
            customers, template=template, channel=channel, mapping=mapping, optouts=store
        )
        for reject in checked.rejects:
            print(f"line {reject.line}: {reject.field}: {reject.reason}")

        created = campaigns.create(
            store,
            customers,
            template=template,
            channel=channel,
            mapping=mapping,
            skip_invalid=True,  # send the valid rows; the bad one stays in the report
        )
        cid = created.campaign.id
        print("campaign", cid)

        result = await campaigns.run(client, store, cid)
        if result.counts["unknown"]:
            # Some sends may or may not have been accepted: ask the API, never guess.
            settled = await campaigns.reconcile(client, store, cid, settle_after=60)
            print(f"reconciled: {settled.accepted} accepted, {settled.absent} to send again")
            if settled.absent:
                result = await campaigns.run(client, store, cid)

        await asyncio.sleep(1)  # let a few delivery statuses arrive
        await campaigns.refresh_delivery(client, store, cid)

    status = campaigns.status(store, cid)
    print("rows:", status.counts)
    print("delivery:", status.delivery)
    print("not imported:", status.rejects)
    report = campaigns.write_report(store, cid, workdir / "report.html")
    print("report:", report)
    store.close()
    ok = status.counts["accepted"] == 9 and status.rejects == {
        "invalid": 1,
        "duplicate": 1,
        "opted_out": 1,
    }
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
