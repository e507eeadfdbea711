"""Benchmark: the combined send rate of N campaign workers sharing one budget, and their 429s.

Starts a throw-away PostgreSQL cluster (the test suite's ``tests/postgres.py``; needs Debian's
``postgresql`` package) and ``qontak sandbox --rate-limits LIMITS --faults off`` on loopback,
creates one campaign in the PostgreSQL ledger (the Python API, nothing sent), then runs N
``qontak campaign worker --db URL --campaign ID --rate-limits LIMITS`` processes at once. They
share the account's budget through :class:`qontak.SharedRateLimiter` in the ledger's database
(the worker's default store). Then it prints, from the sandbox's ground truth
(``/_sandbox/messages`` ``created_at`` of the accepted messages):

- the send limit's use: sends accepted within the limit's first window (60 s from the first
  accepted send) ÷ the rows, or ÷ the window's allowance when there are more rows (aim ≥ 0.95);
- the combined sends/s over the run, and its ratio to the send limit's average rate (10/s for
  ``send=600/min``). The default run (98% of what that average allows in 30 s: 294 rows) fits
  in one window, so the limits let it go at the ``burst`` rate and this ratio is above 1 when
  the workers together use the burst; hence also
- the combined sends/s ÷ the burst limit (20/s), and ÷ the ceiling the client holds itself to
  (the burst window is :data:`~qontak._ratelimit.SAFETY_MARGIN` longer than the server's:
  20 per 1.1 s): how much of one budget N processes use together. The first burst goes at
  once, so on a short run this can pass 1 a little (20 · (⌊T / 1.1⌋ + 1) sends fit in T s);
- the 429 answers the workers saw (their ``--debug`` logs: ``status=429`` on a retried answer,
  ``error=RateLimitError`` on a final one; aim 0). The sandbox does not count refusals itself.

    python bench/workers_rate.py [--workers N] [--rows N] [--limits send=600/min,...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from campaign_rate import _at, _start_sandbox, _stop, _write_customers, limit  # noqa: E402
from tests.postgres import throwaway_cluster  # noqa: E402

LIMITS = "send=600/min,all=1000/min,burst=20/s"
WORKERS = 3
TARGET_RATIO = 0.95
#: The default run: this share of what the send limit's average rate allows in SECONDS.
DEFAULT_SHARE = 0.98
SECONDS = 30.0


def _env(info: dict[str, Any]) -> dict[str, str]:
    # Nothing from the caller's QONTAK_* settings (a rate limit store, an env file's
    # credentials, sandbox faults) may change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
    env.update(
        QONTAK_CLIENT_ID=info["client_id"],
        QONTAK_CLIENT_SECRET=info["client_secret"],
        QONTAK_BASE_URL=info["base_url"],
    )
    return env


def _create_campaign(info: dict[str, Any], db: str, path: Path) -> str:
    """One campaign in the ledger at ``db``, imported from ``path``; nothing is sent."""
    from qontak import Qontak, campaigns

    store = campaigns.open_ledger(db)
    try:
        with Qontak(
            info["client_id"],
            info["client_secret"],
            base_url=info["base_url"],
            env_file=None,
            rate_limits=False,
        ) as client:
            template = client.templates.find("order_update", language="id")
            channel = next(iter(client.channels.list()))
        created = campaigns.create(
            store,
            path,
            template=template,
            channel=channel,
            mapping={"phone": "to_number", "nama": "1", "order": "2"},
        )
        return created.campaign.id
    finally:
        store.close()


_LOGGED = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.MULTILINE)
_REFUSED = re.compile(r"\bstatus=429\b|\berror=RateLimitError\b")


def _throttled(logs: str) -> tuple[int, list[float]]:
    """The 429s in the workers' ``--debug`` logs (a retried one logs ``status=429``, a final
    one ``error=RateLimitError``) and when each came, in seconds after the first logged
    request of any worker (all workers log with this host's clock)."""
    stamps: list[float] = []
    refused: list[float] = []
    for line in logs.splitlines():
        found = _LOGGED.match(line)
        if found is None:
            continue
        moment = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        stamps.append(moment)
        if _REFUSED.search(line):
            refused.append(moment)
    first = min(stamps, default=0.0)
    return len(refused), sorted(round(t - first, 2) for t in refused)


def run(workers: int = WORKERS, rows: int | None = None, limits: str = LIMITS) -> dict[str, Any]:
    """Send one campaign of ``rows`` (default: 98% of what the send limit's average rate
    allows in 30 s) with ``workers`` worker processes sharing one budget; return the figures."""
    sends, window = limit(limits, "send")
    burst, burst_window = limit(limits, "burst")
    from qontak._ratelimit import SAFETY_MARGIN, SAFETY_MARGIN_MIN_SECONDS

    average = sends / window
    burst_rate = burst / burst_window
    ceiling = burst / (burst_window + max(burst_window * SAFETY_MARGIN, SAFETY_MARGIN_MIN_SECONDS))
    rows = int(average * SECONDS * DEFAULT_SHARE) if rows is None else rows
    with (
        tempfile.TemporaryDirectory(prefix="qontak-bench-workers-") as tmp,
        throwaway_cluster() as cluster,
    ):
        workdir = Path(tmp)
        db = cluster.createdb("bench_workers")
        sandbox, info = _start_sandbox(limits, workdir)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            _write_customers(workdir / "customers.csv", rows)
            cid = _create_campaign(info, db, workdir / "customers.csv")
            env = _env(info)
            logs = [workdir / f"worker{i}.log" for i in range(workers)]
            started = time.monotonic()
            for log in logs:
                with log.open("wb") as out:
                    procs.append(
                        subprocess.Popen(
                            [
                                *(sys.executable, "-m", "qontak", "campaign", "worker"),
                                *("--db", db, "--campaign", cid, "--rate-limits", limits),
                                "--debug",
                            ],
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            cwd=workdir,
                            env=env,
                        )
                    )
            # Three times what the limits need (the burst rate within one send window, the
            # send limit's average past it), plus time to start, before giving up.
            needs = rows / (burst_rate if rows <= sends else average)
            deadline = started + 30 + 3 * needs
            for p in procs:
                p.wait(timeout=max(deadline - time.monotonic(), 1))
            wall = time.monotonic() - started
            codes = [p.returncode for p in procs]
            with urllib.request.urlopen(info["url"] + "/_sandbox/messages", timeout=30) as r:
                truth = json.load(r)["data"]
            text = "\n".join(log.read_text(errors="replace") for log in logs)
        finally:
            for p in procs:
                _stop(p)
            _stop(sandbox)
    if any(codes):
        raise SystemExit(f"a worker exited {codes}: {text[-2000:]}")
    times = sorted(_at(m["created_at"]) for m in truth)
    throttled, at = _throttled(text)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    achieved = (len(times) - 1) / span if span else 0.0
    in_window = sum(1 for t in times if t < times[0] + window) if times else 0
    return {
        "workers": workers,
        "rows": rows,
        "accepted": len(times),
        "seconds": round(span, 2),
        "wall_seconds": round(wall, 2),
        "window_seconds": window,
        "window_allows": int(sends),
        "sent_in_window": in_window,
        "ratio": round(in_window / min(sends, rows), 3),
        "sends_per_s": round(achieved, 3),
        "send_average": average,
        "sends_per_s_ratio": round(achieved / average, 3),
        "burst_rate": burst_rate,
        "burst_ratio": round(achieved / burst_rate, 3),
        "client_ceiling": round(ceiling, 3),
        "ceiling_ratio": round(achieved / ceiling, 3),
        "worker_429s": throttled,
        "worker_429s_at": at,
    }


def report(r: dict[str, Any], limits: str = LIMITS) -> list[str]:
    """The figures as printed lines."""
    return [
        f"{r['workers']} campaign workers, one budget in PostgreSQL: {r['accepted']:,} of "
        f"{r['rows']:,} rows accepted in {r['seconds']} s (limits {limits})",
        f"  send limit use: {r['sent_in_window']} sent in the first {r['window_seconds']:g} s "
        f"({r['rows']} rows, {r['window_allows']} allowed)   ratio {r['ratio']}   "
        f"aim >= {TARGET_RATIO}",
        f"  combined sends/s {r['sends_per_s']} ÷ the send limit's average "
        f"{r['send_average']:g}/s = {r['sends_per_s_ratio']} "
        "(> 1 when the window's allowance went at the burst rate)",
        f"  combined sends/s {r['sends_per_s']} ÷ the burst limit {r['burst_rate']:g}/s = "
        f"{r['burst_ratio']}; ÷ the client's own ceiling {r['client_ceiling']:g}/s "
        f"(burst window + safety margin) = {r['ceiling_ratio']}",
        f"  429s seen by the workers: {r['worker_429s']}   aim 0"
        + (
            f"   (at {', '.join(f'{t:g}' for t in r['worker_429s_at'])} s after the "
            "workers' first request)"
            if r["worker_429s_at"]
            else ""
        ),
    ]


def main() -> None:
    """Command line: ``--workers``, ``--rows``, ``--limits``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--limits", default=LIMITS)
    args = parser.parse_args()
    print("\n".join(report(run(args.workers, args.rows, args.limits), args.limits)))


if __name__ == "__main__":
    main()
