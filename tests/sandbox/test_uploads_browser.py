"""Uploaded files in a real headless Chromium: an uploaded page never runs on the sandbox's
origin (where it could drive the unauthenticated admin routes), it downloads instead; a PDF
still opens in the browser's viewer despite the locked-down headers.

Runs only where the inbox browser test runs (Debian's ``chromium`` and Playwright); the
header-level checks are in ``test_admin.py``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qontak.sandbox import FaultConfig, Sandbox, SandboxConfig
from tests.browser import chromium

from .conftest import BASE, HmacAuth
from .examples import TEXT

pytestmark = pytest.mark.browser

try:
    from playwright import sync_api as playwright_sync
except ImportError:  # pragma: no cover - playwright is a dev dependency
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("the playwright package is not installed", allow_module_level=True)

# If this page ran, it would wipe the sandbox through a same-origin admin call.
HOSTILE_PAGE = b"""<!doctype html><script>
fetch('/_sandbox/reset', {method: 'POST', headers: {'Content-Type': 'application/json'},
  body: '{}'}).then(function () { document.title = 'ran'; });
</script>"""


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def test_uploaded_html_downloads_instead_of_running(browser: Any) -> None:
    box = Sandbox(SandboxConfig(faults=FaultConfig()))
    try:
        with (
            box.run_in_thread() as url,
            httpx.Client(base_url=url, auth=HmacAuth(time.time)) as http,
        ):
            assert http.post(BASE + "/broadcasts/whatsapp/direct", json=TEXT).status_code == 201
            uploaded = http.post(
                BASE + "/file_uploader",
                files={"file": ("invite.html", HOSTILE_PAGE, "text/html")},
            )
            file_url = uploaded.json()["data"]["url"]
            context = browser.new_context(accept_downloads=True)
            page = context.new_page()
            page.goto(url + "/")  # the inbox: the origin the upload is served on
            # Chromium reports a navigation that became a download as an error.
            with (
                page.expect_download(timeout=5_000) as download,
                contextlib.suppress(playwright_sync.Error),
            ):
                page.goto(file_url)
            assert download.value.suggested_filename == "invite.html"
            page.wait_for_timeout(500)  # time enough for a script to have run
            context.close()
        assert len(box.messages()) == 1  # the reset never happened
    finally:
        box.close()


# The smallest PDF Chromium's viewer renders: one page saying "Hello PDF".
PDF = b"""%PDF-1.4
1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj
2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj
3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 144]/Contents 4 0 R
/Resources<</Font<</F1 5 0 R>>>>>>endobj
4 0 obj<</Length 44>>stream
BT /F1 24 Tf 20 60 Td (Hello PDF) Tj ET
endstream endobj
5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj
trailer<</Root 1 0 R>>
%%EOF
"""


def test_uploaded_pdf_opens_in_the_browser_viewer(browser: Any) -> None:
    box = Sandbox(SandboxConfig(faults=FaultConfig()))
    try:
        with (
            box.run_in_thread() as url,
            httpx.Client(base_url=url, auth=HmacAuth(time.time)) as http,
        ):
            uploaded = http.post(
                BASE + "/file_uploader",
                files={"file": ("invoice.pdf", PDF, "application/pdf")},
            )
            file_url = uploaded.json()["data"]["url"]
            context = browser.new_context(accept_downloads=True)
            page = context.new_page()
            downloads: list[Any] = []
            page.on("download", lambda download: downloads.append(download))
            response = page.goto(file_url)
            assert response is not None and response.status == 200
            csp = response.all_headers()["content-security-policy"]
            assert csp.startswith("default-src 'none'")
            page.wait_for_timeout(500)
            assert downloads == []
            assert page.evaluate("document.contentType") == "application/pdf"
            context.close()
    finally:
        box.close()
