"""Benchmarks: print figures for the hot paths (`make bench`). Not a test; nothing asserts.

- HMAC signing, message building + validation, preview rendering (pure functions);
- the rate limiter's bookkeeping;
- sends per second through the whole SDK pipeline against the in-process sandbox;
- peak memory of building and validating 10,000 messages.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

import httpx

from qontak import Qontak, messages
from qontak._auth import signature_headers
from qontak._ratelimit import RateLimiter
from qontak.models import Template
from qontak.render import preview
from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    RateLimitConfig,
    Sandbox,
    SyncASGITransport,
)
from qontak.validation import validate_message

TEMPLATE = Template(
    id="t",
    name="order_update",
    language="id",
    body="Halo {{1}}, pesanan {{2}} sudah dikirim.",
    status="APPROVED",
    category="UTILITY",
)


def rate(name: str, fn: Callable[[], object], seconds: float = 1.0) -> None:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        count += 100
    print(f"{name:<44} {count / elapsed:>12,.0f} /s")


def build() -> object:
    msg = messages.text("0812-3456-7890", ["Budi", "INV-1"], template=TEMPLATE, channel="c")
    validate_message(msg, TEMPLATE)
    return msg


def main() -> None:
    print("qontak benchmarks (higher is better)")
    rate("sign one request (HMAC-SHA256)", lambda: signature_headers("POST", "/x", "id", "s", 0.0))
    limiter = RateLimiter({"all": ()})
    rate("rate limiter reserve (no limits hit)", lambda: limiter.reserve(now=0.0))
    rate("build + validate a text message", build)
    msg = build()
    rate("render a preview", lambda: preview(TEMPLATE, msg))  # type: ignore[arg-type]

    sandbox = Sandbox(
        faults=FaultConfig(), delivery_delays=(0, 0, 0), rate_limits=RateLimitConfig(enabled=False)
    )

    with Qontak(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        base_url="http://sandbox.local",
        http_client=httpx.Client(transport=SyncASGITransport(sandbox.app)),
        rate_limits=False,
        env_file=None,
    ) as client:
        tpl = client.templates.find("order_update", language="id")
        channel = client.channels.list()[0]
        send_msg = messages.text("0812-3456-7890", ["Budi", "INV-1"], template=tpl, channel=channel)
        rate(
            "send_direct end to end (in-process sandbox)",
            lambda: client.broadcasts.send_direct(send_msg),
            2.0,
        )

    tracemalloc.start()
    kept = [build() for _ in range(10_000)]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{'peak memory, 10,000 messages kept':<44} {peak / 2**20:>11.1f} MiB ({len(kept)} msgs)")


if __name__ == "__main__":
    main()
