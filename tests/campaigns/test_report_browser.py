"""The HTML campaign report in a real headless Chromium (Debian's ``chromium``): one page
with no outside resource, the delivery funnel, failures by reason and sends over time, and
customer text shown as text. A screenshot is taken (and kept in the test's temp dir)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from qontak import campaigns
from qontak.sandbox import FaultConfig, RateLimitConfig, Sandbox
from qontak.testing import async_sandbox_client
from tests.browser import chromium

from .conftest import CHANNEL_ID, advancing, write_customers

pytestmark = pytest.mark.browser


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return anyio.run(_make_report, tmp_path)


async def _make_report(tmp_path: Path) -> Path:
    box = Sandbox(
        rate_limits=RateLimitConfig(enabled=False),
        faults=FaultConfig(),
        delivery_delays=(1.0, 2.0, 3.0),
    )
    store = campaigns.SQLiteStore(tmp_path / "l.db", durable=False)
    # Two numbers WhatsApp will fail (magic last six digits), one name with markup.
    extra = [["0812-3413-1026", "Gone", "#x"], ["0812-3413-1050", "Stopped", "#y"]]
    source = write_customers(tmp_path / "c.csv", 40, extra=extra)
    async with async_sandbox_client(box) as (client, sandbox):
        template = await client.templates.find("order_update", language="id")
        created = campaigns.create(
            store,
            source,
            template=template,
            channel=CHANNEL_ID,
            mapping={"phone": "to_number", "nama": "1", "order": "2"},
            name="<img src=x onerror=alert(1)> Lebaran promo",
        )
        options = campaigns.RunOptions(clock=sandbox.now, sleep=advancing(sandbox), concurrency=1)
        await campaigns.run(client, store, created.campaign.id, options)
        sandbox.advance(2.5)  # some read, some delivered, two failed
        await campaigns.refresh_delivery(client, store, created.campaign.id)
    out = campaigns.write_report(store, created.campaign.id, tmp_path / "report.html")
    store.close()
    box.close()
    return out


def test_html_report_is_self_contained_and_shows_funnel_failures_and_timeline(
    report: Path, tmp_path: Path
) -> None:
    requests: list[str] = []
    errors: list[str] = []
    with chromium() as browser:
        page: Any = browser.new_page(viewport={"width": 1100, "height": 1000})
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
        page.goto(report.as_uri())
        funnel = [b.split() for b in page.locator(".funnel .bar").all_inner_texts()]
        failures = page.inner_text("table")
        bars = page.locator("svg rect").count()
        title = page.inner_text("h1")
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    assert requests == [report.as_uri()], "the report must not load anything else"
    assert not errors
    assert title == "<img src=x onerror=alert(1)> Lebaran promo"
    assert [step for step, _ in funnel] == ["accepted", "sent", "delivered", "read"]
    counts = [int(n) for _, n in funnel]
    assert counts[0] == 42 and counts == sorted(counts, reverse=True) and counts[3] > 0
    assert "131026" in failures and "131050" in failures
    assert bars == 48
    assert shot.stat().st_size > 10_000
