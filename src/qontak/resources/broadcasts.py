"""Direct sends and their results: send, broadcast list/detail, per-recipient log."""

from __future__ import annotations

import bisect
import builtins
import dataclasses
import functools
import logging
import math
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import pydantic

from .._checks import (
    check_call_options,
    check_date,
    check_sendable_message,
    check_wait,
    from_pydantic,
)
from .._logging import log_kv
from .._pipeline import ApiRequest, ApiResponse, path_segment
from .._ratelimit import SCOPE_SEND
from ..errors import (
    APIConnectionError,
    APIStatusError,
    DeliveryUnknownError,
    QontakError,
    ValidationError,
)
from ..models import FINAL_STATUSES, Broadcast, BroadcastLogEntry, DirectMessage, Page, Template
from ..validation import normalize_phone, validate_encoded, validate_message
from ._base import MAX_PAGES, next_page_params, to_model, to_page

__all__ = [
    "AsyncBroadcasts",
    "Broadcasts",
    "SentQuery",
    "SentSearch",
    "coerce_message",
    "prepare_message",
    "wire_number",
]

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
        return check_sendable_message(message)
    if not isinstance(message, Mapping):
        raise ValidationError(
            "message", f"expected a DirectMessage or a dict, got {type(message).__name__}"
        )
    try:
        parsed = DirectMessage.model_validate(dict(message))
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc) from None
    return check_sendable_message(parsed)


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
    """Normalise the number and check the message against its template (pure).

    A shallow copy is enough (and ~15× cheaper than a deep one): only top-level fields of
    the copy are reassigned, and the caller's message and template are never mutated.
    """
    prepared = _with_wire_number(message, template, region)
    if validate:
        validate_message(prepared, template or message.template)
    return prepared


def _with_wire_number(
    message: DirectMessage, template: Template | None, region: str
) -> DirectMessage:
    number = _normalized_phone(message.to_number, region)
    prepared = message.model_copy(update={"to_number": number})  # keeps the template
    if prepared.template is None and template is not None:
        prepared.with_template(template)
    return prepared


def _prepare_send(
    message: DirectMessage,
    template: Template | None,
    *,
    region: str,
    validate: bool,
    timeout: float | None,
    max_retries: int | None,
) -> tuple[DirectMessage, ApiRequest]:
    """:func:`prepare_message` and its request. The message is encoded once: the size rule
    measures, and every attempt posts, those same bytes."""
    # Checked again here, with nothing in between that could change it: since the caller's
    # check, fetching the template ran other tasks (async) or the HTTP client's event hooks,
    # which may have changed the message. (A built message costs a quick look: a few µs.)
    check_sendable_message(message)
    prepared = _with_wire_number(message, template, region)
    req = _send_request(prepared, timeout, max_retries)
    if validate:
        validate_encoded(prepared, template or message.template, req.content, types_checked=True)
    return prepared, req


@functools.lru_cache(maxsize=4096)
def _normalized_phone(number: str, region: str) -> str:
    # A builder already normalised most numbers, and a number is often sent to more than
    # once (OTP retries, order updates); parsing one costs more than signing a request.
    return wire_number(number, region)


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


#: Default clock difference allowed between us and Qontak when reconciling (seconds).
RECONCILE_SKEW_SECONDS = 120.0

#: Default time after an attempt before "not in the broadcast list" proves it was not
#: accepted: a request can still land a while after the client gave up on it.
SETTLE_AFTER_SECONDS = 60.0

#: Attempts per read in a reconcile search (more than an ordinary call: a search that gives
#: up leaves unknowns unsettled exactly when the service is struggling).
SEARCH_READ_ATTEMPTS = 6

#: When a search could not read part of the list, try again this much later.
SEARCH_RETRY_LATER_SECONDS = 60.0


def _iso(value: datetime | str | float | None) -> str | None:
    """A date filter as ISO 8601 UTC (``…Z``); epoch seconds and datetimes are accepted."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, tz=timezone.utc)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _epoch(value: datetime | str | float | None) -> float | None:
    """Epoch seconds of a timestamp (ISO 8601 text, a datetime or a number); ``None`` when
    there is none or it cannot be read."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _template_of(broadcast: Broadcast) -> str | None:
    tpl = broadcast.message_template or {}
    found = tpl.get("id") or (broadcast.model_extra or {}).get("message_template_id")
    return str(found) if found else None


@dataclass(frozen=True)
class SentQuery:
    """One attempt whose outcome is unknown, to look for in the broadcast list."""

    key: Hashable
    """The caller's id for this attempt (e.g. a ledger row id)."""
    to_number: str
    message_template_id: str | None
    sent_at: float
    """Epoch seconds when the attempt was made."""

    @classmethod
    def from_error(cls, error: DeliveryUnknownError, key: Hashable = None) -> SentQuery:
        """The query that settles ``error`` (``key`` defaults to the number)."""
        if not error.to_number or error.sent_at is None:
            raise ValidationError("error", "carries no to_number or sent_at to search for")
        return cls(
            key=error.to_number if key is None else key,
            to_number=error.to_number,
            message_template_id=error.message_template_id,
            sent_at=error.sent_at,
        )


@dataclass
class SentSearch:
    """What a reconcile search proved, for each query's ``key``."""

    found: dict[Hashable, builtins.list[Broadcast]] = field(default_factory=dict)
    """Proven accepted (usually one broadcast each)."""
    absent: builtins.list[Hashable] = field(default_factory=list)
    """The window has closed (``now >= sent_at + settle_after``) and nothing was found."""
    pending: dict[Hashable, float] = field(default_factory=dict)
    """Cannot be settled yet: epoch time from which a new search can settle it."""
    requests: int = 0
    """HTTP requests this search made (retries included)."""


@dataclass(frozen=True)
class _Query:
    key: Hashable
    number: str
    template_id: str | None
    lo: float  # the broadcast list window that can hold this attempt's broadcast
    hi: float


class _Search:
    """The decisions of one reconcile search, apart from its I/O (shared by both clients).

    One walk of the broadcast list over ``[min(sent_at) - skew, max(sent_at) + skew +
    settle_after]`` (a request may land up to ``settle_after`` after it was made, and the
    two clocks may differ by ``skew``). A broadcast is a candidate when its id is not already
    known, its template is one searched for and its ``created_at`` falls in some query's own
    window; each candidate's log is read once (a broadcast object does not carry the
    recipient's number: only its log does) and matched on normalised number + template.
    """

    def __init__(
        self,
        queries: Iterable[SentQuery],
        *,
        region: str,
        skew: float,
        settle_after: float,
        known_ids: Collection[str],
        lower: float | None = None,
        upper: float | None = None,
    ) -> None:
        for name, value in (("skew", skew), ("settle_after", settle_after)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValidationError(name, f"expected seconds >= 0, got {value!r}")
        self.region = region
        self.skew = float(skew)
        self.settle_after = float(settle_after)
        self.known_ids = frozenset(str(i) for i in known_ids)
        self.ready: dict[Hashable, float] = {}
        self.queries = [self._query(q, lower, upper) for q in queries]
        # Every window has the same width, so sorting by start sorts by end too: the queries
        # whose window holds an instant are one slice, found by two bisections.
        self.queries.sort(key=lambda q: q.lo)
        self.los = [q.lo for q in self.queries]
        self.his = [q.hi for q in self.queries]
        self.by_number: dict[str, builtins.list[_Query]] = {}
        for q in self.queries:
            self.by_number.setdefault(q.number, []).append(q)
        self.templates: frozenset[str] | None = frozenset(
            q.template_id for q in self.queries if q.template_id is not None
        )
        if any(q.template_id is None for q in self.queries):
            self.templates = None  # some query takes any template
        self.lower = min(self.los, default=0.0)
        self.upper = max(self.his, default=0.0)
        self.found: dict[Hashable, builtins.list[Broadcast]] = {}
        self.unsure: dict[Hashable, float] = {}
        self.read_ids: set[str] = set()
        self.requests = 0
        self._last_time: float | None = None
        self._descending = True
        self._seen = 0

    def _query(self, query: SentQuery, lower: float | None, upper: float | None) -> _Query:
        if not isinstance(query, SentQuery):
            raise ValidationError("queries", f"expected SentQuery items, got {query!r}"[:120])
        sent_at = query.sent_at
        if isinstance(sent_at, bool) or not isinstance(sent_at, int | float):
            raise ValidationError("sent_at", f"expected epoch seconds, got {sent_at!r}")
        if not math.isfinite(sent_at):
            raise ValidationError("sent_at", "must be a finite number")
        template = query.message_template_id
        if template is not None and not isinstance(template, str):
            raise ValidationError("message_template_id", "expected a string or None")
        number = wire_number(query.to_number, self.region)
        lo = sent_at - self.skew if lower is None else lower
        hi = sent_at + self.skew + self.settle_after if upper is None else upper
        self.ready[query.key] = sent_at + self.settle_after
        return _Query(query.key, number, template, lo, hi)

    # -- the walk --------------------------------------------------------------------------
    def list_params(self) -> dict[str, Any]:
        """The first page's query: the window, newest first."""
        lower = self.lower if math.isfinite(self.lower) else None
        upper = self.upper if math.isfinite(self.upper) else None
        return _list_params(lower, upper, {"order_direction": "desc"})

    def _windows(self, at: float) -> builtins.list[_Query]:
        """Queries whose own window holds a broadcast created at ``at``."""
        return self.queries[bisect.bisect_left(self.his, at) : bisect.bisect_right(self.los, at)]

    def _wants_template(self, q: _Query, template: str | None) -> bool:
        return q.template_id is None or template is None or q.template_id == template

    def consider(self, broadcast: Broadcast) -> tuple[bool, bool]:
        """``(read its log?, stop the walk?)`` for the next broadcast of the list."""
        created = _epoch(broadcast.created_at)
        stop = False
        if created is not None:
            if self._last_time is not None and created > self._last_time:
                self._descending = False
            self._last_time = created
            self._seen += 1
            # A server that ignores the date filter but keeps the order: nothing older follows.
            stop = self._descending and self._seen > 1 and created < self.lower
        if broadcast.id in self.known_ids or broadcast.id in self.read_ids:
            return False, stop
        template = _template_of(broadcast)
        if self.templates is not None and template is not None and template not in self.templates:
            return False, stop
        if created is None:
            return True, stop  # the server put it in the window; we cannot be more precise
        if not self.lower <= created <= self.upper:
            return False, stop
        return any(self._wants_template(q, template) for q in self._windows(created)), stop

    def record_log(self, broadcast: Broadcast, rows: Iterable[BroadcastLogEntry]) -> None:
        """Match a candidate's log rows to the queries."""
        self.read_ids.add(broadcast.id)
        template = _template_of(broadcast)
        created = _epoch(broadcast.created_at)
        for row in rows:
            for q in self.by_number.get(self._number(row.contact_phone_number), ()):
                at = created if created is not None else _epoch(row.created_at)
                if not self._wants_template(q, template):
                    continue
                if at is not None and not q.lo <= at <= q.hi:
                    continue
                hits = self.found.setdefault(q.key, [])
                if all(b.id != broadcast.id for b in hits):
                    hits.append(broadcast)

    def _number(self, raw: str | None) -> str:
        if not raw:
            return ""
        try:
            return wire_number(raw, self.region)
        except ValidationError:
            return "".join(ch for ch in raw if ch.isdigit())

    def could_not_read(self, broadcast: Broadcast | None, now: float, exc: Exception) -> None:
        """A read failed for good: the queries it could have settled stay unsettled."""
        created = _epoch(broadcast.created_at) if broadcast is not None else None
        template = _template_of(broadcast) if broadcast is not None else None
        affected = self.queries if created is None else self._windows(created)
        for q in affected:
            if self._wants_template(q, template):
                self.unsure[q.key] = now + SEARCH_RETRY_LATER_SECONDS
        log_kv(logging.WARNING, "reconcile read failed", error=type(exc).__name__)

    def result(self, now: float) -> SentSearch:
        """Settle every query from what the walk saw."""
        out = SentSearch(found=dict(self.found), requests=self.requests)
        for q in self.queries:
            if q.key in out.found or q.key in out.pending or q.key in out.absent:
                continue
            ready = self.ready[q.key]
            if q.key in self.unsure:
                out.pending[q.key] = max(ready, self.unsure[q.key])
            elif now < ready:
                out.pending[q.key] = ready
            else:
                out.absent.append(q.key)
        return out


def _retryable(exc: QontakError) -> bool:
    if isinstance(exc, APIConnectionError):
        return True
    if isinstance(exc, APIStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return False


def _read_backoff(attempt: int, exc: QontakError) -> float:
    wait: float = min(8.0, 0.5 * 2.0**attempt)
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and math.isfinite(retry_after):
        wait = max(wait, min(float(retry_after), 60.0))
    return wait


def _once(req: ApiRequest) -> ApiRequest:
    # The search counts and retries its own attempts, so the pipeline makes exactly one.
    return dataclasses.replace(req, max_retries=0)


def _give_up_or_raise(
    search: _Search, broadcast: Broadcast | None, now: float, exc: QontakError
) -> None:
    """After a read failed for good: leave what it could settle pending, or raise.

    A failure that will not pass by waiting (credentials, a filter the server refuses) is
    raised; a struggling server (timeouts, 5xx, 429) only delays the queries concerned. A
    log that cannot be read for another reason leaves its queries pending too: guessing
    either way could resend or lose a message.
    """
    if isinstance(exc, APIStatusError) and exc.status_code in (401, 403):
        raise exc
    if broadcast is None and not _retryable(exc):
        raise exc
    search.could_not_read(broadcast, now, exc)


#: The key of the single query :meth:`Broadcasts.find_sent` makes.
_ONE = "find_sent"


def _one_search(
    to_number: str,
    template_id: str | None,
    since: datetime | str | float | None,
    until: datetime | str | float | None,
    skew: float,
    region: str,
) -> _Search:
    start, end = _epoch(since), _epoch(until)
    for name, raw, value in (("since", since, start), ("until", until, end)):
        if raw is not None and value is None:
            raise ValidationError(
                name, f"expected a datetime, ISO 8601 text or epoch seconds, got {raw!r}"[:160]
            )
    lower = -math.inf if start is None else start - skew
    upper = end if end is not None else (math.inf if start is None else start + skew)
    anchor = start if start is not None else (end if end is not None else 0.0)
    return _Search(
        [SentQuery(_ONE, to_number, template_id, anchor)],
        region=region,
        skew=skew,
        settle_after=0.0,
        known_ids=(),
        lower=lower,
        upper=upper,
    )


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
        msg, req = _prepare_send(
            msg,
            template,
            region=self._client.default_region,
            validate=validate,
            timeout=timeout,
            max_retries=max_retries,
        )
        sent_at = self._client._now()
        resp = self._client._request(req)
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

    def find_sent_many(
        self,
        queries: Iterable[SentQuery],
        *,
        skew: float = RECONCILE_SKEW_SECONDS,
        settle_after: float = SETTLE_AFTER_SECONDS,
        known_ids: Collection[str] = (),
        now: float | None = None,
    ) -> SentSearch:
        """Settle many unknown outcomes in one pass over the broadcast list.

        Lists the broadcasts of ``[min(sent_at) - skew, max(sent_at) + skew + settle_after]``
        once, skips the ids in ``known_ids`` (broadcasts already accounted for) and those of
        other templates, reads each remaining candidate's log once and matches the normalised
        number and template. A query is ``found`` (proven accepted), ``absent`` (its window
        closed, ``now >= sent_at + settle_after``, with nothing found) or ``pending`` (with the
        time it can be settled). Reads are retried (up to :data:`SEARCH_READ_ATTEMPTS` each);
        a part of the list that cannot be read leaves the queries it could hold pending.
        ``requests`` counts every HTTP request made.

        >>> search = client.broadcasts.find_sent_many(  # doctest: +SKIP
        ...     [SentQuery(row.id, row.number, template_id, row.sent_at) for row in unknown]
        ... )
        """
        start = self._client._now() if now is None else now
        search = _Search(
            queries,
            region=self._client.default_region,
            skew=skew,
            settle_after=settle_after,
            known_ids=known_ids,
        )
        self._walk(search)
        return search.result(start)

    def find_sent(
        self,
        to_number: str,
        *,
        message_template_id: str | None = None,
        since: datetime | str | float | None = None,
        until: datetime | str | float | None = None,
        skew: float = RECONCILE_SKEW_SECONDS,
    ) -> builtins.list[Broadcast]:
        """Broadcasts to ``to_number`` (optionally of one template) made around ``since``:
        how to settle one :class:`~qontak.DeliveryUnknownError` (pass its ``sent_at``).

        The search covers ``[since - skew, until]``, ``until`` defaulting to
        ``since + skew``; without ``since`` it walks the whole history (slow). For many
        unknowns at once use :meth:`find_sent_many`.
        """
        search = _one_search(
            to_number, message_template_id, since, until, skew, self._client.default_region
        )
        self._walk(search)
        return search.found.get(_ONE, [])

    def _read(self, search: _Search, req: ApiRequest) -> ApiResponse:
        attempt = 0
        while True:
            search.requests += 1
            try:
                return self._client._request(_once(req))
            except QontakError as exc:
                attempt += 1
                if attempt >= SEARCH_READ_ATTEMPTS or not _retryable(exc):
                    raise
                self._client._sleep(_read_backoff(attempt - 1, exc))

    def _search_log(self, search: _Search, broadcast_id: str) -> builtins.list[BroadcastLogEntry]:
        rows: builtins.list[BroadcastLogEntry] = []
        query: dict[str, Any] | None = {}
        for _ in range(MAX_PAGES):
            if query is None:
                break
            resp = self._read(search, _log_request(broadcast_id, query))
            page = to_page(resp, BroadcastLogEntry, "broadcast log")
            rows.extend(page)
            query = next_page_params(page, query)
        return rows

    def _walk(self, search: _Search) -> None:
        if not search.queries:
            return
        params: dict[str, Any] | None = search.list_params()
        for _ in range(MAX_PAGES):
            if params is None:
                return
            try:
                resp = self._read(search, _list_request(params))
            except QontakError as exc:
                _give_up_or_raise(search, None, self._client._now(), exc)
                return
            page = to_page(resp, Broadcast, "broadcasts")
            for broadcast in page:
                read, stop = search.consider(broadcast)
                if read:
                    try:
                        rows = self._search_log(search, broadcast.id)
                    except QontakError as exc:
                        _give_up_or_raise(search, broadcast, self._client._now(), exc)
                    else:
                        search.record_log(broadcast, rows)
                if stop:
                    return
            params = next_page_params(page, params)


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
        msg, req = _prepare_send(
            msg,
            template,
            region=self._client.default_region,
            validate=validate,
            timeout=timeout,
            max_retries=max_retries,
        )
        sent_at = self._client._now()
        resp = await self._client._request(req)
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

    async def find_sent_many(
        self,
        queries: Iterable[SentQuery],
        *,
        skew: float = RECONCILE_SKEW_SECONDS,
        settle_after: float = SETTLE_AFTER_SECONDS,
        known_ids: Collection[str] = (),
        now: float | None = None,
    ) -> SentSearch:
        """See :meth:`Broadcasts.find_sent_many`."""
        start = self._client._now() if now is None else now
        search = _Search(
            queries,
            region=self._client.default_region,
            skew=skew,
            settle_after=settle_after,
            known_ids=known_ids,
        )
        await self._walk(search)
        return search.result(start)

    async def find_sent(
        self,
        to_number: str,
        *,
        message_template_id: str | None = None,
        since: datetime | str | float | None = None,
        until: datetime | str | float | None = None,
        skew: float = RECONCILE_SKEW_SECONDS,
    ) -> builtins.list[Broadcast]:
        """See :meth:`Broadcasts.find_sent`."""
        search = _one_search(
            to_number, message_template_id, since, until, skew, self._client.default_region
        )
        await self._walk(search)
        return search.found.get(_ONE, [])

    async def _read(self, search: _Search, req: ApiRequest) -> ApiResponse:
        attempt = 0
        while True:
            search.requests += 1
            try:
                return await self._client._request(_once(req))
            except QontakError as exc:
                attempt += 1
                if attempt >= SEARCH_READ_ATTEMPTS or not _retryable(exc):
                    raise
                await self._client._sleep(_read_backoff(attempt - 1, exc))

    async def _search_log(
        self, search: _Search, broadcast_id: str
    ) -> builtins.list[BroadcastLogEntry]:
        rows: builtins.list[BroadcastLogEntry] = []
        query: dict[str, Any] | None = {}
        for _ in range(MAX_PAGES):
            if query is None:
                break
            resp = await self._read(search, _log_request(broadcast_id, query))
            page = to_page(resp, BroadcastLogEntry, "broadcast log")
            rows.extend(page)
            query = next_page_params(page, query)
        return rows

    async def _walk(self, search: _Search) -> None:
        if not search.queries:
            return
        params: dict[str, Any] | None = search.list_params()
        for _ in range(MAX_PAGES):
            if params is None:
                return
            try:
                resp = await self._read(search, _list_request(params))
            except QontakError as exc:
                _give_up_or_raise(search, None, self._client._now(), exc)
                return
            page = to_page(resp, Broadcast, "broadcasts")
            for broadcast in page:
                read, stop = search.consider(broadcast)
                if read:
                    try:
                        rows = await self._search_log(search, broadcast.id)
                    except QontakError as exc:
                        _give_up_or_raise(search, broadcast, self._client._now(), exc)
                    else:
                        search.record_log(broadcast, rows)
                if stop:
                    return
            params = next_page_params(page, params)
