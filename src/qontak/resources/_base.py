"""Plumbing shared by the resources: turning answers into models, and page following."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import pydantic

from .._pipeline import ApiRequest, ApiResponse
from ..errors import APIStatusError
from ..models import Page, Pagination, QontakModel

__all__ = [
    "MAX_PAGES",
    "AsyncRequester",
    "SyncRequester",
    "next_page_params",
    "page_class",
    "to_model",
    "to_page",
]

M = TypeVar("M", bound=QontakModel)

#: A safety stop for page following, in case a server keeps answering "there is more".
MAX_PAGES = 10_000


class SyncRequester(Protocol):
    """What a sync resource needs from its client."""

    def _request(self, req: ApiRequest) -> ApiResponse: ...


class AsyncRequester(Protocol):
    """What an async resource needs from its client."""

    async def _request(self, req: ApiRequest) -> ApiResponse: ...


def _unexpected(resp: ApiResponse, what: str, exc: Exception | None = None) -> APIStatusError:
    detail = f": {exc}" if exc else ""
    return APIStatusError(
        resp.info.status_code,
        body={"message": f"unexpected response shape for {what}{detail}"[:300]},
        request_id=resp.info.request_id,
    )


def to_model(resp: ApiResponse, model: type[M], what: str) -> M:
    """Parse ``resp.data`` into ``model`` and attach the response info."""
    data = resp.data
    if not isinstance(data, Mapping):
        raise _unexpected(resp, what)
    try:
        item = model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _unexpected(resp, what, exc) from None
    item.with_response(resp.info)
    return item


def to_page(resp: ApiResponse, model: type[M], what: str) -> Page[M]:
    """Parse a list envelope into a :class:`Page`."""
    data = resp.data
    if data is None:
        data = []
    if not isinstance(data, list):
        raise _unexpected(resp, what)
    try:
        items = [model.model_validate(d) for d in data]
        raw_pagination: Any = resp.meta.get("pagination")
        pagination = (
            Pagination.model_validate(raw_pagination)
            if isinstance(raw_pagination, Mapping)
            else None
        )
    except pydantic.ValidationError as exc:
        raise _unexpected(resp, what, exc) from None
    for item in items:
        item.with_response(resp.info)
    # Items and pagination are validated above; building the page needs no second pass.
    return page_class(model).model_construct(data=items, pagination=pagination, response=resp.info)


_PAGE_CLASSES: dict[type[Any], type[Page[Any]]] = {}


def page_class(model: type[M]) -> type[Page[M]]:
    """``Page[model]``, made once per model (pydantic's own lookup costs more than a send's
    signing)."""
    cls = _PAGE_CLASSES.get(model)
    if cls is None:
        cls = _PAGE_CLASSES[model] = Page[model]  # type: ignore[valid-type]
    return cls


def next_page_params(page: Page[Any], params: Mapping[str, Any]) -> dict[str, Any] | None:
    """Query parameters for the page after ``page``, or ``None`` when it was the last.

    Cursors win when the server gives one; otherwise ``offset`` (a 1-based page index)
    is advanced.
    """
    if not page.has_more or page.pagination is None:
        return None
    p = page.pagination
    nxt = dict(params)
    if p.cursor.next:
        nxt.pop("offset", None)
        nxt["cursor"] = p.cursor.next
        nxt["cursor_direction"] = "after"
        return nxt
    nxt["offset"] = (p.offset or 1) + 1
    if p.limit and "limit" not in nxt:
        nxt["limit"] = p.limit
    return nxt
