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

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qontak.sandbox._inbox import routes as inbox_routes

pytestmark = pytest.mark.browser

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: How long the page may take to show what the server holds (it polls every 500 ms).
UI_TIMEOUT_MS = 10_000


# ----------------------------------------------------------------------------- browser fixtures
def _chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = (
            "Debian's chromium is not installed "
            "(run `make browser` or `apt-get install -y chromium`)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}; the inbox browser test must run in CI")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    executable = _chromium_path()
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in UTC (so bubble times are predictable), failing on any script error."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, timezone_id="UTC", locale="en-US"
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
                "body": f"*Bold* _italic_ ~gone~ ```mono``` {hostile} https://qontak.com/a_b_c",
                "footer": "<i>footer</i>",
            },
        )
    )
    page.goto(url)
    body = page.get_by_test_id("body").first
    body.wait_for()
    assert body.locator("strong").inner_text() == "Bold"
    assert body.locator("em").inner_text() == "italic"
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
