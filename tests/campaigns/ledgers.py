"""Both ledger backends for the conformance tests: a SQLite file, or a fresh PostgreSQL
database in the suite's throw-away cluster (``tests/postgres.py``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qontak.campaigns import PostgresStore, SQLiteStore, Store

BACKENDS = ["sqlite", "postgres"]
_names = itertools.count()

#: Opens another connection to the same ledger (another process, as far as the ledger
#: can tell); ``lease`` is the claim lease where the backend has one.
Opener = Callable[..., Store]


def fresh_database(postgres: Any) -> str:
    """A new, empty database in the test cluster; its URL."""
    return str(postgres.createdb(f"ledger_{next(_names)}_{id(postgres) % 10000}"))


def opener(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Opener:
    """A function opening the ledger of this test on ``backend``."""
    if backend == "sqlite":
        path = tmp_path / "ledger.db"

        def open_sqlite(lease: float = 30.0) -> Store:
            return SQLiteStore(path, durable=False)

        return open_sqlite
    url = fresh_database(request.getfixturevalue("postgres"))

    def open_postgres(lease: float = 30.0) -> Store:
        return PostgresStore(url, lease_seconds=lease)

    return open_postgres
