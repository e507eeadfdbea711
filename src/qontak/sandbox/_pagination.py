"""Pagination of list endpoints: the one place the sandbox decides what offset and cursor mean.

Qontak's documentation does not say whether ``offset`` is 0- or 1-based; responses show
``"offset": 1`` for the first page, so the sandbox reads ``offset`` as a **1-based page
index** (``offset=2&limit=10`` → items 11–20). ``offset=0`` is taken as page 1, so a client
that assumes 0-based gets the first page rather than an error.

- ``limit``: page size, default 100 (as in every documented response), at most 100.
- ``cursor``: opaque; when given it wins over ``offset``. ``meta.pagination.cursor.next`` /
  ``prev`` hand out cursors for the next / previous page (null at either end), and
  ``cursor_direction=before`` pages backwards from a cursor. For stored traffic (broadcasts,
  a broadcast's log) a cursor also names the item it sits next to (keyset pagination), so
  following cursors costs one page however deep, and a walk through a list that grows
  meanwhile (newest first) neither repeats nor skips an item; its position is kept only
  for ``meta.pagination.offset``.
- ``meta.pagination`` always has ``cursor{next,prev,pit:null}``, ``offset`` (the page
  served), ``limit``, ``total`` (items matching the filters) and ``target_offset: 0``.

Bad values (non-numbers, a garbled cursor) give 422 through :class:`PaginationError`.

:func:`page_request` reads the parameters into a :class:`PageRequest` (which items, by
position, or next to which item) before anything is read, so the store fetches just that
page (``WHERE seq < ? … LIMIT``, or ``LIMIT`` / ``OFFSET`` for an ``offset``) and counts the
matches in SQL; :func:`paginate` does the same over a list held in
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
    "Anchor",
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


@dataclass(frozen=True)
class Anchor:
    """The item a cursor sits next to, by ``seq``: just after it or just before it."""

    seq: int
    after: bool


def _encode(index: int, anchor: Anchor | None = None) -> str:
    text = f"sandbox:{index}"
    if anchor is not None:
        text += f":{'a' if anchor.after else 'b'}{anchor.seq}"
    return base64.b64encode(text.encode()).decode()


def _decode(cursor: str) -> tuple[int, Anchor | None]:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
        prefix, number, *rest = text.split(":")
        if prefix != "sandbox" or len(rest) > 1:
            raise ValueError(cursor)
        anchor = None
        if rest:
            side, seq = rest[0][:1], int(rest[0][1:])
            if side not in ("a", "b") or not 0 <= seq < 2**62:
                raise ValueError(cursor)
            anchor = Anchor(seq, side == "a")
        return max(0, int(number)), anchor
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
    """The items a request asks for: by position in the filtered, ordered list, or next to
    an :class:`Anchor` (then ``start``/``end`` are the positions it was handed out at)."""

    start: int
    """Position of the first item (0-based)."""
    end: int
    """Position after the last item."""
    limit: int
    anchor: Anchor | None = None
    """Read next to this item instead of at ``start``."""
    backward: bool = False
    """With an anchor: the ``count`` items before it, not after it."""

    @property
    def count(self) -> int:
        """How many items to read (a full page back from an anchor: items may have been
        added before it since its position was handed out)."""
        if self.anchor is not None and self.backward:
            return self.limit
        return self.end - self.start

    def meta(self, total: int, seqs: Sequence[int] | None = None) -> dict[str, Any]:
        """The ``meta`` block for this page of ``total`` matching items; ``seqs`` (the
        served items' seqs, in list order) make keyset cursors."""
        start, end = self.start, self.end
        if seqs is not None and self.anchor is not None:
            if self.backward:
                start = 0 if len(seqs) < self.count else max(0, end - len(seqs))
                end = start + len(seqs)
            else:
                end = start + len(seqs)
        first = Anchor(seqs[0], after=False) if seqs else None
        last = Anchor(seqs[-1], after=True) if seqs else None
        more = end < total if seqs is None else (end < total and len(seqs) == self.count)
        if seqs is not None and self.anchor is not None and self.backward:
            more = end < total
        return {
            "pagination": {
                "cursor": {
                    "next": _encode(end, last) if more else None,
                    "prev": _encode(start, first) if start > 0 else None,
                    "pit": None,
                },
                "offset": start // self.limit + 1,
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
        index, anchor = _decode(cursor)
        index = min(index, _MAX_POSITION)
        if params.get("cursor_direction", "after") == "before":
            if anchor is not None:
                return PageRequest(max(0, index - limit), index, limit, anchor, backward=True)
            return PageRequest(max(0, index - limit), index, limit)
        return PageRequest(index, index + limit, limit, anchor)
    page = max(1, _int(params, "offset", 1))
    start = min((page - 1) * limit, _MAX_POSITION)
    return PageRequest(start, start + limit, limit)


def paginate(items: Sequence[T], params: Mapping[str, str]) -> tuple[list[T], dict[str, Any]]:
    """One page of ``items`` held in memory and the ``meta`` block describing it."""
    request = page_request(params)
    return list(items[request.start : request.end]), request.meta(len(items))
