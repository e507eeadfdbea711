"""WhatsApp templates: list (with filters and page following), detail, lookup by name."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import Any

from .._checks import check_choice_text, check_text
from .._pipeline import ApiRequest, path_segment
from ..errors import ValidationError
from ..models import Page, Template, TemplateCategory
from ._base import MAX_PAGES, AsyncRequester, SyncRequester, next_page_params, to_model, to_page

__all__ = ["AsyncTemplates", "Templates", "pick_template"]


def _filters(
    *,
    query: str | None = None,
    status: str | None = None,
    statuses: Sequence[str] | None = None,
    category: Sequence[str] | str | None = None,
    excluded_category: Sequence[str] | None = None,
    hsm_chat: bool | None = None,
    limit: int | None = None,
    offset: int | None = None,
    cursor: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    if isinstance(category, str):
        category = [category]
    return {
        "query": query,
        "status": status,
        "statuses": list(statuses) if statuses else None,
        "category": list(category) if category else None,
        "excluded_category": list(excluded_category) if excluded_category else None,
        "hsm_chat": hsm_chat,
        "limit": limit,
        "offset": offset,
        "cursor": cursor,
        **extra,
    }


def _list_request(params: dict[str, Any]) -> ApiRequest:
    return ApiRequest("GET", "/templates/whatsapp", params=params)


def _get_request(template_id: str) -> ApiRequest:
    return ApiRequest("GET", f"/templates/{path_segment(template_id, 'template_id')}/whatsapp")


def _language_codes(data: Any) -> builtins.list[str]:
    """Codes from ``GET /templates/language``: plain strings or ``{"name", "value"}`` items."""
    if not isinstance(data, builtins.list):
        return []
    codes = []
    for item in data:
        if isinstance(item, dict):
            item = item.get("value") or item.get("code")
        if item:
            codes.append(str(item))
    return codes


def _check_lookup(name: object, language: object) -> None:
    check_text("name", name, max_len=512, multiline=False, empty=False)
    if language is not None:
        check_choice_text("language", language)


def pick_template(templates: Iterable[Template], name: str, language: str | None) -> Template:
    """Choose the template called ``name`` (in ``language`` when given).

    Raises :class:`ValidationError` when there is none, or when several languages match
    and no language was given.
    """
    _check_lookup(name, language)
    named = [t for t in templates if t.name == name]
    if language is not None:
        wanted = language.lower()
        exact = [t for t in named if t.language.lower() == wanted]
        if not exact:
            have = ", ".join(sorted({t.language for t in named})) or "none"
            raise ValidationError(
                "template", f"no template named {name!r} in language {language!r} (have: {have})"
            )
        named = exact
    if not named:
        raise ValidationError("template", f"no template named {name!r}")
    languages = sorted({t.language for t in named})
    if len(languages) > 1:
        raise ValidationError(
            "language",
            f"template {name!r} exists in {', '.join(languages)}; pass language= to choose",
        )
    # Prefer an approved copy when the same name/language appears more than once.
    named.sort(key=lambda t: not t.is_approved)
    return named[0]


class Templates:
    """WhatsApp message templates."""

    def __init__(self, client: SyncRequester) -> None:
        self._client = client

    def list(self, **filters: Any) -> Page[Template]:
        """One page of templates.

        Filters: ``query``, ``status``, ``statuses``, ``category``, ``excluded_category``,
        ``hsm_chat``, ``limit``, ``offset`` (1-based page), ``cursor``, and any other query
        parameter Qontak accepts.
        """
        resp = self._client._request(_list_request(_filters(**filters)))
        return to_page(resp, Template, "templates")

    def iter(self, **filters: Any) -> Iterator[Template]:
        """Every template matching ``filters``, following pages for you."""
        params: dict[str, Any] | None = _filters(**filters)
        for _ in range(MAX_PAGES):
            if params is None:
                return
            resp = self._client._request(_list_request(params))
            page = to_page(resp, Template, "templates")
            yield from page
            params = next_page_params(page, params)

    def get(self, template_id: str) -> Template:
        """One template by its ``message_template_id``."""
        return to_model(self._client._request(_get_request(template_id)), Template, "template")

    def find(self, name: str, language: str | None = None) -> Template:
        """The template called ``name`` (in ``language``), e.g.
        ``client.templates.find("login_otp", language="id")``."""
        _check_lookup(name, language)
        return pick_template(self.iter(query=name), name, language)

    def categories(self) -> builtins.list[TemplateCategory]:
        """Template categories (``GET /templates/category``)."""
        resp = self._client._request(ApiRequest("GET", "/templates/category"))
        return builtins.list(to_page(resp, TemplateCategory, "categories"))

    def languages(self) -> builtins.list[str]:
        """Language codes templates can use (``GET /templates/language``)."""
        resp = self._client._request(ApiRequest("GET", "/templates/language"))
        data = resp.data
        return _language_codes(data)


class AsyncTemplates:
    """Async twin of :class:`Templates`."""

    def __init__(self, client: AsyncRequester) -> None:
        self._client = client

    async def list(self, **filters: Any) -> Page[Template]:
        """See :meth:`Templates.list`."""
        resp = await self._client._request(_list_request(_filters(**filters)))
        return to_page(resp, Template, "templates")

    async def iter(self, **filters: Any) -> AsyncIterator[Template]:
        """See :meth:`Templates.iter`."""
        params: dict[str, Any] | None = _filters(**filters)
        for _ in range(MAX_PAGES):
            if params is None:
                return
            resp = await self._client._request(_list_request(params))
            page = to_page(resp, Template, "templates")
            for item in page:
                yield item
            params = next_page_params(page, params)

    async def get(self, template_id: str) -> Template:
        """See :meth:`Templates.get`."""
        resp = await self._client._request(_get_request(template_id))
        return to_model(resp, Template, "template")

    async def find(self, name: str, language: str | None = None) -> Template:
        """See :meth:`Templates.find`."""
        _check_lookup(name, language)
        found = [t async for t in self.iter(query=name)]
        return pick_template(found, name, language)

    async def categories(self) -> builtins.list[TemplateCategory]:
        """See :meth:`Templates.categories`."""
        resp = await self._client._request(ApiRequest("GET", "/templates/category"))
        return builtins.list(to_page(resp, TemplateCategory, "categories"))

    async def languages(self) -> builtins.list[str]:
        """See :meth:`Templates.languages`."""
        resp = await self._client._request(ApiRequest("GET", "/templates/language"))
        data = resp.data
        return _language_codes(data)
