"""Benchmark: how much of the allowed send rate a campaign uses, and whether it meets 429s.

Starts ``qontak sandbox --rate-limits LIMITS`` on loopback (a subprocess), runs ``qontak
campaign run`` (another subprocess) with the client's own ``--rate-limits`` set to the same
numbers, then prints:

- the send limit's use: sends accepted within the limit's first window (60 s from the first
  accepted send, on the sandbox's ground truth ``/_sandbox/messages`` ``created_at``) ÷ the
  sends that window allows, or the rows when fewer (aim ≥ 0.98). The default run is 98% of
  one window's allowance (588 rows for ``send=600/min``) so that it ends within the window
  even when a 429 costs the client a slot (a full 600 then spills past 60 s); the limits are
  counted per window, so the client may (and does) send them at the ``burst`` rate, and the
  run takes about 30 s;
- the achieved sends/s over the run and its ratio to the send limit's average rate
  (10/s), labelled as such: above 1 exactly when the window's allowance went at burst rate;
- the 429 answers the client saw (its ``--debug`` log, ``status=429``; aim 0). The sandbox
  does not count refusals itself, so they are counted where they arrive.

    python bench/campaign_rate.py [--rows N] [--limits send=600/min,all=1000/min,burst=20/s]
"""

from __future__ import annotations

import argparse
import csv
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

LIMITS = "send=600/min,all=1000/min,burst=20/s"
TARGET_RATIO = 0.98
#: The default run's share of one window's send allowance (see the module docstring).
DEFAULT_SHARE = 0.98


def limit(limits: str, name: str) -> tuple[float, float]:
    """``(count, window seconds)`` of ``name=N/UNIT`` in ``limits``, read by the SDK's own
    parser (``burst`` is the one-second rule of ``all``)."""
    from qontak import parse_rate_limits

    rules = parse_rate_limits(limits) or {}
    scope, pick = ("all", min) if name == "burst" else (name, max)
    found = list(rules.get(scope, ()))
    if not found:
        raise SystemExit(f"no {name}=N/UNIT in {limits!r}")
    rule = pick(found, key=lambda r: r.per)
    return float(rule.requests), rule.per


def _start_sandbox(limits: str, workdir: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "qontak", "sandbox", "--host", "127.0.0.1", "--port", "0"),
            *("--json", "--faults", "off", "--rate-limits", limits),
        ],
        stdout=subprocess.PIPE,
        stderr=(workdir / "sandbox.err").open("w"),
        text=True,
        cwd=workdir,
        env={k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")},
    )
    assert proc.stdout is not None
    text = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        text += line
        try:
            return proc, json.loads(text)
        except ValueError:
            continue
    _stop(proc)
    raise SystemExit(f"the sandbox did not start: {text!r}")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _write_customers(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["phone", "nama", "order"])
        for i in range(rows):
            out.writerow([f"0812-{7000 + i // 10000:04d}-{i % 10000:04d}", f"Budi {i}", f"#{i}"])


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run(rows: int | None = None, limits: str = LIMITS) -> dict[str, Any]:
    """Run a campaign of ``rows`` (default: 98% of one window's send allowance); return the
    figures."""
    sends, window = limit(limits, "send")
    allowed = sends / window
    rows = int(sends * DEFAULT_SHARE) if rows is None else rows
    with tempfile.TemporaryDirectory(prefix="qontak-bench-rate-") as tmp:
        workdir = Path(tmp)
        sandbox, info = _start_sandbox(limits, workdir)
        try:
            _write_customers(workdir / "customers.csv", rows)
            env = {
                **os.environ,
                "QONTAK_CLIENT_ID": info["client_id"],
                "QONTAK_CLIENT_SECRET": info["client_secret"],
            }
            env.pop("QONTAK_RATE_LIMITS", None)
            started = time.monotonic()
            campaign = subprocess.run(
                [
                    *(sys.executable, "-m", "qontak", "campaign", "run", "customers.csv"),
                    *("-t", "order_update", "-l", "id", "--db", "ledger.db", "--json", "--debug"),
                    *("-m", "phone=to_number", "-m", "nama=1", "-m", "order=2"),
                    *("--base-url", info["base_url"], "--rate-limits", limits),
                ],
                capture_output=True,
                text=True,
                cwd=workdir,
                env=env,
                check=False,
            )
            wall = time.monotonic() - started
            with urllib.request.urlopen(info["url"] + "/_sandbox/messages", timeout=30) as r:
                truth = json.load(r)["data"]
        finally:
            _stop(sandbox)
    if campaign.returncode != 0:
        raise SystemExit(
            f"qontak campaign run exited {campaign.returncode}: {campaign.stderr[-2000:]}"
        )
    times = sorted(_at(m["created_at"]) for m in truth)
    throttled = len(re.findall(r"\bstatus=429\b", campaign.stderr))
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    achieved = (len(times) - 1) / span if span else 0.0
    in_window = sum(1 for t in times if t < times[0] + window) if times else 0
    return {
        "rows": rows,
        "accepted": len(times),
        "seconds": round(span, 2),
        "wall_seconds": round(wall, 2),
        "window_seconds": window,
        "window_allows": int(sends),
        "sent_in_window": in_window,
        "ratio": round(in_window / min(sends, rows), 3),
        "sends_per_s": round(achieved, 3),
        "sends_per_s_ratio": round(achieved / allowed, 3),
        "client_429s": throttled,
    }


def main() -> None:
    """Command line: ``--rows`` (default: 98% of the send limit's count), ``--limits``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--limits", default=LIMITS)
    args = parser.parse_args()
    r = run(args.rows, args.limits)
    print(
        f"campaign rate use: {r['accepted']:,} of {r['rows']:,} rows accepted in "
        f"{r['seconds']} s (limits {args.limits})"
    )
    print(
        f"  send limit use: {r['sent_in_window']} sent in the first {r['window_seconds']:g} s "
        f"({r['rows']} rows, {r['window_allows']} allowed)   "
        f"ratio {r['ratio']}   aim >= {TARGET_RATIO}"
    )
    print(
        f"  sends/s over the run {r['sends_per_s']} ÷ the send limit's average "
        f"{r['window_allows'] / r['window_seconds']:g}/s = {r['sends_per_s_ratio']} "
        "(> 1 when the window's allowance went at the burst rate)"
    )
    print(f"  429s seen by the client: {r['client_429s']}   aim 0")


if __name__ == "__main__":
    main()
