"""Shared helpers for the sandbox tests: a fake clock, an HMAC signer written for the tests,
and clients that talk to the sandbox in process or through a real uvicorn server."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Generator, Iterator
from email.utils import formatdate
from typing import Any

import httpx
import pytest

from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    Sandbox,
    SandboxConfig,
    SyncASGITransport,
)

BASE = "/qontak/chat/v1"
CHANNEL_ID = "56b60c3c-0123-46af-958b-32f3ad12ee37"
START = 1_760_000_000.0  # a fixed instant, so every run sees the same windows


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def sign(secret: str, date: str, method: str, target: str) -> str:
    """The test suite's own signer (independent of both the SDK and the server)."""
    text = f"date: {date}\n{method} {target} HTTP/1.1"
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def auth_headers(
    method: str,
    target: str,
    when: float,
    *,
    client_id: str = SANDBOX_CLIENT_ID,
    secret: str = SANDBOX_CLIENT_SECRET,
) -> dict[str, str]:
    date = formatdate(when, usegmt=True)
    signature = sign(secret, date, method, target)
    return {
        "Date": date,
        "Authorization": (
            f'hmac username="{client_id}", algorithm="hmac-sha256", '
            f'headers="date request-line", signature="{signature}"'
        ),
    }


class HmacAuth(httpx.Auth):
    """Signs each request over the exact path+query bytes httpx puts on the wire."""

    def __init__(
        self, clock: Any, client_id: str = SANDBOX_CLIENT_ID, secret: str = SANDBOX_CLIENT_SECRET
    ) -> None:
        self.clock = clock
        self.client_id = client_id
        self.secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode("ascii")
        request.headers.update(
            auth_headers(
                request.method,
                target,
                self.clock(),
                client_id=self.client_id,
                secret=self.secret,
            )
        )
        yield request


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[Sandbox]:
    box = Sandbox(SandboxConfig(clock=clock, faults=FaultConfig()))
    yield box
    box.close()


@pytest.fixture
def client(sandbox: Sandbox, clock: FakeClock) -> Iterator[httpx.Client]:
    """In process, no socket."""
    transport = SyncASGITransport(sandbox.app)
    with httpx.Client(
        transport=transport, base_url="http://sandbox.local", auth=HmacAuth(clock)
    ) as http:
        yield http


@pytest.fixture
def raw_client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """In process, unsigned: for the signature tests."""
    with httpx.Client(
        transport=SyncASGITransport(sandbox.app), base_url="http://sandbox.local"
    ) as http:
        yield http


@pytest.fixture
def live(sandbox: Sandbox, clock: FakeClock) -> Iterator[httpx.Client]:
    """A real uvicorn server on a free loopback port, and a signed client for it."""
    with sandbox.run_in_thread() as url, httpx.Client(base_url=url, auth=HmacAuth(clock)) as http:
        yield http
