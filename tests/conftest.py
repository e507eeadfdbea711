"""Fixtures shared by the whole suite: a fake clock and an in-process Qontak-like server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

CLIENT_ID = "test-client-id"
CLIENT_SECRET = "canary-secret-7f3a9c1e"  # a canary: it must never show up in any output
START = 1_700_000_000.0


class FakeClock:
    """A clock tests move by hand; ``sleep`` advances it and records the wait."""

    def __init__(self, start: float = START) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


_AUTH = re.compile(
    r'^hmac username="(?P<user>[^"]+)", algorithm="hmac-sha256", '
    r'headers="date request-line", signature="(?P<sig>[^"]+)"$'
)


def expected_signature(secret: str, method: str, raw_path: str, date: str) -> str:
    """The signature recomputed independently of the SDK's signer."""
    text = f"date: {date}\n{method} {raw_path} HTTP/1.1"
    mac = hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@dataclass
class RecordingServer:
    """An in-process server: checks every signature like the gateway, records requests and
    answers from a queue of scripted replies (or a default success envelope)."""

    secret: str = CLIENT_SECRET
    requests: list[httpx.Request] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    default: Callable[[httpx.Request], httpx.Response] | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        match = _AUTH.match(request.headers.get("authorization", ""))
        date = request.headers.get("date", "")
        raw_path = request.url.raw_path.decode()
        if not match or not date:
            return httpx.Response(401, json={"message": "Unauthorized"})
        want = expected_signature(self.secret, request.method, raw_path, date)
        if not hmac.compare_digest(want, match.group("sig")):
            return httpx.Response(401, json={"message": "Unauthorized"})
        if self.replies:
            reply = self.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            if callable(reply) and not isinstance(reply, httpx.Response):
                return reply(request)
            return reply
        if self.default is not None:
            return self.default(request)
        return httpx.Response(200, json={"status": "success", "data": []})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server() -> RecordingServer:
    return RecordingServer()


@pytest.fixture
def make_client(server: RecordingServer, clock: FakeClock) -> Iterator[Callable[..., Any]]:
    """Build a sync ``Qontak`` wired to the recording server and the fake clock."""
    from qontak import Qontak

    made: list[Any] = []

    def make(**kw: Any) -> Any:
        options: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "base_url": "https://api.mekari.com",
            "http_client": httpx.Client(transport=server.transport()),
            "clock": clock,
            "sleep": clock.sleep,
            "env_file": None,
        }
        options.update(kw)
        c = Qontak(**options)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _reset_qontak_logger() -> Iterator[None]:
    """Tests that switch logging on must not leave a handler bound to a captured stream."""
    from qontak._logging import logger

    level = logger.level
    yield
    for handler in [h for h in logger.handlers if getattr(h, "_qontak", False)]:
        logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server for this test session (see ``tests/postgres.py``)."""
    import os

    from tests.postgres import find_bindir, throwaway_cluster

    if find_bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries missing: `make test` installs them")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    with throwaway_cluster() as cluster:
        yield cluster
