"""Take the README's picture of the sandbox web inbox: ``docs/inbox.png``.

Starts the real sandbox on loopback, sends one message of every seeded template kind through the
SDK (plus a second recipient and a failing magic number), lets the sandbox clock move them all to
"read", and photographs the page in Debian's headless Chromium (never ``playwright install``).

    .venv/bin/python bench/screenshot_inbox.py [--out docs/inbox.png] [--height 1000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, sync_playwright

from qontak import Qontak, messages
from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, FaultConfig, Sandbox

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START = 1_760_000_000.0  # a fixed instant: the picture is the same on every run
BUDI = "6281234567890"


class Clock:
    """One clock for the sandbox and the SDK, moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def promo_png(browser: Browser) -> bytes:
    """A promo picture for the image header, drawn by Chromium (no image library needed)."""
    context = browser.new_context(viewport={"width": 800, "height": 450})
    try:
        page = context.new_page()
        page.set_content(
            "<body style='margin:0'><div style='width:800px;height:450px;display:flex;"
            "flex-direction:column;align-items:center;justify-content:center;"
            "background:linear-gradient(135deg,#00a884,#005c4b);color:#fff;"
            "font:700 120px sans-serif'>50%<div style='font:500 40px sans-serif'>"
            "PROMO MINGGU INI</div></div></body>"
        )
        return page.screenshot(type="png")
    finally:
        context.close()


def send_every_kind(client: Qontak, browser: Browser, sandbox: Sandbox) -> None:
    """One message of each kind to Budi, one to Siti and one to a number that fails."""
    picture = client.file_uploader.upload(promo_png(browser), filename="promo.png")
    invoice = client.file_uploader.upload(b"%PDF-1.4 sandbox invoice\n", filename="invoice.pdf")
    channel = client.channels.list()[0]

    def template(name: str) -> Any:
        return client.templates.find(name, language="id")

    budi: dict[str, Any] = {"channel": channel, "name": "Budi Santoso"}
    to = "0812-3456-7890"
    batch = [
        messages.otp(to, "123456", template=template("login_otp"), **budi),
        messages.text(
            to, {"name": "Budi", "order": "sepatu lari"}, template=template("order_update"), **budi
        ),
        messages.image(to, picture.url, template=template("promo_image"), **budi),
        messages.document(
            to, invoice.url, filename="invoice.pdf", template=template("invoice_document"), **budi
        ),
        messages.video(
            to,
            "https://cdn.qontak.com/videos/launch.mp4",
            variables=["Budi", "Qontak", "tim Qontak"],
            template=template("product_video"),
            **budi,
        ),
        messages.cta_url(
            to, "fitur/personalisasi-report-sales", template=template("cta_url"), **budi
        ),
        messages.cta_phone(to, template=template("cta_phone"), **budi),
        messages.text(
            "6285712345678",
            {"name": "Siti", "order": "2 tiket konser"},
            template=template("order_update"),
            channel=channel,
            name="Siti Rahma",
        ),
        messages.text(
            "6281234131026",  # magic number: fails with WhatsApp error 131026
            {"name": "Rina", "order": "tas"},
            template=template("order_update"),
            channel=channel,
            name="Rina",
        ),
    ]
    for message in batch:
        client.broadcasts.send_direct(message)
        sandbox.advance(20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "inbox.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=0, help="0: tall enough for Budi's chat")
    args = parser.parse_args(argv)

    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed: run `make browser`", file=sys.stderr)
        return 1

    clock = Clock(START)
    sandbox = Sandbox(clock=clock, faults=FaultConfig(), delivery_delays=(5.0, 10.0, 15.0))
    with (
        sandbox.run_in_thread() as url,
        Qontak(
            SANDBOX_CLIENT_ID,
            SANDBOX_CLIENT_SECRET,
            base_url=url + "/qontak/chat/v1",
            env_file=None,
            rate_limits=False,
            clock=clock,
            sleep=clock.sleep,
        ) as client,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        send_every_kind(client, browser, sandbox)
        sandbox.advance(60)  # everything delivered and read (or failed)
        context = browser.new_context(
            viewport={"width": args.width, "height": args.height or 900},
            timezone_id="UTC",
            device_scale_factor=1,
        )
        page = context.new_page()
        page.goto(f"{url}/#{BUDI}")
        page.wait_for_selector(f"[data-testid=messages][data-number='{BUDI}']")
        page.wait_for_selector("[data-testid=header][data-format=IMAGE][data-loaded=yes]")
        if not args.height:
            needed = page.evaluate(
                "() => { const s = document.getElementById('chat-scroll');"
                " return s.scrollHeight - s.clientHeight; }"
            )
            page.set_viewport_size({"width": args.width, "height": 900 + int(needed)})
            page.wait_for_timeout(200)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        context.close()
        browser.close()
    sandbox.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
