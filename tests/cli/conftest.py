"""Fixtures for the CLI tests: one real sandbox on loopback (uvicorn in a thread) for the
session, reset before each test, and a runner that points the CLI at it through the
environment, as a user would."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from qontak.cli import app
from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    RateLimitConfig,
    Sandbox,
)

#: Short delivery delays so --wait / --watch finish quickly.
DELAYS = (0.05, 0.1, 0.15)
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    """A sandbox and the URL it is served on."""

    sandbox: Sandbox
    url: str

    def env(self, **extra: str | None) -> dict[str, str | None]:
        """Environment for a CLI run against this sandbox (credentials included)."""
        values: dict[str, str | None] = {
            "QONTAK_BASE_URL": self.url,
            "QONTAK_CLIENT_ID": SANDBOX_CLIENT_ID,
            "QONTAK_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
            "QONTAK_ENV": None,
            "QONTAK_LOG": None,
            "QONTAK_SANDBOX_FAULTS": None,
            "COLUMNS": "200",
        }
        values.update(extra)
        return values


@pytest.fixture(scope="session")
def _served() -> Iterator[Served]:
    sandbox = Sandbox(delivery_delays=DELAYS, faults=FaultConfig())
    with sandbox.run_in_thread() as url:
        yield Served(sandbox, url)
    sandbox.close()


@pytest.fixture
def served(_served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Served:
    """The session's sandbox with no traffic, no faults and default limits; cwd is a temp dir
    (so no stray ``.env`` is read)."""
    sb = _served.sandbox
    sb.reset()
    sb.set_faults(None)
    sb.set_rate_limits(RateLimitConfig())
    monkeypatch.chdir(tmp_path)
    return _served


_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@contextlib.contextmanager
def _uvicorn_logging_kept() -> Iterator[None]:
    """Undo any logging setup uvicorn does during one in-process run.

    A command that starts uvicorn in process (``qontak demo``) makes it re-run its logging
    ``dictConfig``, binding new handlers to the runner's temporary stderr. The runner closes
    that stream when the command ends, and the next log line of the session's sandbox (e.g.
    an injected dropped connection) would then fail with "I/O operation on closed file" in
    some later test's stderr. A separate ``qontak`` process never shares loggers like this.
    """
    saved = {}
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.level, logger.propagate)
    try:
        yield
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


class Cli:
    """Runs ``qontak …`` in process through typer's CliRunner against a sandbox."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.runner = CliRunner()

    def __call__(self, *args: str, env: Mapping[str, str | None] | None = None) -> Result:
        full_env = self.served.env()
        full_env.update(env or {})
        with _uvicorn_logging_kept():
            return self.runner.invoke(app, list(args), env=full_env, catch_exceptions=False)

    def json(self, *args: str, env: Mapping[str, str | None] | None = None) -> Any:
        """Run with ``--json``, check exit code 0, and parse stdout."""
        result = self(*args, "--json", env=env)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return json.loads(result.stdout)


@pytest.fixture
def cli(served: Served) -> Cli:
    """Invoke the CLI against the sandbox."""
    return Cli(served)
