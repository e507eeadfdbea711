"""The suite's own PostgreSQL: a real server in a temp dir, reachable over its Unix socket."""

from __future__ import annotations

from typing import Any

import psycopg


def test_throwaway_cluster_answers_and_creates_databases(postgres: Any) -> None:
    with psycopg.connect(postgres.conninfo, autocommit=True) as conn:
        (version,) = conn.execute("SHOW server_version").fetchone() or ("",)
        assert version
    url = postgres.createdb("qontak_probe")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("qontak_probe",)
