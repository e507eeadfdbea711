"""Envelope pieces shared by every list endpoint: pagination and pages."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ._base import QontakModel, ResponseInfo

__all__ = ["Cursor", "Page", "Pagination"]

T = TypeVar("T", bound=QontakModel)


class Cursor(QontakModel):
    """Opaque cursors for the next and previous page."""

    next: str | None = None
    prev: str | int | None = None
    pit: Any = None


class Pagination(QontakModel):
    """``meta.pagination`` of a list response. ``offset`` is a 1-based page index."""

    cursor: Cursor = Field(default_factory=Cursor)
    offset: int | None = None
    limit: int | None = None
    total: int | None = None
    target_offset: int | None = None


class Page(BaseModel, Generic[T]):
    """One page of a list endpoint: ``data`` plus its pagination and response info."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    data: list[T]
    pagination: Pagination | None = None
    response: ResponseInfo | None = None

    def __iter__(self) -> Any:  # iterate over items, not pydantic fields
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> T:
        return self.data[index]

    @property
    def has_more(self) -> bool:
        """Whether another page follows this one."""
        p = self.pagination
        if p is None or not self.data:
            return False
        if p.cursor.next:
            return True
        if p.total is not None and p.limit and p.offset is not None:
            return p.offset * p.limit < p.total
        return False
