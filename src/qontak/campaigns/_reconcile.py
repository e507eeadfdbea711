"""Settling ``unknown`` rows from the API: one walk of the broadcast list, not one search
per row.

For the unknown rows of a campaign: list the broadcasts created in
``[earliest attempt − skew, now]``, skip the broadcast ids the ledger already holds, read
the log of the rest, and match number + template.

- Found → the row is ``accepted`` with that broadcast id (proof).
- Not found, and the attempt is older than ``settle_after`` → back to ``pending`` (proof of
  absence: a request can still land a while after the client gave up, so absence only
  counts once that time has passed).
- Not found yet, too recent → left ``unknown`` and listed with the time it can be settled.

The batch search is the SDK's ``client.broadcasts.find_sent_many``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from .._client import AsyncQontak
from ..models import Broadcast
from ..resources.broadcasts import SentQuery
from ._ledger import CampaignState, LedgerError, RowState
from ._runner import new_owner, take_lease
from ._store import Store

__all__ = ["DEFAULT_SKEW", "ReconcileResult", "reconcile"]

#: Seconds either side of an attempt within which its broadcast may be stamped (clock skew
#: between us and Qontak).
DEFAULT_SKEW = 120.0
#: The broadcast list's page size when walking it.
_PAGE = 100


def _created(broadcast: Broadcast) -> float | None:
    text = broadcast.created_at
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class ReconcileResult:
    """What a reconcile pass settled, and what it could not settle yet."""

    campaign_id: str
    accepted: int = 0
    """Unknown rows proven accepted (now ``accepted`` with their broadcast id)."""
    absent: int = 0
    """Unknown rows proven not accepted (back to ``pending``: the next run sends them)."""
    resent: int = 0
    """Unknown rows put back to ``pending`` on the caller's word (``resend_unknown``)."""
    waiting: list[dict[str, Any]] = field(default_factory=list)
    """Rows that cannot be settled yet: ``{"line", "to_number", "settle_at"}``."""
    accepted_twice: list[dict[str, Any]] = field(default_factory=list)
    """Rows found in more than one broadcast (``{"line", "broadcast_ids"}``)."""
    requests: int = 0
    """API requests the search made."""
    recovered: int = 0
    """Rows left ``sending`` by a crash, turned ``unknown`` before the search."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "campaign_id": self.campaign_id,
            "accepted": self.accepted,
            "absent": self.absent,
            "resent": self.resent,
            "waiting": self.waiting,
            "accepted_twice": self.accepted_twice,
            "requests": self.requests,
            "recovered": self.recovered,
        }


async def reconcile(
    client: AsyncQontak,
    store: Store,
    campaign_id: str,
    *,
    settle_after: float = 60.0,
    skew: float = DEFAULT_SKEW,
    resend_unknown: bool = False,
    now: float | None = None,
) -> ReconcileResult:
    """Settle the campaign's ``unknown`` rows (see the module notes). ``now`` is the
    current epoch time (default: the real clock; tests pass the sandbox's).

    ``settle_after`` (seconds after an attempt before its absence counts as proof) should be
    at least the request timeout; the CLI's default is twice it. With ``resend_unknown`` the
    rows that stay unknown are put back to ``pending`` (the caller's explicit word): the next
    run sends them again, even though they may have been accepted.
    """
    campaign = store.get_campaign(campaign_id)
    if campaign is None:
        raise LedgerError(f"no campaign {campaign_id!r} in this ledger")
    owner = new_owner("reconcile")
    take_lease(store, campaign_id, owner)
    try:
        return await _reconcile(
            client,
            store,
            campaign_id,
            campaign.template_id,
            settle_after,
            skew,
            resend_unknown,
            now,
        )
    finally:
        store.release(campaign_id, owner)


async def _reconcile(
    client: AsyncQontak,
    store: Store,
    cid: str,
    template_id: str,
    settle_after: float,
    skew: float,
    resend_unknown: bool,
    now: float | None,
) -> ReconcileResult:
    result = ReconcileResult(cid, recovered=store.recover(cid))
    unknown = list(store.iter_rows(cid, [RowState.UNKNOWN]))
    moment = time.time() if now is None else now
    queries = [
        SentQuery(
            key=row.line,
            to_number=row.to_number,
            message_template_id=template_id,
            sent_at=row.sent_at if row.sent_at is not None else moment,
        )
        for row in unknown
    ]
    # Only the ids inside the search window: the list walk never sees older broadcasts, and
    # a million-row campaign's every id would not fit in memory for nothing.
    since = min((q.sent_at for q in queries), default=moment) - skew - settle_after
    known = store.broadcast_ids(cid, since=since)
    search = await client.broadcasts.find_sent_many(
        queries, skew=skew, settle_after=settle_after, known_ids=known, now=moment
    )
    result.requests = search.requests
    by_line = {row.line: row for row in unknown}
    for key, broadcasts in search.found.items():
        ids = sorted({b.id for b in broadcasts})
        if len(ids) > 1:
            result.accepted_twice.append({"line": key, "broadcast_ids": ids})
        first = min(broadcasts, key=lambda b: _created(b) or 0.0)
        if store.transition(
            cid, cast(int, key), RowState.ACCEPTED, now=moment, broadcast_id=first.id
        ):
            result.accepted += 1
    for key in search.absent:
        if store.transition(
            cid, cast(int, key), RowState.PENDING, now=moment, reason="reconcile: not accepted"
        ):
            result.absent += 1
    for key, when in sorted(search.pending.items(), key=lambda kv: kv[1]):
        row = by_line[cast(int, key)]
        if resend_unknown and store.transition(
            cid, row.line, RowState.PENDING, now=moment, reason="resent on request"
        ):
            result.resent += 1
            continue
        result.waiting.append({"line": row.line, "to_number": row.to_number, "settle_at": when})
    if result.absent or result.resent:
        # Rows to send again: a done campaign is ready again (and only a done one).
        store.update_campaign(cid, only_from=(CampaignState.DONE,), state=CampaignState.READY)
    return result
