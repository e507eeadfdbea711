"""Opening a ledger: the one place that turns ``--db`` / ``QONTAK_CAMPAIGN_DB`` into a store.

A ``postgresql://`` (or ``postgres://``) URL opens the PostgreSQL ledger (several workers on
several machines); anything else is the path of a SQLite file. URLs are shown only through
:func:`redact`, so a password in them never reaches output or errors.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._logging import redact_url
from ._sqlite import DEFAULT_DB, ENV_DB, SQLiteStore
from ._store import Store

__all__ = ["default_target", "is_url", "ledger_exists", "open_ledger", "redact"]

_SCHEMES = ("postgresql://", "postgres://")


def is_url(target: str | os.PathLike[str] | None) -> bool:
    """Whether ``target`` names a PostgreSQL ledger rather than a SQLite file."""
    return isinstance(target, str) and target.strip().lower().startswith(_SCHEMES)


def default_target() -> str:
    """``$QONTAK_CAMPAIGN_DB`` (a path or a URL), else ``./qontak-campaigns.db``."""
    return os.environ.get(ENV_DB) or DEFAULT_DB


def redact(target: str | os.PathLike[str]) -> str:
    """``target`` fit to print: a URL loses its password (in the user part or the query).

    >>> redact("postgresql://ops:s3cret@db.example/qontak?sslmode=require&password=x")
    'postgresql://ops:***@db.example/qontak?sslmode=require&password=%2A%2A%2A'
    """
    text = os.fspath(target)
    return redact_url(text) if is_url(text) else text


def ledger_exists(target: str | os.PathLike[str] | None = None) -> bool:
    """Whether there is a ledger to read (a database server always counts as one)."""
    name = default_target() if target is None else target
    return is_url(name) or Path(name).exists()


def open_ledger(target: str | os.PathLike[str] | None = None) -> Store:
    """Open (or create) the ledger: ``target``, else ``$QONTAK_CAMPAIGN_DB``, else
    ``./qontak-campaigns.db``. A ``postgresql://user@host/db`` URL opens the PostgreSQL
    ledger (needs the ``qontak[postgres]`` extra); anything else is a SQLite file."""
    name = default_target() if target is None else target
    if is_url(name):
        from ._postgres import PostgresStore

        return PostgresStore(os.fspath(name))
    return SQLiteStore(name)
