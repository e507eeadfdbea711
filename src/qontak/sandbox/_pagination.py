"""Pagination of list endpoints: the one place the sandbox decides what offset and cursor mean.

Qontak's documentation does not say whether ``offset`` is 0- or 1-based; responses show
``"offset": 1`` for the first page, so the sandbox reads ``offset`` as a **1-based page
index** (``offset=2&limit=10`` → items 11–20). ``offset=0`` is taken as page 1, so a client
that assumes 0-based gets the first page rather than an error.

- ``limit``: page size, default 100 (as in every documented response), at most 100.
- ``cursor``: opaque; when given it wins over ``offset``. ``meta.pagination.cursor.next`` /
  ``prev`` hand out cursors for the next / previous page (null at either end), and
  ``cursor_direction=before`` pages backwards from a cursor.
- ``meta.pagination`` always has ``cursor{next,prev,pit:null}``, ``offset`` (the page
  served), ``limit``, ``total`` (items matching the filters) and ``target_offset: 0``.

Bad values (non-numbers, a garbled cursor) give 422 through :class:`PaginationError`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "PaginationError", "paginate"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 100

T = TypeVar("T")


class PaginationError(ValueError):
    """A pagination parameter the server cannot read."""


def _encode(index: int) -> str:
    return base64.b64encode(f"sandbox:{index}".encode()).decode()


def _decode(cursor: str) -> int:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
        prefix, _, number = text.partition(":")
        if prefix != "sandbox":
            raise ValueError(cursor)
        return max(0, int(number))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise PaginationError("cursor is invalid") from exc


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise PaginationError(f"{name} is invalid") from exc


def paginate(items: Sequence[T], params: Mapping[str, str]) -> tuple[list[T], dict[str, Any]]:
    """One page of ``items`` and the ``meta`` block describing it."""
    limit = _int(params, "limit", DEFAULT_LIMIT)
    if limit < 1:
        raise PaginationError("limit must be greater than 0")
    limit = min(limit, MAX_LIMIT)
    cursor = params.get("cursor")
    if cursor:
        anchor = _decode(cursor)
        if params.get("cursor_direction", "after") == "before":
            start = max(0, anchor - limit)
            end = anchor
        else:
            start = anchor
            end = anchor + limit
    else:
        page = max(1, _int(params, "offset", 1))
        start = (page - 1) * limit
        end = start + limit
    page_items = list(items[start:end])
    total = len(items)
    meta = {
        "pagination": {
            "cursor": {
                "next": _encode(end) if end < total else None,
                "prev": _encode(start) if start > 0 else None,
                "pit": None,
            },
            "offset": start // limit + 1,
            "limit": limit,
            "total": total,
            "target_offset": 0,
        }
    }
    return page_items, meta
