"""Direct sends and their results: send, broadcast list/detail, per-recipient log."""

from __future__ import annotations

import builtins
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import pydantic

from .._checks import check_call_options, check_date, check_message, check_wait, from_pydantic
from .._logging import log_kv
from .._pipeline import ApiRequest, ApiResponse, path_segment
from .._ratelimit import SCOPE_SEND
from ..errors import APIStatusError, DeliveryUnknownError, ValidationError
from ..models import FINAL_STATUSES, Broadcast, BroadcastLogEntry, DirectMessage, Page, Template
from ..validation import normalize_phone, validate_message
from ._base import MAX_PAGES, next_page_params, to_model, to_page

__all__ = ["AsyncBroadcasts", "Broadcasts", "coerce_message", "prepare_message", "wire_number"]

SEND_PATH = "/broadcasts/whatsapp/direct"


class _SyncClient(Protocol):
    default_region: str

    def _request(self, req: ApiRequest) -> ApiResponse: ...
    def _template_for(self, message: DirectMessage) -> Template: ...
    def _sleep(self, seconds: float) -> None: ...
    def _now(self) -> float: ...


class _AsyncClient(Protocol):
    default_region: str

    async def _request(self, req: ApiRequest) -> ApiResponse: ...
    async def _template_for(self, message: DirectMessage) -> Template: ...
    async def _sleep(self, seconds: float) -> None: ...
    def _now(self) -> float: ...


def coerce_message(message: DirectMessage | Mapping[str, Any]) -> DirectMessage:
    """Accept a :class:`DirectMessage` or a plain dict shaped like Qontak's JSON (the Node
    README's dicts work unchanged)."""
    if isinstance(message, DirectMessage):
        return check_message(message)
    if not isinstance(message, Mapping):
        raise ValidationError(
            "message", f"expected a DirectMessage or a dict, got {type(message).__name__}"
        )
    try:
        parsed = DirectMessage.model_validate(dict(message))
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc) from None
    return check_message(parsed)


def wire_number(number: str, region: str | None) -> str:
    """``to_number`` as Qontak reads it: digits with the country code first.

    A number already in that form keeps its country. Reading it again as a national number
    of ``region`` could change the recipient: a builder turns ``+32 12 34 56 78`` into
    ``3212345678``, which a ``US`` client would otherwise send to ``+1 321-234-5678``. Other
    spellings (``0812…``, ``+62 812…``) are normalised with ``region`` as people write them.
    """
    if isinstance(number, str) and number.isascii() and number.isdigit():
        try:
            return normalize_phone("+" + number, None)
        except ValidationError:
            pass
    return normalize_phone(number, region)


def prepare_message(
    message: DirectMessage, template: Template | None, *, region: str, validate: bool
) -> DirectMessage:
    """Normalise the number and check the message against its template (pure)."""
    prepared = message.model_copy(deep=True)
    prepared.with_template(message.template or template)
    prepared.to_number = wire_number(message.to_number, region)
    if validate:
        validate_message(prepared, template or message.template)
    return prepared


def _send_request(
    message: DirectMessage, timeout: float | None, max_retries: int | None
) -> ApiRequest:
    return ApiRequest(
        "POST",
        SEND_PATH,
        json=message.to_wire(),
        idempotent=False,
        scope=SCOPE_SEND,
        timeout=timeout,
        max_retries=max_retries,
    )


def _log_request(broadcast_id: str, params: Mapping[str, Any]) -> ApiRequest:
    return ApiRequest(
        "GET",
        f"/broadcasts/{path_segment(broadcast_id, 'broadcast_id')}/whatsapp/log",
        params=params,
    )


def _list_request(params: Mapping[str, Any]) -> ApiRequest:
    return ApiRequest("GET", "/broadcasts/whatsapp", params=params)


def _get_request(broadcast_id: str) -> ApiRequest:
    return ApiRequest("GET", f"/broadcasts/{path_segment(broadcast_id, 'broadcast_id')}/whatsapp")


#: How far back of a failed send's time to look when reconciling: the Date window Mekari
#: allows for clock skew between us and the server.
RECONCILE_SKEW_SECONDS = 300.0


def _iso(value: datetime | str | float | None) -> str | None:
    """A date filter as ISO 8601 UTC (``…Z``); epoch seconds and datetimes are accepted."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, tz=timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _since(value: datetime | str | float | None) -> datetime | str | float | None:
    """Widen a reconcile window by the clock skew Mekari tolerates."""
    if isinstance(value, int | float):
        return value - RECONCILE_SKEW_SECONDS
    if isinstance(value, datetime):
        return value - timedelta(seconds=RECONCILE_SKEW_SECONDS)
    return value


def _list_params(
    start_date: datetime | str | float | None,
    end_date: datetime | str | float | None,
    filters: dict[str, Any],
) -> dict[str, Any]:
    start = _iso(check_date("start_date", start_date))
    end = _iso(check_date("end_date", end_date))
    return {"start_date": start, "end_date": end, **filters}


def _done(rows: Iterable[BroadcastLogEntry], until: frozenset[str]) -> bool:
    rows = list(rows)
    return bool(rows) and all((r.status or "") in until for r in rows)


def _matches(broadcast: Broadcast, template_id: str | None) -> bool:
    if template_id is None:
        return True
    tpl = broadcast.message_template or {}
    return (
        tpl.get("id") == template_id
        or (broadcast.model_extra or {}).get("message_template_id") == template_id
    )


def _accepted(resp: ApiResponse, message: DirectMessage, sent_at: float) -> Broadcast:
    """The broadcast a successful send returned.

    A 2xx means Qontak took the message, so an answer we cannot read must not look like an
    ordinary (retryable) error: it is an unknown outcome to reconcile, never a reason to resend.
    """
    try:
        broadcast = to_model(resp, Broadcast, "broadcast")
    except APIStatusError as exc:
        raise DeliveryUnknownError(
            f"Qontak accepted the send (HTTP {resp.info.status_code}) but its answer had no "
            f"readable broadcast ({'; '.join(exc.messages)}); it was not re-sent. Reconcile "
            "before sending again",
            payload=message.to_wire(),
            sent_at=sent_at,
            status_code=resp.info.status_code,
            request_id=resp.info.request_id,
            cause="unreadable 2xx",
        ) from None
    log_kv(logging.INFO, "sent", to=message.to_number, broadcast_id=broadcast.id)
    return broadcast


class Broadcasts:
    """Send template messages and follow their delivery."""

    def __init__(self, client: _SyncClient) -> None:
        self._client = client

    def send_direct(
        self,
        message: DirectMessage | Mapping[str, Any],
        *,
        validate: bool = True,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Broadcast:
        """Send one template message; returns the broadcast (its ``id`` reads the log).

        The number is normalised and, with ``validate`` (the default), the message is
        checked against its template first; nothing is sent when a check fails
        (:class:`~qontak.ValidationError`). A send is retried only when it provably did not
        take effect (connection refused, 429). When the outcome is unknown (read timeout,
        dropped connection, 5xx) :class:`~qontak.DeliveryUnknownError` is raised and nothing
        is re-sent.
        """
        check_call_options(timeout, max_retries)
        msg = coerce_message(message)
        template = self._client._template_for(msg) if validate and msg.template is None else None
        msg = prepare_message(msg, template, region=self._client.default_region, validate=validate)
        sent_at = self._client._now()
        resp = self._client._request(_send_request(msg, timeout, max_retries))
        return _accepted(resp, msg, sent_at)

    def get(self, broadcast_id: str) -> Broadcast:
        """One broadcast with its ``message_status_count``."""
        resp = self._client._request(_get_request(broadcast_id))
        return to_model(resp, Broadcast, "broadcast")

    def list(
        self,
        *,
        start_date: datetime | str | float | None = None,
        end_date: datetime | str | float | None = None,
        **filters: Any,
    ) -> Page[Broadcast]:
        """One page of broadcasts (``limit``, ``offset``, ``query``, ``target_channel``…)."""
        resp = self._client._request(_list_request(_list_params(start_date, end_date, filters)))
        return to_page(resp, Broadcast, "broadcasts")

    def iter(
        self,
        *,
        start_date: datetime | str | float | None = None,
        end_date: datetime | str | float | None = None,
        **filters: Any,
    ) -> Iterator[Broadcast]:
        """Every broadcast matching the filters, following pages."""
        params: dict[str, Any] | None = _list_params(start_date, end_date, filters)
        for _ in range(MAX_PAGES):
            if params is None:
                return
            page = to_page(self._client._request(_list_request(params)), Broadcast, "broadcasts")
            yield from page
            params = next_page_params(page, params)

    def log(self, broadcast_id: str, **params: Any) -> builtins.list[BroadcastLogEntry]:
        """Every recipient's delivery status for a broadcast (pages are followed)."""
        rows: builtins.list[BroadcastLogEntry] = []
        query: dict[str, Any] | None = dict(params)
        for _ in range(MAX_PAGES):
            if query is None:
                break
            resp = self._client._request(_log_request(broadcast_id, query))
            page = to_page(resp, BroadcastLogEntry, "broadcast log")
            rows.extend(page)
            query = next_page_params(page, query)
        return rows

    def wait(
        self,
        broadcast_id: str,
        *,
        until: Iterable[str] = FINAL_STATUSES,
        timeout: float = 120.0,
        interval: float = 2.0,
        on_update: Callable[[builtins.list[BroadcastLogEntry]], None] | None = None,
    ) -> builtins.list[BroadcastLogEntry]:
        """Poll the log until every row reaches one of ``until`` (default: read or failed)
        or ``timeout`` seconds pass; returns the last rows seen."""
        wanted = check_wait(until, timeout, interval)
        deadline = self._client._now() + timeout
        while True:
            rows = self.log(broadcast_id)
            if on_update is not None:
                on_update(rows)
            if _done(rows, wanted) or self._client._now() >= deadline:
                return rows
            self._client._sleep(interval)

    def find_sent(
        self,
        to_number: str,
        *,
        message_template_id: str | None = None,
        since: datetime | str | float | None = None,
    ) -> builtins.list[Broadcast]:
        """Broadcasts to ``to_number`` (optionally of one template, created after
        ``since``): how to settle a :class:`~qontak.DeliveryUnknownError`."""
        number = normalize_phone(to_number, self._client.default_region)
        found = []
        for broadcast in self.iter(start_date=_since(since)):
            if not _matches(broadcast, message_template_id):
                continue
            if any(r.contact_phone_number == number for r in self.log(broadcast.id)):
                found.append(broadcast)
        return found


class AsyncBroadcasts:
    """Async twin of :class:`Broadcasts`."""

    def __init__(self, client: _AsyncClient) -> None:
        self._client = client

    async def send_direct(
        self,
        message: DirectMessage | Mapping[str, Any],
        *,
        validate: bool = True,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> Broadcast:
        """See :meth:`Broadcasts.send_direct`."""
        check_call_options(timeout, max_retries)
        msg = coerce_message(message)
        template = (
            await self._client._template_for(msg) if validate and msg.template is None else None
        )
        msg = prepare_message(msg, template, region=self._client.default_region, validate=validate)
        sent_at = self._client._now()
        resp = await self._client._request(_send_request(msg, timeout, max_retries))
        return _accepted(resp, msg, sent_at)

    async def get(self, broadcast_id: str) -> Broadcast:
        """See :meth:`Broadcasts.get`."""
        resp = await self._client._request(_get_request(broadcast_id))
        return to_model(resp, Broadcast, "broadcast")

    async def list(
        self,
        *,
        start_date: datetime | str | float | None = None,
        end_date: datetime | str | float | None = None,
        **filters: Any,
    ) -> Page[Broadcast]:
        """See :meth:`Broadcasts.list`."""
        req = _list_request(_list_params(start_date, end_date, filters))
        return to_page(await self._client._request(req), Broadcast, "broadcasts")

    async def iter(
        self,
        *,
        start_date: datetime | str | float | None = None,
        end_date: datetime | str | float | None = None,
        **filters: Any,
    ) -> AsyncIterator[Broadcast]:
        """See :meth:`Broadcasts.iter`."""
        params: dict[str, Any] | None = _list_params(start_date, end_date, filters)
        for _ in range(MAX_PAGES):
            if params is None:
                return
            resp = await self._client._request(_list_request(params))
            page = to_page(resp, Broadcast, "broadcasts")
            for item in page:
                yield item
            params = next_page_params(page, params)

    async def log(self, broadcast_id: str, **params: Any) -> builtins.list[BroadcastLogEntry]:
        """See :meth:`Broadcasts.log`."""
        rows: builtins.list[BroadcastLogEntry] = []
        query: dict[str, Any] | None = dict(params)
        for _ in range(MAX_PAGES):
            if query is None:
                break
            resp = await self._client._request(_log_request(broadcast_id, query))
            page = to_page(resp, BroadcastLogEntry, "broadcast log")
            rows.extend(page)
            query = next_page_params(page, query)
        return rows

    async def wait(
        self,
        broadcast_id: str,
        *,
        until: Iterable[str] = FINAL_STATUSES,
        timeout: float = 120.0,
        interval: float = 2.0,
        on_update: Callable[[builtins.list[BroadcastLogEntry]], None] | None = None,
    ) -> builtins.list[BroadcastLogEntry]:
        """See :meth:`Broadcasts.wait`."""
        wanted = check_wait(until, timeout, interval)
        deadline = self._client._now() + timeout
        while True:
            rows = await self.log(broadcast_id)
            if on_update is not None:
                on_update(rows)
            if _done(rows, wanted) or self._client._now() >= deadline:
                return rows
            await self._client._sleep(interval)

    async def find_sent(
        self,
        to_number: str,
        *,
        message_template_id: str | None = None,
        since: datetime | str | float | None = None,
    ) -> builtins.list[Broadcast]:
        """See :meth:`Broadcasts.find_sent`."""
        number = normalize_phone(to_number, self._client.default_region)
        found = []
        async for broadcast in self.iter(start_date=_since(since)):
            if not _matches(broadcast, message_template_id):
                continue
            if any(r.contact_phone_number == number for r in await self.log(broadcast.id)):
                found.append(broadcast)
        return found
