"""The sandbox's web inbox, driven in a real headless Chromium (Debian's ``chromium`` package).

Playwright's sync API drives the system Chromium (never ``playwright install``: no internet).
Without Chromium these tests are skipped, except in CI (``CI=true``), where they fail: CI must
run them (``make browser`` installs Chromium).

* ``test_inbox_shows_every_template_kind_live_and_ticks_turn_blue`` runs against the real
  sandbox on loopback: each seeded template kind is sent through the SDK, each bubble must
  appear with its text and buttons, and the ticks must go from grey to blue as the sandbox's
  clock moves the messages to ``read``.
* The other tests pin how the page draws data it is given (formatting, escaping, many buttons,
  broken media), against a stub ``/_sandbox/messages`` feed served next to the inbox routes.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qontak import Qontak, messages
from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, FaultConfig, Sandbox
from qontak.sandbox._inbox import routes as inbox_routes
from tests.browser import chromium

pytestmark = pytest.mark.browser


#: How long the page may take to show what the server holds (it polls every 500 ms).
UI_TIMEOUT_MS = 10_000


# ----------------------------------------------------------------------------- browser fixtures
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in UTC (so bubble times are predictable), failing on any script error."""
    # bypass_csp: Playwright's wait_for_function evaluates strings, which the page's CSP
    # forbids. It also means the escaping tests prove the page's own code, not the CSP.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, timezone_id="UTC", locale="en-US", bypass_csp=True
    )
    pg = context.new_page()
    pg.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    try:
        yield pg
    finally:
        context.close()
    assert not errors, f"the page logged errors: {errors}"


# ------------------------------------------------------------------------------- stub feed
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """A uvicorn server for an ASGI app, in a background thread on a free loopback port."""

    def __init__(self, app: Any) -> None:
        self.port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> _Server:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("stub server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def _stub_message(number: str, index: int, **fields: Any) -> dict[str, Any]:
    at = f"2025-03-04T03:{index:02d}:00Z"
    message: dict[str, Any] = {
        "id": f"log-{index}",
        "broadcast_id": f"broadcast-{index}",
        "whatsapp_message_id": f"wamid.stub{index}",
        "to_number": number,
        "to_name": "Budi",
        "channel_integration_id": "channel",
        "status": "read",
        "status_history": [{"status": "pending", "at": at}],
        "error": None,
        "created_at": at,
        "template": {"id": "t", "name": "stub", "language": "en"},
        "parameters": {},
        "rendered": {"header": None, "body": "", "footer": None, "buttons": []},
    }
    rendered = fields.pop("rendered", {})
    message.update(fields)
    message["rendered"] = {**message["rendered"], **rendered}
    return message


@pytest.fixture
def stub_feed() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The inbox routes plus a ``/_sandbox/messages`` that serves a list the test may change."""
    messages: list[dict[str, Any]] = []

    async def feed(request: Request) -> JSONResponse:
        return JSONResponse({"data": list(messages)})

    app = Starlette(routes=[Route("/_sandbox/messages", feed), *inbox_routes()])
    with _Server(app) as server:
        yield server.url, messages


# ------------------------------------------------------------------------------ stub tests
def test_inbox_formats_bodies_like_whatsapp_and_never_runs_markup_from_variables(
    page: Any, stub_feed: tuple[str, list[dict[str, Any]]]
) -> None:
    url, messages = stub_feed
    hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    messages.append(
        _stub_message(
            "6281111111111",
            1,
            to_name='<b onmouseover="window.__pwned=3">Eve</b>',
            rendered={
                "body": f"*Bold* _italic_ ~gone~ ```mono``` _*both*_ 2*3*4 {hostile} "
                "https://qontak.com/a_b_c",
                "footer": "<i>footer</i>",
            },
        )
    )
    page.goto(url)
    body = page.get_by_test_id("body").first
    body.wait_for()
    assert body.locator("strong").all_inner_texts() == ["Bold", "both"]
    assert body.locator("em").all_inner_texts() == ["italic", "both"]
    assert body.locator("em > strong").inner_text() == "both"
    assert "2*3*4" in body.inner_text()
    assert body.locator("del").inner_text() == "gone"
    assert body.locator("code").inner_text() == "mono"
    assert hostile in body.inner_text()
    link = body.locator("a")
    assert link.get_attribute("href") == "https://qontak.com/a_b_c"
    assert body.locator("img, script").count() == 0
    assert page.get_by_test_id("footer").inner_text() == "<i>footer</i>"
    assert (
        '<b onmouseover="window.__pwned=3">Eve</b>'
        in page.get_by_test_id("recipient-name").inner_text()
    )
    assert page.evaluate("window.__pwned") is None


def test_inbox_collapses_more_than_three_buttons_behind_see_all_options(
    page: Any, stub_feed: tuple[str, list[dict[str, Any]]]
) -> None:
    url, messages = stub_feed
    options = [{"type": "QUICK_REPLY", "text": f"Option {n}"} for n in range(1, 6)]
    messages.append(
        _stub_message("6281111111111", 1, rendered={"body": "Pick", "buttons": options})
    )
    page.goto(url)
    bubble = page.get_by_test_id("bubble").first
    bubble.wait_for()
    assert bubble.get_by_test_id("button").all_inner_texts() == ["Option 1", "Option 2"]
    bubble.get_by_test_id("see-all").click()
    assert bubble.get_by_test_id("button").all_inner_texts() == [f"Option {n}" for n in range(1, 6)]


def test_inbox_shows_placeholders_for_media_that_cannot_load_offline(
    page: Any, stub_feed: tuple[str, list[dict[str, Any]]]
) -> None:
    url, messages = stub_feed
    offline = "http://127.0.0.1:9/"  # the discard port: refused at once, no network needed
    messages.extend(
        [
            _stub_message(
                "6281111111111",
                1,
                rendered={
                    "header": {
                        "format": "IMAGE",
                        "url": offline + "promo.jpg",
                        "filename": "promo.jpg",
                    },
                    "body": "image",
                },
            ),
            _stub_message(
                "6281111111111",
                2,
                rendered={
                    "header": {
                        "format": "VIDEO",
                        "url": offline + "a.mp4",
                        "filename": "launch.mp4",
                    },
                    "body": "video",
                },
            ),
            _stub_message(
                "6281111111111",
                3,
                rendered={
                    "header": {
                        "format": "DOCUMENT",
                        "url": offline + "x",
                        "filename": "invoice.pdf",
                    },
                    "body": "document",
                },
            ),
        ]
    )
    page.goto(url)
    image = page.locator("[data-testid=header][data-format=IMAGE]")
    page.wait_for_selector("[data-testid=header][data-format=IMAGE][data-loaded=no]")
    assert "promo.jpg" in image.inner_text()
    video = page.locator("[data-testid=header][data-format=VIDEO]")
    assert "launch.mp4" in video.inner_text()
    assert video.get_attribute("aria-label") == "Video: launch.mp4"
    document = page.locator("[data-testid=header][data-format=DOCUMENT]")
    assert "invoice.pdf" in document.inner_text()
    assert "PDF" in document.inner_text()


def test_inbox_updates_ticks_and_adds_bubbles_while_open(
    page: Any, stub_feed: tuple[str, list[dict[str, Any]]]
) -> None:
    url, messages = stub_feed
    messages.append(_stub_message("6281111111111", 1, status="sent", rendered={"body": "one"}))
    page.goto(url)
    ticks = page.locator("[data-message-id=log-1] [data-testid=ticks]")
    page.wait_for_selector("[data-message-id=log-1] [data-testid=ticks][data-status=sent]")
    messages[0] = {**messages[0], "status": "read"}
    page.wait_for_selector("[data-message-id=log-1] [data-testid=ticks][data-status=read]")
    assert ticks.get_attribute("aria-label") == "Read"
    messages.append(
        _stub_message(
            "6281111111111",
            2,
            status="failed",
            error={"code": 131026, "title": "Message undeliverable", "details": "x"},
            rendered={"body": "two"},
        )
    )
    page.wait_for_selector("[data-message-id=log-2][data-status=failed]")
    assert (
        "Message undeliverable"
        in page.locator("[data-message-id=log-2] [data-testid=error]").inner_text()
    )


# ------------------------------------------------------------------------- the real sandbox
START = 1_760_000_000.0  # 2025-10-09 08:53:20 UTC: fixed, so bubble times are known
STEP = 10.0  # seconds between statuses: pending -> sent -> delivered -> read
BUDI = "6281234567890"
SITI = "6285712345678"
UNDELIVERABLE = "6281234131026"  # a magic number: accepted, then fails with WhatsApp 131026
BLUE = "rgb(83, 189, 235)"
GREY = "rgb(134, 150, 160)"


class _Clock:
    """The one clock shared by the sandbox and the SDK (the HMAC window is checked against it)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def live_sandbox() -> Iterator[tuple[Sandbox, str, Qontak]]:
    """The real sandbox on a free loopback port, statuses every STEP sandbox seconds, and an SDK
    client pointed at it."""
    clock = _Clock(START)
    box = Sandbox(clock=clock, faults=FaultConfig(), delivery_delays=(STEP, 2 * STEP, 3 * STEP))
    try:
        with (
            box.run_in_thread() as url,
            Qontak(
                SANDBOX_CLIENT_ID,
                SANDBOX_CLIENT_SECRET,
                base_url=url + "/qontak/chat/v1",
                env_file=None,
                rate_limits=False,
                clock=clock,
                sleep=clock.sleep,
            ) as client,
        ):
            yield box, url, client
    finally:
        box.close()


def _promo_png(browser: Any) -> bytes:
    """A promo picture for the image header, drawn by Chromium itself (no image library)."""
    context = browser.new_context(viewport={"width": 800, "height": 450})
    try:
        pg = context.new_page()
        pg.set_content(
            "<body style='margin:0'><div style='width:800px;height:450px;display:flex;"
            "flex-direction:column;align-items:center;justify-content:center;"
            "background:linear-gradient(135deg,#00a884,#005c4b);color:#fff;"
            "font:700 120px sans-serif'>50%<div style='font:500 40px sans-serif'>"
            "PROMO MINGGU INI</div></div></body>"
        )
        return bytes(pg.screenshot(type="png"))
    finally:
        context.close()


def _bubble(page: Any, box: Sandbox, broadcast_id: str) -> Any:
    """The bubble of the message a send created, found by its log id."""
    ids = [m["id"] for m in box.messages() if m["broadcast_id"] == broadcast_id]
    assert len(ids) == 1, f"broadcast {broadcast_id} has {len(ids)} messages in the ground truth"
    return page.locator(f'[data-testid=bubble][data-message-id="{ids[0]}"]')


def test_inbox_shows_every_template_kind_live_and_ticks_turn_blue(
    page: Any,
    browser: Any,
    live_sandbox: tuple[Sandbox, str, Qontak],
    tmp_path: Path,
) -> None:
    box, url, client = live_sandbox
    page.goto(url + "/")
    page.wait_for_selector("[data-testid=connection][data-state=live]")
    assert page.get_by_text("Nothing sent yet").is_visible()
    assert page.get_by_test_id("bubble").count() == 0

    # Media the page can load offline: uploaded to the sandbox, which serves them back.
    picture = client.file_uploader.upload(_promo_png(browser), filename="promo.png")
    invoice = client.file_uploader.upload(b"%PDF-1.4 sandbox invoice\n", filename="invoice.pdf")
    channel = client.channels.list()[0]

    def template(name: str) -> Any:
        return client.templates.find(name, language="id")

    to = "0812-3456-7890"  # written as people write it; the SDK normalises it to BUDI
    budi: dict[str, Any] = {"channel": channel, "name": "Budi Santoso"}
    sends = {
        "otp": messages.otp(to, "123456", template=template("login_otp"), **budi),
        "text": messages.text(
            to, {"name": "Budi", "order": "sepatu lari"}, template=template("order_update"), **budi
        ),
        "image": messages.image(to, picture.url, template=template("promo_image"), **budi),
        "document": messages.document(
            to, invoice.url, filename="invoice.pdf", template=template("invoice_document"), **budi
        ),
        "video": messages.video(
            to,
            "https://cdn.qontak.com/videos/launch.mp4",  # not loaded: the page draws a poster
            variables=["Budi", "Qontak", "tim Qontak"],
            template=template("product_video"),
            **budi,
        ),
        "cta_url": messages.cta_url(
            to, "fitur/personalisasi-report-sales", template=template("cta_url"), **budi
        ),
        "cta_phone": messages.cta_phone(to, template=template("cta_phone"), **budi),
        # Variables are data, never markup: this must show as text and run nothing.
        "hostile": messages.text(
            SITI,
            {"name": "Siti <img src=x onerror=window.__pwned=1>", "order": "*2 tiket*"},
            template=template("order_update"),
            channel=channel,
            name="Siti Rahma",
        ),
        "failed": messages.text(
            UNDELIVERABLE,
            {"name": "Rina", "order": "tas"},
            template=template("order_update"),
            channel=channel,
            name="Rina",
        ),
    }
    sent = {}
    for kind, message in sends.items():
        sent[kind] = client.broadcasts.send_direct(message)
        box.advance(0.5)  # distinct send times, as in real life; still pending

    # Every send shows up live, without reloading the page.
    page.wait_for_function("document.querySelectorAll('[data-testid=recipient]').length === 3")
    numbers = page.get_by_test_id("recipient").evaluate_all("els => els.map(e => e.dataset.number)")
    assert numbers == [UNDELIVERABLE, SITI, BUDI]  # most recent first
    # The most recent chat is open until the user picks another.
    page.wait_for_selector(f"[data-testid=messages][data-number='{UNDELIVERABLE}']")
    page.locator(f"[data-testid=recipient][data-number='{BUDI}']").click()
    page.wait_for_selector(f"[data-testid=messages][data-number='{BUDI}']")
    assert page.get_by_test_id("chat-name").inner_text() == "Budi Santoso"
    assert page.get_by_test_id("chat-number").inner_text() == "+62 812-3456-7890"

    bubbles = {kind: _bubble(page, box, sent[kind].id) for kind in sent}
    expected_body = {
        "otp": "123456 adalah kode verifikasi Anda. Demi keamanan, jangan bagikan kode ini.",
        "text": "Halo Budi, pesanan Anda untuk sepatu lari sudah kami terima dan sedang "
        "diproses. Terima kasih!",
        "image": "Promo spesial minggu ini! Dapatkan diskon hingga 50% untuk semua produk.",
        "document": "Berikut kami lampirkan invoice Anda. Hubungi kami jika ada pertanyaan.",
        "cta_url": "Kenali fitur terbaru Qontak untuk tim penjualan Anda.",
        "cta_phone": "Butuh bantuan? Tim layanan pelanggan kami siap membantu Anda.",
    }
    for kind, text in expected_body.items():
        bubble = bubbles[kind]
        bubble.wait_for()
        assert bubble.get_by_test_id("body").inner_text() == text, kind
        assert bubble.get_attribute("data-status") == "pending", kind
        assert bubble.get_by_test_id("ticks").get_attribute("aria-label") == "Pending", kind
        assert bubble.get_by_test_id("time").inner_text() == "08:53", kind

    # Video: three variables filled in, a dark poster and two quick replies.
    video_body = bubbles["video"].get_by_test_id("body").inner_text()
    assert video_body.startswith("Halo Budi, terima kasih telah menjadi pelanggan Qontak."), (
        video_body
    )
    assert "tim Qontak" in video_body and "{{" not in video_body

    def buttons(kind: str) -> list[tuple[str | None, str]]:
        found = bubbles[kind].get_by_test_id("button")
        return [(b.get_attribute("data-button-type"), b.inner_text().strip()) for b in found.all()]

    assert buttons("otp") == [("URL", "Salin kode")]
    otp_button = bubbles["otp"].get_by_test_id("button")
    assert otp_button.get_attribute("data-otp") == "copy_code"
    assert otp_button.get_attribute("data-code") == "123456"
    assert bubbles["otp"].locator("[data-testid=body] strong").inner_text() == "123456"
    assert bubbles["otp"].get_by_test_id("footer").inner_text() == (
        "Kode ini kedaluwarsa dalam 10 menit."
    )
    assert buttons("text") == [] and buttons("image") == [] and buttons("document") == []
    assert buttons("video") == [("QUICK_REPLY", "Tertarik"), ("QUICK_REPLY", "Tidak tertarik")]
    assert buttons("cta_url") == [("URL", "Lihat fitur")]
    assert bubbles["cta_url"].get_by_test_id("button").get_attribute("href") == (
        "https://qontak.com/fitur/personalisasi-report-sales"
    )
    assert buttons("cta_phone") == [("PHONE_NUMBER", "Hubungi kami")]
    assert bubbles["cta_phone"].get_by_test_id("button").get_attribute("href") == (
        "tel:+6281234500000"
    )

    # Header media: the uploaded picture really loads; document card; video poster.
    image = bubbles["image"].get_by_test_id("header")
    assert image.get_attribute("data-format") == "IMAGE"
    page.wait_for_selector(f"{_css(bubbles['image'])} [data-testid=header][data-loaded=yes]")
    assert bubbles["image"].get_by_role("img", name="Image: promo.png").count() == 1
    assert bubbles["image"].get_by_test_id("footer").inner_text() == "Balas STOP untuk berhenti."
    document = bubbles["document"].get_by_test_id("header")
    assert document.get_attribute("data-format") == "DOCUMENT"
    assert "invoice.pdf" in document.inner_text() and "PDF" in document.inner_text()
    assert document.get_attribute("href") == invoice.url
    video = bubbles["video"].get_by_test_id("header")
    assert video.get_attribute("data-format") == "VIDEO"
    assert "launch.mp4" in video.inner_text()

    # Ticks follow the sandbox clock: ✓ sent, ✓✓ delivered (grey), ✓✓ read (blue).
    budi = [bubbles[k] for k in expected_body] + [bubbles["video"]]
    icons = {"sent": "check", "delivered": "dblcheck", "read": "dblcheck"}
    for status, colour in (("sent", GREY), ("delivered", GREY), ("read", BLUE)):
        box.advance(STEP)
        page.wait_for_function(
            "status => [...document.querySelectorAll('[data-testid=bubble]')]"
            ".every(b => b.dataset.status === status)",
            arg=status,
        )
        for bubble in budi:
            ticks = bubble.get_by_test_id("ticks")
            assert ticks.get_attribute("data-status") == status
            assert ticks.get_attribute("data-icon") == icons[status]
            assert ticks.evaluate("e => getComputedStyle(e).color") == colour
    assert page.get_by_test_id("unread").count() == 0  # every chat read: no badges

    # The hostile variables arrived as text.
    page.locator(f"[data-testid=recipient][data-number='{SITI}']").click()
    siti = bubbles["hostile"].get_by_test_id("body")
    siti.wait_for()
    assert "Siti <img src=x onerror=window.__pwned=1>" in siti.inner_text()
    assert siti.locator("strong").inner_text() == "2 tiket"
    assert siti.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None

    # The magic number failed with WhatsApp's error, shown in red.
    page.locator(f"[data-testid=recipient][data-number='{UNDELIVERABLE}']").click()
    failed = bubbles["failed"]
    failed.wait_for()
    assert failed.get_attribute("data-status") == "failed"
    assert failed.get_by_test_id("ticks").get_attribute("aria-label") == "Failed"
    assert "Message undeliverable" in failed.get_by_test_id("error").inner_text()
    assert "131026" in failed.get_by_test_id("error").inner_text()

    # A picture for humans: Budi's chat, every kind, all read.
    page.locator(f"[data-testid=recipient][data-number='{BUDI}']").click()
    page.wait_for_selector(f"[data-testid=messages][data-number='{BUDI}']")
    shot = tmp_path / "inbox.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def _css(locator: Any) -> str:
    """A CSS selector for a bubble locator made by :func:`_bubble`."""
    message_id = locator.get_attribute("data-message-id")
    return f'[data-testid=bubble][data-message-id="{message_id}"]'


def test_inbox_catches_up_in_pages_then_starts_over_after_a_reset(
    page: Any, live_sandbox: tuple[Sandbox, str, Qontak]
) -> None:
    from qontak.sandbox._api import synthetic_sends

    from .examples import TEXT

    box, url, client = live_sandbox
    # More than one page of the feed (the page asks for 500 at a time), straight into the store.
    box.store.add_sends(
        synthetic_sends(box, TEXT, 1200, start=START - 3600, step=1, client_id=SANDBOX_CLIENT_ID)
    )
    page.goto(url + "/")
    page.wait_for_selector("html[data-messages='1200']")
    assert page.get_by_test_id("recipient").count() == 1200
    box.reset()
    page.wait_for_selector("html[data-messages='0']")
    assert page.get_by_text("Nothing sent yet").is_visible()
    template = client.templates.find("order_update", language="id")
    channel = client.channels.list()[0]
    sent = client.broadcasts.send_direct(
        messages.text(BUDI, {"name": "Budi", "order": "tas"}, template=template, channel=channel)
    )
    _bubble(page, box, sent.id).wait_for()
    assert page.get_by_test_id("recipient").count() == 1
