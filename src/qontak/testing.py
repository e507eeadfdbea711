"""Test helpers: an in-process sandbox and a configured client wired to it (no socket).

Context managers::

    from qontak.testing import sandbox_client

    def test_order_message_is_read():
        with sandbox_client() as (client, sandbox):
            ...                        # client: a Qontak talking to the sandbox in process
            sandbox.advance(5)         # delivery statuses move on (pending → … → read)
            assert sandbox.messages()[-1]["status"] == "read"

``async_sandbox_client()`` is the same with an :class:`~qontak.AsyncQontak`.

pytest fixtures (``pytest -p qontak.testing`` or ``pytest_plugins = ["qontak.testing"]``):
``qontak_sandbox`` (a fresh :class:`~qontak.sandbox.Sandbox` per test),
``qontak_client`` (a :class:`~qontak.Qontak` bound to it) and ``async_qontak_client``
(an :class:`~qontak.AsyncQontak`; use it in ``@pytest.mark.anyio`` tests).

The client and the sandbox share one clock, and the client's ``sleep`` (rate-limit waits,
retry back-off) advances that clock instead of sleeping, so tests never wait in real time
and signatures always fall inside the sandbox's 300-second window. Faults follow
``QONTAK_SANDBOX_FAULTS`` unless a config says otherwise, so a whole suite can be run
under chaos by setting one variable.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from . import AsyncQontak, Qontak
from .sandbox import (
    API_PREFIX,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    Sandbox,
    SandboxConfig,
    SyncASGITransport,
)

__all__ = [
    "SANDBOX_BASE_URL",
    "async_qontak_client",
    "async_sandbox_client",
    "qontak_client",
    "qontak_sandbox",
    "sandbox_client",
]

#: Host the in-process clients use; any name works, nothing resolves it.
SANDBOX_HOST = "http://sandbox.local"
SANDBOX_BASE_URL = SANDBOX_HOST + API_PREFIX


def _client_options(sandbox: Sandbox, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "base_url": SANDBOX_BASE_URL,
        "env_file": None,  # a developer's .env must not leak into tests
        "clock": sandbox.now,
        **options,
    }


@contextlib.contextmanager
def sandbox_client(
    sandbox: Sandbox | None = None,
    *,
    config: SandboxConfig | None = None,
    **client_options: Any,
) -> Iterator[tuple[Qontak, Sandbox]]:
    """A :class:`~qontak.Qontak` wired in process to a sandbox (a new one unless given).

    ``client_options`` go to ``Qontak(...)`` (e.g. ``max_retries=0``).
    """
    box = sandbox or Sandbox(config)
    http = httpx.Client(transport=SyncASGITransport(box.app), base_url=SANDBOX_HOST)
    options = _client_options(box, {"sleep": box.advance, **client_options})
    client = Qontak(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, http_client=http, **options)
    try:
        yield client, box
    finally:
        client.close()
        http.close()
        if sandbox is None:
            box.close()


@contextlib.asynccontextmanager
async def async_sandbox_client(
    sandbox: Sandbox | None = None,
    *,
    config: SandboxConfig | None = None,
    **client_options: Any,
) -> AsyncIterator[tuple[AsyncQontak, Sandbox]]:
    """An :class:`~qontak.AsyncQontak` wired in process to a sandbox."""
    box = sandbox or Sandbox(config)

    async def advance(seconds: float) -> None:
        box.advance(seconds)

    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=box.app), base_url=SANDBOX_HOST)
    options = _client_options(box, {"sleep": advance, **client_options})
    client = AsyncQontak(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, http_client=http, **options)
    try:
        yield client, box
    finally:
        await client.aclose()
        await http.aclose()
        if sandbox is None:
            box.close()


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixtures
    pass
else:

    @pytest.fixture
    def qontak_sandbox() -> Iterator[Sandbox]:
        """A fresh, seeded, in-memory sandbox for one test."""
        box = Sandbox()
        yield box
        box.close()

    @pytest.fixture
    def qontak_client(qontak_sandbox: Sandbox) -> Iterator[Qontak]:
        """A :class:`~qontak.Qontak` talking to ``qontak_sandbox`` in process."""
        with sandbox_client(qontak_sandbox) as (client, _):
            yield client

    @pytest.fixture
    async def async_qontak_client(qontak_sandbox: Sandbox) -> AsyncIterator[AsyncQontak]:
        """An :class:`~qontak.AsyncQontak` talking to ``qontak_sandbox`` in process."""
        async with async_sandbox_client(qontak_sandbox) as (client, _):
            yield client
