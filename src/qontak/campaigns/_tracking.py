"""Delivery tracking: read back what WhatsApp did with the accepted rows, cheaply.

Two sources, cheapest first:

- **Webhook events** (:mod:`qontak.webhooks`): a receiver keeps Qontak's status callbacks in a
  :class:`~qontak.webhooks.SQLiteWebhookStore` (the ledger's own file, or another);
  :func:`apply_webhook_events` reads the events past the campaign's high-water mark (the
  store's sequence number, kept in the ledger) and links each to a row. Events carry the
  WhatsApp message id (``external_id``) and the customer's number but no broadcast id, so an
  event links by its ``external_id`` when the row already has one, else by number (unique in
  a campaign) if it happened after the row was accepted (less ``skew``), and the row then
  keeps that ``external_id``. This costs no API request.
- **Polling** (:func:`refresh_delivery`): a direct send is a broadcast of one recipient, so
  the broadcast *list* (100 per page, each with its ``message_status_count``) tells the
  delivery status of 100 rows per request; only failed rows cost one more request each (the
  log, for the WhatsApp error). Every GET comes out of the same account budget as the sends,
  so a refresh makes at most ``max_requests`` requests: tracking never starves sending. With
  webhooks, only rows no event was heard of ``poll_after`` seconds after they were accepted
  are polled (:func:`track_delivery`).

Either way a row's status only moves forward (pending < sent < delivered < read|failed), and
the ledger records which source settled it and how many requests tracking cost.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .._client import AsyncQontak
from ..models import Broadcast
from ..webhooks import SQLiteWebhookStore, StatusEvent
from ._ledger import LedgerError, RowState
from ._store import Store

__all__ = [
    "DEFAULT_POLL_AFTER",
    "EventSource",
    "StatusReport",
    "TrackResult",
    "TrackingStore",
    "WebhookResult",
    "apply_webhook_events",
    "due_for_polling",
    "open_webhook_events",
    "refresh_delivery",
    "status",
    "track_delivery",
]

#: Seconds a row may go without any webhook event before it is polled.
DEFAULT_POLL_AFTER = 600.0


@runtime_checkable
class TrackingStore(Store, Protocol):
    """A ledger that keeps who settled each row and the webhook high-water mark
    (:class:`~._sqlite.SQLiteStore` does)."""

    def tracking_mark(self, campaign_id: str) -> tuple[str | None, int, int]:
        """``(webhook source, high-water mark, API requests spent on tracking)``."""
        ...

    def delivery_row(
        self, campaign_id: str, *, external_id: str | None, to_number: str | None
    ) -> tuple[int, str, float | None, str | None, str | None] | None:
        """``(line, state, sent_at, delivery_status, linked external_id)`` or None."""
        ...

    def apply_delivery(
        self,
        campaign_id: str,
        updates: Any,
        *,
        source: str,
        mark: tuple[str, int] | None = None,
        requests: int = 0,
    ) -> int:
        """Record statuses (forward only) with their source; move the mark; count requests."""
        ...

    def delivery_sources(self, campaign_id: str) -> dict[str, int]:
        """Rows with a final status per source (``webhook``, ``poll``)."""
        ...

    def unheard_rows(self, campaign_id: str, *, sent_before: float) -> list[tuple[int, str]]:
        """``(line, broadcast_id)`` of open rows sent before then with no event heard."""
        ...


class EventSource(Protocol):
    """Where webhook events are read from (:class:`~qontak.webhooks.SQLiteWebhookStore`)."""

    @property
    def path(self) -> str:
        """Names the source: the high-water mark belongs to one source."""
        ...

    def events_after(self, seq: int = 0, limit: int = 1000) -> list[tuple[int, StatusEvent]]:
        """Events after sequence number ``seq``, oldest first."""
        ...


def open_webhook_events(
    ledger: str | Path | None, webhook_db: str | Path | None = None
) -> SQLiteWebhookStore | None:
    """The webhook event store feeding a campaign: ``webhook_db`` when given, else the
    ledger's own file when a receiver writes there (it has a ``webhook_events`` table), else
    None (track by polling)."""
    if webhook_db is not None:
        if not Path(webhook_db).is_file():
            raise LedgerError(f"{webhook_db}: no webhook event store there")
        return SQLiteWebhookStore(webhook_db)
    if ledger is None or not Path(ledger).is_file():
        return None
    try:
        conn = sqlite3.connect(f"{Path(ledger).resolve().as_uri()}?mode=ro", uri=True)
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'webhook_events'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return None
    return SQLiteWebhookStore(ledger) if found else None


def _tracking(store: Store) -> TrackingStore:
    if not isinstance(store, TrackingStore):
        raise LedgerError(f"this ledger ({type(store).__name__}) cannot track by webhook")
    return store


_PAGE = 100
#: A status in this order wins over the ones after it (one recipient per broadcast).
_ORDER = ("failed", "read", "delivered", "sent", "pending")
FINAL_DELIVERY = frozenset({"read", "failed"})


@dataclass
class TrackResult:
    """What a refresh read."""

    updated: int = 0
    requests: int = 0
    complete: bool = True
    """False when ``max_requests`` ran out before every accepted row was seen."""
    webhook_events: int = 0
    """Webhook events read (no request)."""
    from_webhooks: int = 0
    """Rows whose status moved by a webhook event."""
    polled: int = 0
    """Rows asked of the API (by polling)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "updated": self.updated,
            "requests": self.requests,
            "complete": self.complete,
            "webhook_events": self.webhook_events,
            "from_webhooks": self.from_webhooks,
            "polled": self.polled,
        }


def _status_of(broadcast: Broadcast) -> str | None:
    counts = broadcast.message_status_count
    if counts is None:
        return None
    for name in _ORDER:
        if getattr(counts, name, 0):
            return name
    return None


async def refresh_delivery(
    client: AsyncQontak,
    store: Store,
    campaign_id: str,
    *,
    max_requests: int = 20,
    skew: float = 120.0,
    only: Collection[str] | None = None,
) -> TrackResult:
    """Update the delivery status of the campaign's accepted rows (of the broadcast ids in
    ``only``, when given) from the API, making at most ``max_requests`` requests."""
    result = TrackResult()
    earliest: float | None = None
    open_ids: dict[str, int] = {}
    for row in store.iter_rows(campaign_id, [RowState.ACCEPTED]):
        if row.broadcast_id and row.delivery_status not in FINAL_DELIVERY:
            if only is not None and row.broadcast_id not in only:
                continue
            open_ids[row.broadcast_id] = row.line
            if row.sent_at is not None:
                earliest = row.sent_at if earliest is None else min(earliest, row.sent_at)
    if not open_ids:
        return result
    result.polled = len(open_ids)
    since = (earliest if earliest is not None else time.time()) - skew
    updates: list[tuple[str, str, str | None]] = []
    wamids: dict[str, str] = {}
    failed: list[str] = []
    seen = 0
    result.requests = 1
    async for broadcast in client.broadcasts.iter(start_date=since, limit=_PAGE):
        seen += 1
        if broadcast.id in open_ids:
            status = _status_of(broadcast)
            if status == "failed":
                failed.append(broadcast.id)
            elif status is not None:
                updates.append((broadcast.id, status, None))
        if seen % _PAGE == 0:
            # The next item needs another page: stop here if the budget is spent.
            if result.requests >= max_requests:
                result.complete = False
                break
            result.requests += 1
    for broadcast_id in failed:
        if result.requests >= max_requests:
            result.complete = False
            updates.append((broadcast_id, "failed", None))
            continue
        result.requests += 1
        entries = await client.broadcasts.log(broadcast_id)
        error = None
        for entry in entries:
            if entry.whatsapp_message_id and entry.whatsapp_message_id != "n/a":
                wamids[broadcast_id] = entry.whatsapp_message_id  # later events link by it
            if entry.status == "failed":
                code = entry.error_code
                text = entry.whatsapp_error_message or "failed"
                error = f"{code}: {text}" if code is not None else f": {text}"
        updates.append((broadcast_id, "failed", error))
    if isinstance(store, TrackingStore):
        # Forward only, and counted: the status shows what tracking cost.
        result.updated = store.apply_delivery(
            campaign_id,
            [(open_ids[b], st, err, wamids.get(b), None) for b, st, err in updates],
            source="poll",
            requests=result.requests,
        )
    else:
        result.updated = store.set_delivery(campaign_id, updates)
    return result


@dataclass
class WebhookResult:
    """What :func:`apply_webhook_events` read."""

    events: int = 0
    linked: int = 0
    """Events that belong to a row of the campaign."""
    updated: int = 0
    """Rows whose status moved."""
    held: bool = False
    """Stopped at an event of a row still being sent (read again next time)."""
    high_water_mark: int = 0


_HOLD = -1


def _ledger_status(event: StatusEvent) -> str:
    return "pending" if event.status == "created" else event.status


def _error_text(event: StatusEvent) -> str | None:
    if event.status != "failed":
        return None
    err = event.error or {}
    text = err.get("details") or err.get("title") or "failed"
    code = err.get("code")
    return f"{code}: {text}" if code is not None else f": {text}"


class _Linker:
    """Finds the row of each event (see the module notes); remembers links made within
    one batch, before they are written."""

    def __init__(self, store: TrackingStore, campaign_id: str, skew: float, now: float) -> None:
        self.store = store
        self.campaign_id = campaign_id
        self.skew = skew
        self.now = now
        self.links: dict[str, int] = {}
        self.taken: dict[int, str] = {}

    def line_of(self, event: StatusEvent) -> int | None:
        ext = event.external_id
        if ext is not None and ext in self.links:
            return self.links[ext]
        found = self.store.delivery_row(
            self.campaign_id, external_id=ext, to_number=event.to_number
        )
        if found is None:
            return None
        line, state, sent_at, _, linked = found
        linked = linked or self.taken.get(line)
        if ext is not None and linked == ext:
            return line
        if state == RowState.SENDING.value:
            # Its 201 may not be recorded yet: keep the event for the next pass, unless old.
            recent = event.occurred_at is None or event.occurred_at >= self.now - self.skew
            return _HOLD if recent else None
        if state != RowState.ACCEPTED.value:
            return None
        if ext is not None and linked is not None and linked != ext:
            return None  # another message to the same number
        if (
            event.occurred_at is not None
            and sent_at is not None
            and event.occurred_at < sent_at - self.skew
        ):
            return None  # a message from before this campaign's
        if ext is not None:
            self.links[ext] = line
            self.taken[line] = ext
        return line


def apply_webhook_events(
    store: Store,
    campaign_id: str,
    events: EventSource,
    *,
    skew: float = 120.0,
    now: float | None = None,
    batch: int = 1000,
) -> WebhookResult:
    """Apply the webhook events kept since the campaign's high-water mark to its rows
    (no request); the mark moves in the same transaction as the statuses."""
    tracked = _tracking(store)
    identity = str(events.path)
    source, seq, _ = tracked.tracking_mark(campaign_id)
    if source != identity:
        seq = 0  # another event store: its numbers are not ours (re-reading is harmless)
    linker = _Linker(tracked, campaign_id, skew, time.time() if now is None else now)
    result = WebhookResult(high_water_mark=seq)
    while not result.held:
        read = events.events_after(seq, batch)
        if not read:
            break
        updates: list[tuple[int, str, str | None, str | None, float | None]] = []
        last = seq
        for number, event in read:
            line = linker.line_of(event)
            if line == _HOLD:
                result.held = True
                break
            last = number
            result.events += 1
            if line is None:
                continue
            result.linked += 1
            updates.append(
                (
                    line,
                    _ledger_status(event),
                    _error_text(event),
                    event.external_id,
                    event.occurred_at,
                )
            )
        if last != seq:
            result.updated += tracked.apply_delivery(
                campaign_id, updates, source="webhook", mark=(identity, last)
            )
            seq = last
        if len(read) < batch:
            break
    result.high_water_mark = seq
    return result


def due_for_polling(
    store: Store, campaign_id: str, *, poll_after: float, now: float | None = None
) -> set[str]:
    """Broadcast ids of the open rows no webhook event was heard of ``poll_after`` seconds
    after they were accepted."""
    moment = time.time() if now is None else now
    return {
        b for _, b in _tracking(store).unheard_rows(campaign_id, sent_before=moment - poll_after)
    }


async def track_delivery(
    client: AsyncQontak | None,
    store: Store,
    campaign_id: str,
    *,
    webhooks: EventSource | None = None,
    poll_after: float = DEFAULT_POLL_AFTER,
    max_requests: int = 20,
    skew: float = 120.0,
    now: float | None = None,
) -> TrackResult:
    """Webhook events first (free), then polling (``client``; None: never) for the rows no
    event was heard of after ``poll_after`` seconds; without ``webhooks``, polling only."""
    if webhooks is None:
        if client is None:
            return TrackResult()
        return await refresh_delivery(
            client, store, campaign_id, max_requests=max_requests, skew=skew
        )
    heard = apply_webhook_events(store, campaign_id, webhooks, skew=skew, now=now)
    result = TrackResult()
    due = due_for_polling(store, campaign_id, poll_after=poll_after, now=now)
    if due and client is not None:
        result = await refresh_delivery(
            client, store, campaign_id, max_requests=max_requests, skew=skew, only=due
        )
    result.webhook_events = heard.events
    result.from_webhooks = heard.updated
    result.updated += heard.updated
    return result


@dataclass
class StatusReport:
    """Counts per state and delivery status, and failures grouped by reason."""

    campaign: dict[str, Any]
    counts: dict[str, int]
    delivery: dict[str, int]
    failures: list[dict[str, Any]] = field(default_factory=list)
    rejects: dict[str, int] = field(default_factory=dict)
    tracking: dict[str, int] = field(default_factory=dict)
    """Rows settled (read/failed) ``by_webhook`` and ``by_polling``, the ``requests`` tracking
    cost, and the webhook ``high_water_mark`` (empty for a ledger that keeps none)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "campaign": self.campaign,
            "counts": self.counts,
            "delivery": self.delivery,
            "failures": self.failures,
            "rejects": self.rejects,
            "tracking": self.tracking,
        }


def status(store: Store, campaign_id: str) -> StatusReport:
    """The campaign as the ledger knows it now (no request)."""
    campaign = store.get_campaign(campaign_id)
    if campaign is None:
        raise LedgerError(f"no campaign {campaign_id!r} in this ledger")
    rejects: dict[str, int] = {}
    seen_invalid: set[int] = set()
    for reject in store.iter_rejects(campaign_id):
        if reject.code in ("duplicate", "opted_out"):
            rejects[reject.code] = rejects.get(reject.code, 0) + 1
        elif reject.line not in seen_invalid:
            seen_invalid.add(reject.line)
            rejects["invalid"] = rejects.get("invalid", 0) + 1
    return StatusReport(
        campaign=campaign.to_dict(),
        counts=store.counts(campaign_id),
        delivery=store.delivery_counts(campaign_id),
        failures=[
            {"kind": kind, "code": code, "reason": reason, "count": count}
            for kind, code, reason, count in store.failures(campaign_id)
        ],
        rejects=rejects,
        tracking=_tracking_counts(store, campaign_id),
    )


def _tracking_counts(store: Store, campaign_id: str) -> dict[str, int]:
    if not isinstance(store, TrackingStore):
        return {}
    settled = store.delivery_sources(campaign_id)
    _, mark, requests = store.tracking_mark(campaign_id)
    return {
        "by_webhook": settled.get("webhook", 0),
        "by_polling": settled.get("poll", 0),
        "requests": requests,
        "high_water_mark": mark,
    }
