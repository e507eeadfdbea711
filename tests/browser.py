"""Headless Chromium for the browser tests: Debian's package, driven by Playwright.

Never ``playwright install`` (no internet): Debian's ``chromium`` (``make browser``). Without
it a test is skipped locally and fails under ``CI=true``, so CI cannot pass without them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["CHROMIUM_ARGS", "chromium"]

#: Headless as root, and quiet: this machine's network is closed to Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _executable() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = (
            "Debian's chromium is not installed "
            "(run `make browser` or `apt-get install -y chromium`)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}; the browser tests must run in CI")
        pytest.skip(reason)
    return path


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright ``Browser``), closed afterwards."""
    try:
        from playwright import sync_api
    except ImportError:  # pragma: no cover - playwright is a dev dependency
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("the playwright package is not installed")
    executable = _executable()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
