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

:func:`page_request` reads the parameters into a :class:`PageRequest` (which items, by
position) before anything is read, so the store fetches just that page with ``LIMIT`` /
``OFFSET`` and counts the matches in SQL; :func:`paginate` does the same over a list held in
memory (the built-in languages).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "PageRequest",
    "PaginationError",
    "page_request",
    "paginate",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 100
#: Positions past this are clamped: SQLite integers stop at 2**63 and no list is that long.
_MAX_POSITION = 2**53

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


@dataclass(frozen=True)
class PageRequest:
    """The items a request asks for, by position in the filtered, ordered list."""

    start: int
    """Position of the first item (0-based)."""
    end: int
    """Position after the last item."""
    limit: int

    @property
    def count(self) -> int:
        """How many items to read."""
        return self.end - self.start

    def meta(self, total: int) -> dict[str, Any]:
        """The ``meta`` block for this page of ``total`` matching items."""
        return {
            "pagination": {
                "cursor": {
                    "next": _encode(self.end) if self.end < total else None,
                    "prev": _encode(self.start) if self.start > 0 else None,
                    "pit": None,
                },
                "offset": self.start // self.limit + 1,
                "limit": self.limit,
                "total": total,
                "target_offset": 0,
            }
        }


def page_request(params: Mapping[str, str]) -> PageRequest:
    """Read ``limit``, ``offset``, ``cursor`` and ``cursor_direction``."""
    limit = _int(params, "limit", DEFAULT_LIMIT)
    if limit < 1:
        raise PaginationError("limit must be greater than 0")
    limit = min(limit, MAX_LIMIT)
    cursor = params.get("cursor")
    if cursor:
        anchor = min(_decode(cursor), _MAX_POSITION)
        if params.get("cursor_direction", "after") == "before":
            return PageRequest(max(0, anchor - limit), anchor, limit)
        return PageRequest(anchor, anchor + limit, limit)
    page = max(1, _int(params, "offset", 1))
    start = min((page - 1) * limit, _MAX_POSITION)
    return PageRequest(start, start + limit, limit)


def paginate(items: Sequence[T], params: Mapping[str, str]) -> tuple[list[T], dict[str, Any]]:
    """One page of ``items`` held in memory and the ``meta`` block describing it."""
    request = page_request(params)
    return list(items[request.start : request.end]), request.meta(len(items))
