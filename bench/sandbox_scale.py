"""The sandbox at 1,000 and 100,000 stored messages: does a request cost its page or the store?

Run alone: ``python bench/sandbox_scale.py`` (about a minute); ``bench/run.py`` calls
:func:`run`, which returns the figures. Nothing asserts: timings on a shared machine are
noisy, so the figures that matter are ratios measured in one run.

How: a SQLite file is filled through the store in one transaction (``Store.add_sends``, sends
accepted in the past so every message is already ``read``), then the sandbox is served from
that file by uvicorn in its own process, measured over loopback by this process, refilled to
the large size and served again. An "inbox tab" is a third process that polls
``/_sandbox/messages?after=`` exactly as ``static/inbox.js`` does (catch up in pages, then
every 500 ms), so neither the tab's nor the server's work shares this process's GIL.

Figures:

- ``list first page``: median of ``GET /broadcasts/whatsapp`` (100 rows), small vs large;
- ``inbox poll``: median of ``GET /_sandbox/messages?after=<newest>`` (an open tab's poll
  with nothing new), and of the first page of a tab opening (``after=0&limit=500``);
- ``send p99``: p99 of ``POST /broadcasts/whatsapp/direct`` at the large size while an open
  tab polls vs with that tab paused (SIGSTOP), in alternating blocks (the goal: within 2×),
  and while a new tab opens and catches up with everything stored (a one-off, watched for
  at most ``OPENING_S`` seconds, shown for information).

Reads on the small and the large store are alternated request by request (two servers up at
once), and the idle and polling send blocks alternate too, so a change in the machine's load
falls on both sides of each ratio.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx

SMALL = 1_000
LARGE = 100_000
SENDS = 400  # per p99 figure (idle and with a tab)
OPENING_S = 8.0  # longest a new tab is watched catching up
REPEAT = 30  # per median figure

API = "/qontak/chat/v1"
PAYLOAD: dict[str, Any] = {
    "to_name": "Test User",
    "to_number": "6281234567890",
    "message_template_id": "d3e1083c-66ea-410b-b807-1d84182ffa82",
    "channel_integration_id": "56b60c3c-0123-46af-958b-32f3ad12ee37",
    "language": {"code": "id"},
    "parameters": {
        "buttons": [],
        "body": [
            {"key": "1", "value_text": "Test User", "value": "name"},
            {"key": "2", "value_text": "lagu nusantara", "value": "lagu"},
        ],
    },
}


# ------------------------------------------------------------------------------ the store
def fill(db: Path, total: int) -> tuple[float, int]:
    """Bring the store in ``db`` up to ``total`` messages; returns the seconds it took and
    the number of the newest change (where an open inbox tab's poll starts)."""
    from qontak.sandbox import SANDBOX_CLIENT_ID, FaultConfig, Sandbox
    from qontak.sandbox._api import synthetic_sends

    started = time.perf_counter()
    box = Sandbox(db=db, faults=FaultConfig())
    try:
        have = _count(box)
        missing = total - have
        now = box.now()
        step = 0.02
        chunk = 20_000
        for offset in range(0, missing, chunk):
            count = min(chunk, missing - offset)
            # In the past, so every message is already read: a store that has been running.
            start = now - 3600 - (missing - offset) * step
            box.store.add_sends(
                synthetic_sends(
                    box, PAYLOAD, count, start=start, step=step, client_id=SANDBOX_CLIENT_ID
                )
            )
        box.store.advance(box.now(), box.config.delivery_delays)
        head = box.store.head()
    finally:
        box.close()
    return time.perf_counter() - started, head


def _count(box: Any) -> int:
    return int(box.store.broadcast_count())


# ----------------------------------------------------------------------------- processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(db: str, port: int) -> None:
    """(In the server process.) The sandbox on ``db``, no limits, no faults."""
    import uvicorn

    from qontak.sandbox import FaultConfig, RateLimitConfig, Sandbox

    box = Sandbox(db=db, faults=FaultConfig(), rate_limits=RateLimitConfig(enabled=False))
    uvicorn.run(box.app, host="127.0.0.1", port=port, log_level="warning")


def _tab(url: str, after: int) -> None:
    """(In the tab process.) Poll like static/inbox.js from ``after``: catch up (saying how
    far it got after each page), say "ready", then poll every 500 ms; keep what it is given
    so the work is the page's, not less."""
    held: dict[str, Any] = {}
    feed, ready = None, False
    with httpx.Client(base_url=url, timeout=60) as http:
        while True:
            params: dict[str, Any] = {"after": after, "limit": 500}
            if feed:
                params["feed"] = feed
            body = http.get("/_sandbox/messages", params=params).json()
            if body["reset"]:
                held.clear()
            held.update((m["id"], m) for m in body["data"])
            after, feed = body["seq"], body["feed"]
            if body["more"]:
                print(f"read {len(held)}", flush=True)
                continue
            if not ready:
                ready = True
                print(f"ready {len(held)}", flush=True)
            time.sleep(0.5)


class _Process:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Server(_Process):
    def __init__(self, db: Path) -> None:
        self.port = _free_port()
        super().__init__("--serve", str(db), str(self.port))
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/_sandbox/faults", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.05)


# ------------------------------------------------------------------------------ measuring
class _Signer(httpx.Auth):
    """HMAC as the sandbox checks it, written out (no SDK in the measured path)."""

    def auth_flow(self, request: httpx.Request) -> Any:
        from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, compute_signature

        date = formatdate(time.time(), usegmt=True)
        target = request.url.raw_path.decode("ascii")
        signature = compute_signature(SANDBOX_CLIENT_SECRET, date, request.method, target)
        request.headers["Date"] = date
        request.headers["Authorization"] = (
            f'hmac username="{SANDBOX_CLIENT_ID}", algorithm="hmac-sha256", '
            f'headers="date request-line", signature="{signature}"'
        )
        yield request


def _timed(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:200]}")
    return elapsed


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _reads(small: str, large: str, heads: tuple[int, int]) -> dict[str, tuple[float, float]]:
    """Median latency of each read on the small and the large sandbox, requests alternated
    between the two so the machine's load falls on both alike."""
    clients = [httpx.Client(base_url=url, auth=_Signer(), timeout=60) for url in (small, large)]

    def lister(http: httpx.Client) -> Callable[[], httpx.Response]:
        return lambda: http.get(API + "/broadcasts/whatsapp")

    def poller(http: httpx.Client, after: int, limit: int = 200) -> Callable[[], httpx.Response]:
        return lambda: http.get("/_sandbox/messages", params={"after": after, "limit": limit})

    calls = {
        "list": [lister(h) for h in clients],
        "poll": [poller(h, head) for h, head in zip(clients, heads, strict=True)],
        "open": [poller(h, 0, 500) for h in clients],
    }
    out: dict[str, tuple[float, float]] = {}
    try:
        for name, (on_small, on_large) in calls.items():
            on_small(), on_large()  # warm: connections, caches
            times: tuple[list[float], list[float]] = ([], [])
            for _ in range(REPEAT):
                times[0].append(_timed(on_small))
                times[1].append(_timed(on_large))
            out[name] = (statistics.median(times[0]), statistics.median(times[1]))
    finally:
        for client in clients:
            client.close()
    return out


class _Sender:
    """Sends one after another on one keep-alive connection, timing each."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, auth=_Signer(), timeout=60)
        self.body = json.dumps(PAYLOAD).encode()
        self.send()  # warm

    def send(self) -> httpx.Response:
        return self.http.post(
            API + "/broadcasts/whatsapp/direct",
            content=self.body,
            headers={"Content-Type": "application/json"},
        )

    def times(self, count: int) -> list[float]:
        return [_timed(self.send) for _ in range(count)]


class _Tab(_Process):
    """An inbox tab in its own process; :attr:`shown` is how many messages it holds."""

    def __init__(self, url: str, after: int) -> None:
        super().__init__("--tab", url, str(after))
        self.started = time.perf_counter()
        self.shown = 0
        self.ready = threading.Event()
        self.took = 0.0
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, _, count = line.partition(" ")
            self.shown = int(count)
            self.took = time.perf_counter() - self.started
            if word == "ready":
                self.ready.set()


def _sends_with_a_tab(url: str, head: int) -> dict[str, Any]:
    """Send latency in alternating blocks with an open (caught-up) tab polling and with it
    paused (SIGSTOP): the idle baseline; then while a new tab opens and catches up with the
    whole store (for at most OPENING_S seconds)."""
    sender = _Sender(url)
    idle: list[float] = []
    polling: list[float] = []
    tab = _Tab(url, head)  # open for a while already: it starts from the newest change
    try:
        tab.ready.wait(30)
        block = SENDS // 8
        for _ in range(8):
            tab.proc.send_signal(signal.SIGSTOP)
            time.sleep(0.05)
            idle += sender.times(block)
            tab.proc.send_signal(signal.SIGCONT)
            polling += sender.times(block)
    finally:
        tab.proc.send_signal(signal.SIGCONT)
        tab.stop()
    opening: list[float] = []
    tab = _Tab(url, 0)
    try:
        deadline = time.perf_counter() + OPENING_S
        while (not tab.ready.is_set() and time.perf_counter() < deadline) or len(opening) < 50:
            opening.append(_timed(sender.send))
    finally:
        tab.stop()
        sender.http.close()
    return {
        "opening": opening,
        "idle": idle,
        "polling": polling,
        "caught up": tab.shown,
        "catch-up s": tab.took,
        "opened": tab.ready.is_set(),
    }


def run(small: int = SMALL, large: int = LARGE) -> dict[str, float]:
    """Fill, serve, measure; returns every figure (seconds, counts and ratios)."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="qontak-scale-") as tmp:
        small_db, large_db = Path(tmp) / "small.db", Path(tmp) / "large.db"
        figures["fill small s"], small_head = fill(small_db, small)
        shutil.copyfile(small_db, large_db)
        figures["fill large s"], large_head = fill(large_db, large)
        servers = [_Server(small_db)]
        try:
            servers.append(_Server(large_db))
            reads = _reads(servers[0].url, servers[1].url, (small_head, large_head))
            servers.pop(0).stop()  # only the large one from here: nothing else competing
            sends = _sends_with_a_tab(servers[0].url, large_head)
        finally:
            for server in servers:
                server.stop()
    for name, key in (("list first page", "list"), ("inbox poll", "poll"), ("tab open", "open")):
        figures[f"{name} small s"], figures[f"{name} large s"] = reads[key]
        figures[f"{name} ratio"] = reads[key][1] / reads[key][0]
    idle = _p99(sends["idle"])
    figures["send p99 idle s"] = idle
    figures["send p99 tab open s"] = _p99(sends["polling"])
    figures["send p99 tab opening s"] = _p99(sends["opening"])
    figures["send p99 tab open ratio"] = figures["send p99 tab open s"] / idle
    figures["send p99 tab opening ratio"] = figures["send p99 tab opening s"] / idle
    figures["tab catch-up s"] = sends["catch-up s"]
    figures["tab catch-up messages"] = float(sends["caught up"])
    figures["tab caught up"] = float(sends["opened"])
    return figures


def report(figures: dict[str, float], small: int = SMALL, large: int = LARGE) -> list[str]:
    """The figures as lines of text."""
    ms = 1000.0
    lines = [
        f"sandbox at {small:,} vs {large:,} stored messages "
        f"(filled in {figures['fill small s']:.1f} s + {figures['fill large s']:.1f} s)"
    ]
    for name, label in (
        ("list first page", "GET /broadcasts/whatsapp, first page"),
        ("inbox poll", "GET /_sandbox/messages?after=<newest>"),
        ("tab open", "GET /_sandbox/messages?after=0&limit=500"),
    ):
        lines.append(
            f"  {label:<44} {figures[name + ' small s'] * ms:7.2f} ms → "
            f"{figures[name + ' large s'] * ms:7.2f} ms  ratio {figures[name + ' ratio']:.2f}×"
        )
    lines += [
        f"  send p99 at {large:,}, no inbox tab{'':<17} {figures['send p99 idle s'] * ms:7.2f} ms",
        f"  send p99 while an inbox tab polls{'':<12}"
        f"{figures['send p99 tab open s'] * ms:7.2f} ms  ratio "
        f"{figures['send p99 tab open ratio']:.2f}× idle (goal ≤ 2×)",
        f"  send p99 while a tab opens (catches up){'':<6}"
        f"{figures['send p99 tab opening s'] * ms:7.2f} ms  ratio "
        f"{figures['send p99 tab opening ratio']:.2f}× idle; the tab read "
        f"{figures['tab catch-up messages']:,.0f} messages in {figures['tab catch-up s']:.1f} s"
        + ("" if figures["tab caught up"] else " (stopped before it caught up)"),
    ]
    return lines


def main() -> None:
    """Run and print."""
    for line in report(run()):
        print(line, flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 2 and sys.argv[1] == "--tab":
        _tab(sys.argv[2], int(sys.argv[3]))
    else:
        main()
