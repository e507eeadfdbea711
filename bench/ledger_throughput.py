"""Ledger throughput: claims and updates (rows/s) on PostgreSQL vs SQLite. Not a test.

Runs alone (``python bench/ledger_throughput.py [ROWS]``): starts a throw-away PostgreSQL
cluster with the test suite's helper (``tests/postgres.py``; needs Debian's ``postgresql``
package), fills one campaign per backend, then times what a run does per row:

- **claim**: one row at a time, as the runner claims (``pending → sending``, committed);
- **update**: each claimed row's outcome (``sending → accepted``, committed);
- **4 claimers** (PostgreSQL only): four connections claiming batches of 10 at once with
  ``FOR UPDATE SKIP LOCKED`` — what several workers see.

Like for like: the test cluster runs with ``fsync=off``, so SQLite runs with
``durable=False`` (``synchronous=NORMAL``). Figures on a shared machine are noisy: read the
ratios, not the absolute numbers.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.postgres import throwaway_cluster

from qontak.campaigns import Campaign, PostgresStore, RowState, SQLiteStore, Store
from qontak.campaigns._ledger import NewRow


def _fill(store: Store, cid: str, rows: int) -> None:
    store.create_campaign(
        Campaign(
            id=cid,
            name="bench",
            created_at=time.time(),
            template_id="t",
            template_name="order_update",
            language="id",
            channel_id="ch",
        )
    )
    batch: list[NewRow] = []
    for i in range(rows):
        batch.append(
            NewRow(
                line=i + 2,
                to_number=f"62812{i:08d}",
                to_name=f"Budi {i}",
                parameters={"body": [{"key": "1", "value_text": f"Budi {i}"}]},
                zones="Asia/Jakarta",
            )
        )
        if len(batch) == 1000:
            store.add_rows(cid, batch)
            batch = []
    store.add_rows(cid, batch)


def _timed(work: Callable[[], int]) -> float:
    start = time.perf_counter()
    done = work()
    return done / max(time.perf_counter() - start, 1e-9)


def _claim_and_update(store: Store, cid: str) -> tuple[float, float]:
    claimed: list[int] = []

    def claim() -> int:
        while rows := store.claim(cid, 1, zones=None, now=time.time()):
            claimed.extend(r.line for r in rows)
        return len(claimed)

    def update() -> int:
        for line in claimed:
            store.transition(cid, line, RowState.ACCEPTED, now=time.time(), broadcast_id=f"b{line}")
        return len(claimed)

    return _timed(claim), _timed(update)


def _parallel_claims(url: str, cid: str, workers: int = 4) -> float:
    stores = [PostgresStore(url) for _ in range(workers)]
    counts = [0] * workers

    def work(i: int) -> None:
        while rows := stores[i].claim(cid, 10, zones=None, now=time.time()):
            counts[i] += len(rows)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for s in stores:
        s.close()
    return sum(counts) / max(elapsed, 1e-9)


def main() -> None:
    """Print the figures."""
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteStore(Path(tmp) / "bench.db", durable=False)
        _fill(sqlite, "c-sqlite", rows)
        s_claim, s_update = _claim_and_update(sqlite, "c-sqlite")
        sqlite.close()
    with throwaway_cluster() as cluster:
        url = cluster.createdb("bench")
        pg = PostgresStore(url)
        _fill(pg, "c-pg", rows)
        p_claim, p_update = _claim_and_update(pg, "c-pg")
        _fill(pg, "c-pg-4", rows)
        p_parallel = _parallel_claims(url, "c-pg-4")
        pg.close()
    print(f"ledger throughput, {rows} rows (rows/s; PostgreSQL ÷ SQLite)")
    print(
        f"  claim (1 row)   sqlite {s_claim:9.0f}   postgres {p_claim:9.0f}   "
        f"{p_claim / s_claim:.2f}"
    )
    print(
        f"  update          sqlite {s_update:9.0f}   postgres {p_update:9.0f}   "
        f"{p_update / s_update:.2f}"
    )
    print(
        f"  4 claimers x10  postgres {p_parallel:9.0f}   "
        f"{p_parallel / s_claim:.2f} x SQLite's single claimer"
    )
    print("  (for scale: Qontak's documented send limit is 1 row/s per account)")


if __name__ == "__main__":
    main()
