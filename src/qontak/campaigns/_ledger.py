"""The ledger's state machine: the one place that says how a row may move.

A row of a campaign is one recipient. Its state only moves forward::

    pending ──claim──▶ sending ──▶ accepted (broadcast id)
       │                  │   ├──▶ failed (code, reason)
       │                  │   └──▶ unknown (cause)
       └──▶ skipped       └──▶ pending   (only when the request provably never took effect)

    unknown ──reconcile──▶ accepted (proof from the API) | pending (proven absent, or the
                                                          user said --resend-unknown)

``sending`` is committed *before* the request is made, so a crash leaves only the rows in
flight uncertain; on recovery they become ``unknown``, never ``pending`` (listmonk advances
its checkpoint when a batch is fetched, not when it is sent, and skips or repeats people after
a resume; we do the opposite). This table is the only place that decides which moves are
allowed: both stores apply every move with one ``UPDATE … WHERE state IN (sources)``
(:mod:`._sql`), the sources coming from :func:`sources_of`, so a move the table does not allow
changes nothing, even when two processes race.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..errors import QontakError

__all__ = [
    "TRANSITIONS",
    "Campaign",
    "CampaignState",
    "LedgerError",
    "NewRow",
    "Reject",
    "Row",
    "RowState",
    "sources_of",
]


class LedgerError(QontakError):
    """The ledger cannot do what was asked: no such campaign, a file that is not a ledger
    (or is newer than this qontak), a campaign another live process is running."""


class RowState(str, Enum):
    """Where one recipient of a campaign stands."""

    PENDING = "pending"
    """Not sent yet (or proven not accepted by reconcile)."""
    SENDING = "sending"
    """Committed just before its request; after a crash it becomes ``unknown``."""
    ACCEPTED = "accepted"
    """Qontak took the message: ``broadcast_id`` is set."""
    FAILED = "failed"
    """Qontak refused it (``error_code``, ``error_reason``); not sent again."""
    UNKNOWN = "unknown"
    """It may or may not have been accepted; only reconcile (or the user) settles it."""
    SKIPPED = "skipped"
    """Never sent on purpose (the number opted out after the import)."""


#: Every allowed move. ``sending → pending`` is only for a request that provably took no
#: effect (the connection was refused, a 401/403 or a 429 answered it).
TRANSITIONS: dict[RowState, frozenset[RowState]] = {
    RowState.PENDING: frozenset({RowState.SENDING, RowState.SKIPPED}),
    RowState.SENDING: frozenset(
        {RowState.ACCEPTED, RowState.FAILED, RowState.UNKNOWN, RowState.PENDING}
    ),
    RowState.UNKNOWN: frozenset({RowState.ACCEPTED, RowState.PENDING}),
    RowState.ACCEPTED: frozenset(),
    RowState.FAILED: frozenset(),
    RowState.SKIPPED: frozenset(),
}


def sources_of(target: RowState) -> tuple[str, ...]:
    """The states a row may be in to move to ``target`` (sorted, as SQL parameters): the
    ``WHERE state IN (…)`` of every move the stores make.

    >>> sources_of(RowState.ACCEPTED)
    ('sending', 'unknown')
    >>> sources_of(RowState.SENDING)  # never from unknown: only reconcile settles those
    ('pending',)
    """
    return tuple(sorted(s.value for s, targets in TRANSITIONS.items() if target in targets))


class CampaignState(str, Enum):
    """Where a whole campaign stands."""

    READY = "ready"
    BLOCKED = "blocked"
    """Some rows are invalid: nothing is sent until the run is asked with ``skip_invalid``."""
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"


USER_PAUSE = "user"
"""``Campaign.pause_code`` of a pause a person asked for: only ``resume`` lifts it."""


@dataclass
class Campaign:
    """One campaign: one template and one channel sent to many rows."""

    id: str
    name: str
    created_at: float
    template_id: str
    template_name: str
    language: str
    channel_id: str
    template: dict[str, Any] = field(default_factory=dict)
    """The template as fetched when the campaign was created (wire JSON)."""
    state: CampaignState = CampaignState.READY
    pause_reason: str | None = None
    pause_code: str | None = None
    """Who paused it, for programs: ``user`` (``qontak campaign pause``: only ``resume``
    lifts it), or the runner's own cause (``auth``, ``connection``, ``template_or_channel``,
    ``repeated_error``, ``window``); None when not paused or stopped by a signal."""
    start_at: float | None = None
    window: str | None = None
    """Send window ``HH:MM-HH:MM`` in each recipient's local time, or None (any time)."""
    source: str | None = None
    """The file the rows came from (for show/list; never read again)."""
    fingerprint: str | None = None
    """Hash of the file and settings: running the same command again finds this campaign."""

    def template_json(self) -> str:
        """The template as stored."""
        return json.dumps(self.template, ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``list``, ``show``)."""
        return {
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "template": {
                "id": self.template_id,
                "name": self.template_name,
                "language": self.language,
            },
            "channel_id": self.channel_id,
            "state": self.state.value,
            "pause_reason": self.pause_reason,
            "pause_code": self.pause_code,
            "start_at": self.start_at,
            "window": self.window,
            "source": self.source,
        }


@dataclass
class NewRow:
    """A validated row about to enter the ledger."""

    line: int
    to_number: str
    to_name: str
    parameters: dict[str, Any]
    zones: str
    """Time zones the window must hold in, ``|``-separated (``Asia/Jakarta|Asia/Jayapura``)."""


@dataclass
class Row:
    """One row as the ledger holds it."""

    campaign_id: str
    line: int
    to_number: str
    to_name: str
    parameters: dict[str, Any]
    zones: str
    state: RowState
    attempts: int = 0
    broadcast_id: str | None = None
    error_code: str | None = None
    error_reason: str | None = None
    sent_at: float | None = None
    settled_at: float | None = None
    delivery_status: str | None = None
    delivery_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (reports, ``--json``)."""
        return {
            "line": self.line,
            "to_number": self.to_number,
            "to_name": self.to_name,
            "state": self.state.value,
            "attempts": self.attempts,
            "broadcast_id": self.broadcast_id,
            "error_code": self.error_code,
            "error_reason": self.error_reason,
            "sent_at": self.sent_at,
            "delivery_status": self.delivery_status,
            "delivery_error": self.delivery_error,
        }


@dataclass(frozen=True)
class Reject:
    """A row that did not enter the ledger: invalid, a duplicate or opted out."""

    line: int
    field: str
    reason: str
    code: str
    to_number: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "line": self.line,
            "field": self.field,
            "reason": self.reason,
            "code": self.code,
            "to_number": self.to_number,
        }
