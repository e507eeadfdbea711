"""Fixtures shared by the whole suite: a fake clock and an in-process Qontak-like server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

# The suite starts a hundred-odd Python processes (examples, CLI, workers), each importing
# qontak, and every xdist worker rewrites every test module's asserts: with bytecode caching
# switched off in the environment, all of that is compiled again every time. Caching here
# (``__pycache__``, git-ignored) saves tens of CPU-seconds a run.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
    sys.dont_write_bytecode = False

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


# --- scheduling ------------------------------------------------------------------------------
#: Tests that take seconds (rough seconds on a quiet two-core machine). A path alone is a module
#: kept together (its module-scoped fixture is costly: a build, a browser, 24 examples);
#: a node-id prefix makes each test it matches its own unit. Stale entries match nothing.
SLOW: dict[str, float] = {
    "tests/cli/test_examples.py": 10.0,
    "tests/sandbox/test_inbox_browser.py": 10.0,
    "tests/test_packaging.py": 5.0,
    "tests/campaigns/test_workers.py::test_four_workers": 7.0,
    "tests/campaigns/test_workers.py::test_postgres_restarted": 5.0,
    "tests/campaigns/test_cli.py::test_killed_at_random_points": 3.0,
    "tests/campaigns/test_cli.py::test_sigint": 3.0,
    "tests/cli/test_subprocess.py::test_demo": 2.5,
    "tests/cli/test_commands.py::test_demo_json": 5.0,
    "tests/sandbox/test_uploads_browser.py": 4.0,
    "tests/webhooks/test_end_to_end.py": 4.0,
    "tests/campaigns/test_faults.py::test_every_fault": 3.0,
    "tests/webhooks/test_campaign_webhooks.py::test_a_campaign_reaches_read": 3.0,
    "tests/sdk/test_shared_ratelimit.py::test_six_processes": 2.5,
    "tests/cli/test_subprocess.py::test_sandbox": 2.0,
    "tests/cli/test_subprocess.py::test_json_listing": 1.5,
    "tests/cli/test_subprocess.py::test_paging_status": 1.5,
    "tests/campaigns/test_report_browser.py": 1.5,
    "tests/sdk/test_sandbox_e2e.py::test_every_kind": 1.5,
}


def _slow_units(items: list[pytest.Item]) -> tuple[list[tuple[float, list[pytest.Item]]], set[int]]:
    """The slow units among ``items`` (weight, items in collection order) and their indices."""
    units: dict[str, tuple[float, list[pytest.Item]]] = {}
    taken: set[int] = set()
    for i, item in enumerate(items):
        for key, weight in SLOW.items():
            whole_module = "::" not in key
            if item.nodeid.startswith(key + "::" if whole_module else key):
                unit = key if whole_module else item.nodeid
                units.setdefault(unit, (weight, []))[1].append(item)
                taken.add(i)
                break
    return list(units.values()), taken


def _spread(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """Order ``items`` so that ``--dist worksteal`` starts every worker on its share of the
    slow tests.

    Worksteal hands worker *k* the *k*-th contiguous slice of the collection (sizes
    ``remaining // workers_left``) and later moves tests from the end of one queue to an idle
    worker. So each slice begins with slow units (balanced by weight, heaviest first) and
    ends with quick tests: what is stolen, and what runs last, is short, and no worker is left
    finishing a long test alone at the end.
    """
    units, taken = _slow_units(items)
    quick = [item for i, item in enumerate(items) if i not in taken]
    sizes, left = [], len(items)
    for k in range(workers):
        sizes.append(left // (workers - k))
        left -= sizes[-1]
    bins: list[list[pytest.Item]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for weight, unit in sorted(units, key=lambda u: -u[0]):
        fits = [k for k in range(workers) if len(bins[k]) + len(unit) <= sizes[k]]
        if not fits:
            quick.extend(unit)  # cannot happen with a sane table; never drop a test
            continue
        k = min(fits, key=lambda k: load[k])
        bins[k].extend(unit)
        load[k] += weight
    ordered: list[pytest.Item] = []
    for k in range(workers):
        room = sizes[k] - len(bins[k])
        ordered += bins[k] + quick[:room]
        del quick[:room]
    return ordered + quick


@pytest.hookimpl(trylast=True)  # after -k/-m deselection: the slices are of what runs
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers >= 2 and len(items) >= 2 * workers:
        ordered = _spread(items, workers)
        # A reordering that lost a test would pass silently: check it is a permutation.
        assert sorted(map(id, ordered)) == sorted(map(id, items)), "a test was lost or doubled"
        items[:] = ordered
