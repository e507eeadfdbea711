"""Soak: runs of a minute at a matched limit, in-memory and shared limiters; every 429 counted.

Each run starts a fresh ``qontak sandbox --rate-limits LIMITS --faults off`` on loopback (a
subprocess, so its minute windows start empty) and drives it for ``--seconds`` with the
client's own limits set to the same text:

- ``memory``: one process, ``AsyncQontak`` with the in-memory limiter, ``--tasks`` tasks;
- ``shared``: ``--processes`` processes, each an ``AsyncQontak`` with its share of the tasks,
  one budget in a SQLite file through :class:`qontak.SharedRateLimiter`.

Half the tasks send (``send_direct``: the ``send`` limit and ``all``), half read a template
(``all`` only), each as fast as its limiter lets it, so every limit binds: ``burst`` from the
start, ``send`` after half a minute, ``all`` near the end. Retries are off (``max_retries=0``),
so every 429 the sandbox answers reaches the load as a :class:`qontak.RateLimitError` and is
counted. A run prints the sends the sandbox accepted (its ground truth), the reads, the 429s,
and the achieved rate as a fraction of each per-minute limit (the client's windows are
:data:`~qontak._ratelimit.SAFETY_MARGIN` longer than the server's, so a minute's run tops out
just under 1.0). The figures go to ``docs/soak.md`` (``--out``); the exit code is 1 when any
run saw a 429.

    python bench/soak.py [--runs 20] [--seconds 60] [--modes memory,shared] [--processes 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from campaign_rate import _start_sandbox, _stop, limit  # noqa: E402

LIMITS = "send=600/min,all=1000/min,burst=20/s"
RUNS = 20
SECONDS = 60.0
MODES = ("memory", "shared")
PROCESSES = 4
TASKS = 16
OUT = ROOT / "docs" / "soak.md"


# -- one load process -------------------------------------------------------------------------
async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    """Send and read as fast as the limiter allows until ``seconds`` have passed."""
    from _clients import TEMPLATE_ID, prebuilt

    from qontak import AsyncQontak, RateLimitError, SharedRateLimiter, parse_rate_limits

    limiter = None
    if spec["store"]:
        limiter = SharedRateLimiter(spec["store"], limits=parse_rate_limits(spec["limits"]))
    msgs = prebuilt()
    counts: Counter[str] = Counter()
    async with AsyncQontak(
        spec["client_id"],
        spec["client_secret"],
        base_url=spec["base_url"],
        env_file=None,
        rate_limits=spec["limits"],
        rate_limiter=limiter,
        max_retries=0,
    ) as client:
        # Ready, then wait for the word: every process of a run starts together.
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        deadline = time.monotonic() + spec["seconds"]

        async def task(i: int) -> None:
            n = i
            while time.monotonic() < deadline:
                n += spec["tasks"]
                try:
                    if i % 2 == 0:
                        await client.broadcasts.send_direct(msgs[n % len(msgs)])
                        counts["sends"] += 1
                    else:
                        await client.templates.get(TEMPLATE_ID)
                        counts["gets"] += 1
                except RateLimitError:
                    counts["429"] += 1
                except Exception as exc:  # counted and shown, never hidden
                    counts[f"error:{type(exc).__name__}"] += 1

        started = time.monotonic()
        await asyncio.gather(*(task(i) for i in range(spec["tasks"])))
        counts["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    if limiter is not None:
        limiter.close()
    return dict(counts)


def _child() -> None:
    spec = json.loads(sys.stdin.readline())
    print(json.dumps(asyncio.run(_load(spec))), flush=True)


# -- one run ----------------------------------------------------------------------------------
def run_once(mode: str, seconds: float, limits: str, processes: int, tasks: int) -> dict[str, Any]:
    """One run of ``mode`` against a fresh sandbox; its figures."""
    nproc = processes if mode == "shared" else 1
    with tempfile.TemporaryDirectory(prefix="qontak-soak-") as tmp:
        workdir = Path(tmp)
        sandbox, info = _start_sandbox(limits, workdir)
        children: list[subprocess.Popen[str]] = []
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
            for i in range(nproc):
                share = tasks // nproc + (1 if i < tasks % nproc else 0)
                spec = {
                    "client_id": info["client_id"],
                    "client_secret": info["client_secret"],
                    "base_url": info["base_url"],
                    "limits": limits,
                    "store": f"sqlite:///{workdir / 'limits.db'}" if mode == "shared" else None,
                    "seconds": seconds,
                    "tasks": max(2, share),
                }
                child = subprocess.Popen(
                    [sys.executable, str(Path(__file__)), "--child"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=workdir,
                    env=env,
                )
                assert child.stdin is not None
                child.stdin.write(json.dumps(spec) + "\n")
                child.stdin.flush()
                children.append(child)
            for child in children:
                assert child.stdout is not None
                line = child.stdout.readline()
                if line.strip() != "ready":
                    raise SystemExit(f"a load process did not start: {line!r}")
            started = time.monotonic()
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            results = []
            for child in children:
                out, _ = child.communicate(timeout=seconds + 120)
                if child.returncode != 0:
                    raise SystemExit(f"a load process exited {child.returncode}")
                results.append(json.loads(out.strip().splitlines()[-1]))
            wall = time.monotonic() - started
            with urllib.request.urlopen(info["url"] + "/_sandbox/messages", timeout=60) as r:
                accepted = len(json.load(r)["data"])
        finally:
            for child in children:
                _stop(child)
            _stop(sandbox)
    total: Counter[str] = Counter()
    for r in results:
        total.update({k: v for k, v in r.items() if k != "elapsed_ms"})
    sends, send_window = limit(limits, "send")
    overall, all_window = limit(limits, "all")
    # What the per-minute limits allow in the run's wall time (one window at least: a run
    # shorter than a window may use the whole window's allowance).
    send_allowed = sends * max(1.0, wall / send_window)
    all_allowed = overall * max(1.0, wall / all_window)
    errors = {k[len("error:") :]: v for k, v in total.items() if k.startswith("error:")}
    return {
        "mode": mode,
        "processes": nproc,
        "tasks": sum(
            max(2, tasks // nproc + (1 if i < tasks % nproc else 0)) for i in range(nproc)
        ),
        "seconds": round(wall, 1),
        "sends_client": total["sends"],
        "sends_accepted": accepted,
        "gets": total["gets"],
        "requests": accepted + total["gets"],
        "send_ratio": round(accepted / send_allowed, 3),
        "all_ratio": round((accepted + total["gets"]) / all_allowed, 3),
        "429s": total["429"],
        "errors": errors,
    }


def _line(r: dict[str, Any]) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "none"
    return (
        f"{r['mode']:<7} {r['processes']} proc {r['seconds']:>5.1f} s"
        f"  sends {r['sends_accepted']:>4}"
        f" ({r['send_ratio']:.3f} of send)  requests {r['requests']:>5}"
        f" ({r['all_ratio']:.3f} of all)  429s {r['429s']}  other errors: {errors}"
    )


def _machine() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.platform()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"load average at the end {load}, commit {commit or 'unknown'}"
    )


def write_report(path: Path, results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """``docs/soak.md``: machine, date, every run's figures, how to reproduce."""
    lines = [
        "# Soak: runs of a minute at a matched limit",
        "",
        "Written by `bench/soak.py` (`make soak`). Each run starts a fresh sandbox with "
        f"`--rate-limits {args.limits}` and drives it for {args.seconds:g} s with the client's "
        "limits set to the same text, half the tasks sending (`send_direct`), half reading a "
        "template, retries off so every 429 is counted. `memory`: one process, the in-memory "
        f"limiter, {args.tasks} tasks. `shared`: {args.processes} processes sharing one budget "
        "in a SQLite file (`SharedRateLimiter`), the same tasks split between them. The ratios "
        "are the requests the sandbox accepted ÷ what its per-minute limit allows in the run's "
        "wall time (the client's windows are 2 % longer than the server's, so a minute's run "
        "tops out just under 1.0).",
        "",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {_machine()}",
        f"- Reproduce: `make soak` (= `python bench/soak.py --runs {RUNS} --seconds {SECONDS:g}`); "
        f"this run: `python bench/soak.py --runs {args.runs} --seconds {args.seconds:g} "
        f"--modes {','.join(args.modes)} --processes {args.processes} --tasks {args.tasks}`",
        "",
    ]
    for mode in args.modes:
        mine = [r for r in results if r["mode"] == mode]
        if not mine:
            continue
        refused = sum(r["429s"] for r in mine)
        errors = sum(sum(r["errors"].values()) for r in mine)
        lo_send = min(r["send_ratio"] for r in mine)
        lo_all = min(r["all_ratio"] for r in mine)
        lines += [
            f"## {mode}: {len(mine)} runs, {refused} × 429, {errors} other errors",
            "",
            f"Lowest use of the limits: send {lo_send:.3f}, all {lo_all:.3f}.",
            "",
            "| run | processes | seconds | sends accepted | ÷ send limit | requests | "
            "÷ all limit | 429s | other errors |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for i, r in enumerate(mine, 1):
            errs = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "0"
            lines.append(
                f"| {i} | {r['processes']} | {r['seconds']:.1f} | {r['sends_accepted']} | "
                f"{r['send_ratio']:.3f} | {r['requests']} | {r['all_ratio']:.3f} | "
                f"{r['429s']} | {errs} |"
            )
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    """Command line: ``--runs`` (of each mode), ``--seconds``, ``--limits``, ``--modes``,
    ``--processes``, ``--tasks``, ``--out``."""
    if "--child" in sys.argv[1:]:
        _child()
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each mode")
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--limits", default=LIMITS)
    parser.add_argument("--modes", type=lambda s: s.split(","), default=list(MODES))
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--tasks", type=int, default=TASKS)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    for mode in args.modes:
        if mode not in MODES:
            parser.error(f"--modes: unknown mode {mode!r} (use {', '.join(MODES)})")
    results: list[dict[str, Any]] = []
    for i in range(args.runs):
        for mode in args.modes:  # alternated, so a slow spell of the host hits both
            r = run_once(mode, args.seconds, args.limits, args.processes, args.tasks)
            results.append(r)
            print(f"run {i + 1:>2}/{args.runs} {_line(r)}", flush=True)
            write_report(args.out, results, args)  # kept up to date: a cut run keeps its figures
    refused = sum(r["429s"] for r in results)
    print(f"{len(results)} runs, {refused} × 429 in all   aim 0; written to {args.out}")
    if refused:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
