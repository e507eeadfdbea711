"""Delivery tracking: read back what WhatsApp did with the accepted rows, cheaply.

A direct send is a broadcast of one recipient, so the broadcast *list* (100 per page, each
with its ``message_status_count``) tells the delivery status of 100 rows per request; only
failed rows cost one more request each (the log, for the WhatsApp error). Every GET comes out
of the same account budget as the sends, so a refresh makes at most ``max_requests``
requests: tracking never starves sending.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .._client import AsyncQontak
from ..models import Broadcast
from ._ledger import LedgerError, RowState
from ._store import Store

__all__ = ["StatusReport", "TrackResult", "refresh_delivery", "status"]

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"updated": self.updated, "requests": self.requests, "complete": self.complete}


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
) -> TrackResult:
    """Update the delivery status of the campaign's accepted rows from the API, making at
    most ``max_requests`` requests."""
    result = TrackResult()
    earliest: float | None = None
    open_ids: set[str] = set()
    for row in store.iter_rows(campaign_id, [RowState.ACCEPTED]):
        if row.broadcast_id and row.delivery_status not in FINAL_DELIVERY:
            open_ids.add(row.broadcast_id)
            if row.sent_at is not None:
                earliest = row.sent_at if earliest is None else min(earliest, row.sent_at)
    if not open_ids:
        return result
    since = (earliest if earliest is not None else time.time()) - skew
    updates: list[tuple[str, str, str | None]] = []
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
            if entry.status == "failed":
                code = entry.error_code
                text = entry.whatsapp_error_message or "failed"
                error = f"{code}: {text}" if code is not None else f": {text}"
        updates.append((broadcast_id, "failed", error))
    result.updated = store.set_delivery(campaign_id, updates)
    return result


@dataclass
class StatusReport:
    """Counts per state and delivery status, and failures grouped by reason."""

    campaign: dict[str, Any]
    counts: dict[str, int]
    delivery: dict[str, int]
    failures: list[dict[str, Any]] = field(default_factory=list)
    rejects: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "campaign": self.campaign,
            "counts": self.counts,
            "delivery": self.delivery,
            "failures": self.failures,
            "rejects": self.rejects,
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
    )
