"""Benchmarks (`make bench`): every figure with its ratio to a baseline; writes
``docs/benchmarks.md``. Nothing asserts: figures are printed, goals are shown beside them.

- async throughput: :class:`~qontak.AsyncQontak` vs a bare aiohttp loop with a hand-written
  signer, 32 and 64 requests in flight, sends and GETs, against a loopback sandbox served by
  uvicorn in a child process (so server work never counts as client CPU);
- sync client CPU per request: :class:`~qontak.Qontak` vs bare ``httpx.Client`` with the
  hand-written signer, same server;
- the in-process sandbox transports: their own cost per request vs the app's;
- start-up: ``import qontak``, ``from qontak import Qontak``, ``qontak --help`` vs
  ``import httpx``;
- micro figures: signing, the limiter, building + validating, previews, memory.

Runs alternate baseline and SDK and report medians, because the machine may be shared.
Then the benchmarks kept as their own scripts (:data:`EXTRA`): the sandbox at 100k messages,
campaign import (rows/s, peak RSS), campaign rate use (sends/s ÷ the limit, 429s) and the
campaign ledger on PostgreSQL vs SQLite; what each prints is kept in the report.

Usage: ``python bench/run.py [--quick] [--out docs/benchmarks.md] [--only PART ...]``
(``--only sync`` prints the sync client's figures alone, in about 20 seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import io
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import httpx  # noqa: E402
from _clients import (  # noqa: E402
    GET_PATH,
    ORDER_UPDATE,
    bare_aiohttp_calls,
    bare_headers,
    message,
    sdk_async_calls,
    sync_calls,
)
from _server import API_PREFIX, loopback_sandbox  # noqa: E402

ROOT = HERE.parent


@dataclass
class Figure:
    """One printed line: what, the SDK's value, the baseline's, their ratio and the goal."""

    section: str
    name: str
    value: str
    baseline: str = ""
    ratio: float | None = None
    goal: str = ""

    def line(self) -> str:
        ratio = f"{self.ratio:.2f}x" if self.ratio is not None else ""
        base = f"vs {self.baseline}" if self.baseline else ""
        goal = f"(goal {self.goal})" if self.goal else ""
        return f"  {self.name:<46} {self.value:>14} {base:<20} {ratio:>7} {goal}"


FIGURES: list[Figure] = []


def report(figure: Figure) -> None:
    if not FIGURES or FIGURES[-1].section != figure.section:
        print(f"\n{figure.section}")
    FIGURES.append(figure)
    print(figure.line(), flush=True)


# -- async throughput -------------------------------------------------------------------------
async def _for_duration(
    call: Callable[[int], Awaitable[Any]], in_flight: int, seconds: float
) -> tuple[float, float]:
    """Keep ``in_flight`` calls going for ``seconds``; returns (req/s, client CPU µs/req)."""
    counter = iter(range(10**9))
    await asyncio.gather(*(call(next(counter)) for _ in range(in_flight)))  # warm the pool
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call(next(counter))
            done += 1

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return done / wall, cpu / done * 1e6


async def _async_run(url: str, who: str, kind: str, in_flight: int, seconds: float) -> Any:
    if who == "bare":
        call, close = await bare_aiohttp_calls(url, f"bare-{kind}", in_flight)
    else:
        call, close = await sdk_async_calls(url, f"sdk-{kind}", in_flight)
    try:
        return await _for_duration(call, in_flight, seconds)
    finally:
        await close()


def _paired(runs: dict[str, list[float]]) -> tuple[float, float, float]:
    """Medians of the SDK's and the baseline's values, and the median of the ratios of
    runs taken back to back (steadier than a ratio of medians on a busy machine)."""
    ratios = [s / b for s, b in zip(runs["sdk"], runs["bare"], strict=True)]
    return (
        statistics.median(runs["sdk"]),
        statistics.median(runs["bare"]),
        statistics.median(ratios),
    )


def async_throughput(url: str, rounds: int, seconds: float) -> None:
    section = "AsyncQontak vs bare aiohttp + hand-written signer (loopback sandbox)"
    for kind in ("send", "get"):
        for in_flight in (32, 64):
            rps: dict[str, list[float]] = {"bare": [], "sdk": []}
            cpu: dict[str, list[float]] = {"bare": [], "sdk": []}
            for i in range(rounds):
                # Alternate who goes first, so neither always runs on a warmer server.
                for who in ("bare", "sdk") if i % 2 == 0 else ("sdk", "bare"):
                    r, c = asyncio.run(_async_run(url, who, kind, in_flight, seconds))
                    rps[who].append(r)
                    cpu[who].append(c)
            what = "sends" if kind == "send" else "GETs"
            sdk, bare, ratio = _paired(rps)
            report(
                Figure(
                    section,
                    f"{what}, {in_flight} in flight: req/s",
                    f"{sdk:,.0f}",
                    f"{bare:,.0f}",
                    ratio,
                    ">= 0.80x",
                )
            )
            sdk, bare, ratio = _paired(cpu)
            report(
                Figure(
                    section,
                    f"{what}, {in_flight} in flight: client CPU/req",
                    f"{sdk:,.0f} us",
                    f"{bare:,.0f} us",
                    ratio,
                )
            )


# -- sync CPU per request ---------------------------------------------------------------------
#: Calls per turn when the sync clients take turns (small, so both see the same machine).
SYNC_BATCH = 16


def _sync_cpu(url: str, kind: str, seconds: float) -> tuple[float, float]:
    """Client CPU µs per request of the SDK and of the baseline, measured together.

    Both clients are open at once and take turns of :data:`SYNC_BATCH` calls (who goes
    first alternates), each turn's CPU time counted to its client: on a shared machine, runs
    taken one after the other see different loads (pairs of 0.5 s runs differed by ±30%),
    turns a few milliseconds apart see the same one."""
    calls = {who: sync_calls(url, f"{who}-{kind}") for who in ("bare", "sdk")}
    cpu = dict.fromkeys(calls, 0.0)
    done = dict.fromkeys(calls, 0)
    try:
        for call, _ in calls.values():
            for i in range(20):
                call(i)
        deadline, turn = time.perf_counter() + seconds, 0
        while time.perf_counter() < deadline:
            for who in ("bare", "sdk") if turn % 2 == 0 else ("sdk", "bare"):
                call, start = calls[who][0], done[who]
                clock = time.process_time()
                for i in range(start, start + SYNC_BATCH):
                    call(i)
                cpu[who] += time.process_time() - clock
                done[who] += SYNC_BATCH
            turn += 1
    finally:
        for _, close in calls.values():
            close()
    return cpu["sdk"] / done["sdk"] * 1e6, cpu["bare"] / done["bare"] * 1e6


def sync_cpu(url: str, rounds: int, seconds: float) -> None:
    section = "Qontak (sync) vs bare httpx.Client + hand-written signer: client CPU per request"
    for kind in ("send", "get"):
        runs: dict[str, list[float]] = {"bare": [], "sdk": []}
        for _ in range(rounds):
            sdk_us, bare_us = _sync_cpu(url, kind, seconds)
            runs["sdk"].append(sdk_us)
            runs["bare"].append(bare_us)
        sdk, bare, ratio = _paired(runs)
        what = "send_direct" if kind == "send" else "templates.get"
        report(Figure(section, what, f"{sdk:,.0f} us", f"{bare:,.0f} us", ratio, "<= 1.15x"))


# -- in-process transports --------------------------------------------------------------------
def in_process(rounds: int, count: int) -> None:
    from qontak.sandbox import FaultConfig, RateLimitConfig, Sandbox, SyncASGITransport
    from qontak.sandbox._transport import _scope

    section = "In-process sandbox transports: own cost per request vs the app's"
    box = Sandbox(
        faults=FaultConfig(), delivery_delays=(0, 0, 0), rate_limits=RateLimitConfig(enabled=False)
    )
    path = API_PREFIX + GET_PATH

    def request() -> httpx.Request:
        headers = bare_headers("GET", path)
        return httpx.Request("GET", "http://sandbox.local" + path, headers=headers)

    async def app_only() -> float:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            return None

        cpu = time.process_time()
        for _ in range(count):
            await box.app(_scope(request(), ("127.0.0.1", 1)), receive, send)
        return (time.process_time() - cpu) / count * 1e6

    async def via_async_transport() -> float:
        transport = httpx.ASGITransport(app=box.app)
        cpu = time.process_time()
        for _ in range(count):
            response = await transport.handle_async_request(request())
            await response.aread()
        return (time.process_time() - cpu) / count * 1e6

    def via_sync_transport() -> float:
        transport = SyncASGITransport(box.app)
        try:
            cpu = time.process_time()
            for _ in range(count):
                transport.handle_request(request()).read()
            return (time.process_time() - cpu) / count * 1e6
        finally:
            transport.close()

    apps, syncs, asyncs = [], [], []
    try:
        for _ in range(rounds):
            apps.append(asyncio.run(app_only()))
            syncs.append(via_sync_transport())
            asyncs.append(asyncio.run(via_async_transport()))
    finally:
        box.close()
    app = statistics.median(apps)
    sync_own = max(statistics.median(syncs) - app, 0.0)
    async_own = max(statistics.median(asyncs) - app, 0.0)
    report(Figure(section, "the app itself (GET a template)", f"{app:,.0f} us"))
    report(
        Figure(
            section,
            "SyncASGITransport (qontak.testing, sync)",
            f"{sync_own:,.0f} us",
            f"app {app:,.0f} us",
            sync_own / app,
            "<= 1.00x",
        )
    )
    report(
        Figure(
            section,
            "httpx.ASGITransport (qontak.testing, async)",
            f"{async_own:,.0f} us",
            f"app {app:,.0f} us",
            async_own / app,
            "<= 1.00x",
        )
    )


# -- start-up ---------------------------------------------------------------------------------
def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def startup(rounds: int) -> None:
    section = "Start-up (wall time, median of alternated runs)"
    py = sys.executable
    script = Path(py).with_name("qontak")
    run_cli = "from qontak.cli import main; main()"
    help_cmd = [str(script), "--help"] if script.exists() else [py, "-c", run_cli, "--help"]
    commands = {
        "import httpx": [py, "-c", "import httpx"],
        "import qontak": [py, "-c", "import qontak"],
        "from qontak import Qontak": [py, "-c", "from qontak import Qontak"],
        "qontak --help": help_cmd,
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            times[name].append(_wall(argv))
    base = statistics.median(times["import httpx"])
    report(Figure(section, "python -c 'import httpx' (baseline)", f"{base * 1e3:,.0f} ms"))
    goals = {"qontak --help": "<= 1.50x"}
    for name in ("import qontak", "from qontak import Qontak", "qontak --help"):
        value = statistics.median(times[name])
        report(
            Figure(
                section,
                name,
                f"{value * 1e3:,.0f} ms",
                f"{base * 1e3:,.0f} ms",
                value / base,
                goals.get(name, ""),
            )
        )


# -- micro figures ----------------------------------------------------------------------------
def _rate(fn: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        count += 100
    return count / elapsed


def micro(seconds: float) -> None:
    from qontak._auth import signature_headers
    from qontak._ratelimit import RateLimiter
    from qontak.render import preview
    from qontak.resources.broadcasts import prepare_message
    from qontak.validation import validate_message

    section = "Micro figures (calls per second, in process)"
    limiter = RateLimiter({"all": ()})
    msg = message()

    def build() -> object:
        built = message()
        validate_message(built, ORDER_UPDATE)
        return built

    cases: list[tuple[str, Callable[[], object]]] = [
        ("sign one request (HMAC-SHA256)", lambda: signature_headers("POST", "/x", "i", "s", 0)),
        ("rate limiter reserve (no limit hit)", lambda: limiter.reserve(now=0.0)),
        ("build + validate a text message", build),
        (
            "prepare a send (copy, number, validate)",
            lambda: prepare_message(msg, None, region="ID", validate=True),
        ),
        ("render a preview", lambda: preview(ORDER_UPDATE, msg)),
    ]
    for name, fn in cases:
        report(Figure(section, name, f"{_rate(fn, seconds):,.0f} /s"))
    tracemalloc.start()
    kept = [build() for _ in range(10_000)]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    report(Figure(section, f"peak memory, {len(kept):,} messages kept", f"{peak / 2**20:.1f} MiB"))


def kept_results(url: str) -> None:
    """Memory a kept send result costs (its envelope is kept as bytes, decoded on demand)."""
    from _clients import sdk_sync

    section = "Memory per kept result"
    with sdk_sync(url) as client:
        msgs = [message(i) for i in range(200)]
        client.broadcasts.send_direct(msgs[0])
        tracemalloc.start()
        kept = [client.broadcasts.send_direct(m) for m in msgs]
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    report(Figure(section, "a kept Broadcast from send_direct", f"{current / len(kept):,.0f} B"))


# -- the benchmarks written as separate scripts ---------------------------------------------
#: ``bench/<module>.py`` run after the client figures, each through its ``run(**kwargs)``,
#: sized so that the whole of ``make bench`` stays within three minutes (each script alone
#: runs its full size: ``python bench/campaign_import.py --rows 1000000``).
EXTRA: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("sandbox_scale", "Sandbox at scale", {}),
    ("campaign_import", "Campaign import", {"rows": 200_000}),
    ("campaign_rate", "Campaign rate use", {}),
    ("ledger_throughput", "Campaign ledger: PostgreSQL vs SQLite", {}),
    ("workers_rate", "Campaign workers sharing one budget", {}),
)


def extra_bench(module_name: str, title: str, kwargs: dict[str, Any]) -> str | None:
    """Run ``bench/<module_name>.py`` if it exists; returns what it printed (or returned)."""
    if not (HERE / f"{module_name}.py").exists():
        return None
    import importlib

    module = importlib.import_module(module_name)
    entry = getattr(module, "run", None) or getattr(module, "main", None)
    if entry is None:
        return f"bench/{module_name}.py has no run() or main()"
    print(f"\n{title} (bench/{module_name}.py)", flush=True)
    buffer = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, text: str) -> int:
            buffer.write(text)
            return sys.__stdout__.write(text) if sys.__stdout__ else len(text)

    try:
        with contextlib.redirect_stdout(Tee()):
            result = entry(**kwargs) if entry.__name__ == "run" else entry()
            report_fn = getattr(module, "report", None)
            if result is not None and callable(report_fn) and not buffer.getvalue():
                print("\n".join(report_fn(result)))
    except Exception as exc:  # one failing script must not lose the others' figures
        return f"failed: {type(exc).__name__}: {exc}"
    text = buffer.getvalue()
    if result is not None and not text:
        text = "\n".join(f"{k}: {v}" for k, v in dict(result).items())
        print(text)
    return text


# -- the report -------------------------------------------------------------------------------
def _machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = []
    for dist in ("httpx", "aiohttp", "httpx-aiohttp", "pydantic", "starlette", "uvicorn"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
    load = ""
    with contextlib.suppress(OSError):
        load = ", load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    return [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores{load}",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}; {', '.join(versions)}",
    ]


def write_docs(
    path: Path, started: dt.datetime, elapsed: float, extras: list[tuple[str, str, str]]
) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"Run on {started:%Y-%m-%d %H:%M} UTC, took {elapsed:.0f} s. Written by `bench/run.py`.",
        "",
        "## Machine",
        "",
        *_machine(),
        "",
        "**These figures are noisy.** They were taken on a small machine shared with other",
        "jobs, so absolute numbers move a lot between runs. Baseline and SDK runs are taken",
        "back to back, in alternating order; each value is a median over those runs and each",
        "ratio is the median of the back-to-back ratios. Read the ratios, not the values.",
        "",
    ]
    section = None
    for fig in FIGURES:
        if fig.section != section:
            section = fig.section
            lines += ["", f"## {section}", "", "| figure | qontak | baseline | ratio | goal |"]
            lines.append("|---|---:|---:|---:|---|")
        ratio = f"{fig.ratio:.2f}x" if fig.ratio is not None else ""
        lines.append(f"| {fig.name} | {fig.value} | {fig.baseline} | {ratio} | {fig.goal} |")
    for module_name, title, text in extras:
        lines += ["", f"## {title} (`bench/{module_name}.py`)", "", "```", text.rstrip(), "```"]
    lines += _soak_summary(path.parent / "soak.md")
    lines += [
        "",
        "## What is measured",
        "",
        "- **Async throughput**: requests completed per second with 32 or 64 requests kept",
        "  in flight, for `AsyncQontak` (defaults: aiohttp transport when `qontak[aiohttp]` is",
        "  installed, a pool as large as the concurrency via `max_connections`) and for a bare",
        "  `aiohttp.ClientSession` whose HMAC signature is computed inline. Sends post the",
        "  same `order_update` message (the SDK validates it against its template first);",
        "  GETs read one template. Client CPU is the benchmark process's CPU time per request.",
        "- **Sync CPU per request**: `Qontak` against a bare `httpx.Client` + inline signer,",
        "  one request at a time; the SDK's messages are built before timing starts, as the",
        "  baseline's dicts are. Both clients are open together and take turns of",
        f"  {SYNC_BATCH} calls, so both are measured under the same load; each round's ratio",
        "  is the SDK's CPU per request over the baseline's, and the median is reported.",
        "- The server is the sandbox under uvicorn in a **child process** on loopback, rate",
        "  limits and faults off, so its work is never counted as client CPU.",
        "- **In-process transports**: CPU per request through `SyncASGITransport` (what",
        "  `qontak.testing.sandbox_client` uses) and `httpx.ASGITransport` (the async one),",
        "  minus the CPU of calling the ASGI app directly with the same request.",
        "- **Start-up**: wall time of a fresh interpreter running each command.",
        "",
        "## What the SDK does to get there",
        "",
        '- `AsyncQontak(http_transport="auto")` (the default) uses aiohttp, through',
        "  `httpx-aiohttp`, when `qontak[aiohttp]` is installed and the loop is asyncio:",
        "  under concurrency httpx's own pool (httpcore) spends several milliseconds of CPU per",
        "  request re-scanning its connections, aiohttp does not. Installing the extra is the",
        '  opt-in; `http_transport="httpx"` opts out, and trio always gets httpx\'s pool.',
        "  aiohttp's exceptions are re-mapped so that only a failure to connect counts as",
        '  "not sent" (a dropped answer to a send is never retried).',
        "- `max_connections` (default 100) caps the pool, and as many connections are kept",
        "  alive as may be opened, so a burst of N ≤ max_connections requests reuses its",
        "  connections instead of opening new ones (httpx keeps 20 by default).",
        "- The SDK's own HTTP clients skip httpx's cookie jar and client layers (auth flows,",
        "  redirects, hooks) and build requests from a ready stream; parsed URLs are cached;",
        "  phone numbers are normalised once per number; `prepare_message` copies shallowly;",
        "  results keep their envelope as bytes, decoded only when `.response.envelope` is read.",
        "- `SyncASGITransport` runs the app on a private event loop in the caller's thread",
        "  instead of handing each request to a helper thread.",
        "- `import qontak` imports names on first use; `qontak --help` imports neither the SDK",
        "  nor the sandbox (commands load on demand).",
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench                 # or: .venv/bin/python bench/run.py",
        ".venv/bin/python bench/run.py --quick --out /tmp/bench.md   # shorter runs",
        ".venv/bin/python bench/run.py --only sync    # one part (no report written)",
        "```",
        "",
        "It needs the `aiohttp` extra (`pip install -e '.[all,dev]'`). The run exits by",
        "itself: the server child process is terminated and every client closed.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def _soak_summary(soak: Path) -> list[str]:
    """The last ``make soak`` (20 runs of a minute at a matched limit: too long for this
    run), summed up from ``docs/soak.md`` so the limiter's goal is read in one place."""
    if not soak.exists():
        return ["", "## Soak (`make soak`)", "", "Not run yet: `make soak` writes `docs/soak.md`."]
    text = soak.read_text().splitlines()
    dated = [line for line in text if line.startswith("- Date:")]
    results = [f"- {line[3:]}" for line in text if line.startswith("## ") and "429" in line]
    return [
        "",
        "## Soak (`make soak`, see [soak.md](soak.md))",
        "",
        *dated,
        *results,
    ]


#: The parts of a run, for ``--only``.
PARTS = ("startup", "micro", "in-process", "sync", "async", "kept", "extra")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable); nothing is written unless --out is given",
    )
    args = parser.parse_args()
    if args.only and "--out" not in sys.argv:
        args.out = None  # a partial run must not replace the full report
    parts = set(args.only or PARTS)
    rounds, seconds = (2, 0.4) if args.quick else (4, 0.8)
    started, clock = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    print(f"qontak benchmarks ({'quick' if args.quick else 'full'} run)", flush=True)

    if "startup" in parts:
        startup(3 if args.quick else 7)
    if "micro" in parts:
        micro(0.3 if args.quick else 0.8)
    if "in-process" in parts:
        in_process(rounds, 300 if args.quick else 1000)
    if parts & {"sync", "async", "kept"}:
        with loopback_sandbox() as url:
            if "sync" in parts:
                sync_cpu(url, rounds * 2, seconds * 0.7)
            if "async" in parts:
                async_throughput(url, rounds, seconds)
            if "kept" in parts:
                kept_results(url)
    extras = []
    for module_name, title, kwargs in EXTRA if "extra" in parts else ():
        text = extra_bench(module_name, title, kwargs)
        if text:
            extras.append((module_name, title, text))

    elapsed = time.perf_counter() - clock
    if args.out is not None:
        write_docs(args.out, started, elapsed, extras)
        print(f"\nwrote {args.out} ({elapsed:.0f} s)")
    # Anything left here would keep the process alive after main() returns.
    lingering = [
        t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon
    ]
    if lingering:
        print(f"warning: threads still running: {lingering}", file=sys.stderr)


if __name__ == "__main__":
    main()
