"""The storage interface of the ledger: small on purpose, so a second backend (PostgreSQL,
for several workers on several machines) is one class implementing these methods.

Rules every backend keeps:

- A row's state changes only through :meth:`Store.claim` and :meth:`Store.transition`, and
  only along :data:`._ledger.TRANSITIONS` (``UPDATE … WHERE state IN (sources)``).
- Every method that changes something has committed when it returns: ``claim`` in
  particular commits ``sending`` before the caller makes the request.
- ``to_number`` is unique per campaign (duplicates are found by the index, not in memory).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from ._ledger import Campaign, CampaignState, NewRow, Reject, Row, RowState

__all__ = ["LeasedStore", "Store"]


class Store(Protocol):
    """Where campaigns, their rows, rejects and the opt-out list live."""

    # -- campaigns ------------------------------------------------------------------------
    def create_campaign(self, campaign: Campaign) -> None:
        """Store a new campaign (its id must be new)."""

    def get_campaign(self, campaign_id: str) -> Campaign | None:
        """The campaign, or None."""

    def find_campaign(self, fingerprint: str) -> Campaign | None:
        """The newest campaign made from the same file and settings, or None."""

    def list_campaigns(self) -> list[Campaign]:
        """Every campaign, newest first."""

    def update_campaign(
        self,
        campaign_id: str,
        *,
        only_from: Sequence[CampaignState] | None = None,
        keep_user_pause: bool = False,
        **fields: object,
    ) -> bool:
        """Change campaign fields (``state``, ``pause_reason``, ``pause_code``, ``start_at``,
        ``window``, ``fingerprint``) in one statement; returns whether it changed.

        ``only_from``: only while the campaign is in one of these states.
        ``keep_user_pause``: not while a person's pause holds it (``pause_code`` ``user``):
        a run that starts or ends at the moment of ``qontak campaign pause`` never lifts it.
        """

    def acquire(self, campaign_id: str, owner: str, *, now: float, ttl: float) -> bool:
        """Take the campaign's run lease (False when another live runner holds it)."""

    def lease_owner(self, campaign_id: str) -> str | None:
        """Who holds the run lease (``host:pid:…``), or None."""

    def release(self, campaign_id: str, owner: str) -> None:
        """Give the lease back."""

    # -- rows -----------------------------------------------------------------------------
    def add_rows(self, campaign_id: str, rows: Sequence[NewRow]) -> list[tuple[NewRow, int]]:
        """Insert a batch; returns the duplicates as ``(row, line of the first one)``."""

    def add_rejects(self, campaign_id: str, rejects: Sequence[Reject]) -> None:
        """Record rows that did not enter the ledger."""

    def iter_rejects(self, campaign_id: str) -> Iterator[Reject]:
        """Rejected rows in line order."""

    def claim(
        self, campaign_id: str, limit: int, *, zones: Sequence[str] | None, now: float
    ) -> list[Row]:
        """Skip pending rows whose number opted out, then move up to ``limit`` pending rows
        (of ``zones`` when given) to ``sending``, committed, and return them."""

    def transition(
        self,
        campaign_id: str,
        line: int,
        target: RowState,
        *,
        now: float,
        broadcast_id: str | None = None,
        code: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """Move one row to ``target`` if the state machine allows it from its current state;
        returns whether it moved."""

    def recover(self, campaign_id: str) -> int:
        """Rows left in ``sending`` (a crash) become ``unknown``; returns how many."""

    def set_delivery(self, campaign_id: str, updates: Iterable[tuple[str, str, str | None]]) -> int:
        """Record delivery statuses: ``(broadcast_id, status, error)``; returns rows changed."""

    def counts(self, campaign_id: str) -> dict[str, int]:
        """Rows per state (every state present, zero when none)."""

    def delivery_counts(self, campaign_id: str) -> dict[str, int]:
        """Accepted rows per delivery status (``none`` when not read yet)."""

    def failures(self, campaign_id: str) -> list[tuple[str, str, str, int]]:
        """Failures grouped: ``(kind, code, reason, count)``, most frequent first; kind is
        ``refused`` (the send failed) or ``delivery`` (accepted, then WhatsApp failed it)."""

    def pending_zones(self, campaign_id: str) -> list[str]:
        """The distinct zone sets of the pending rows."""

    def iter_rows(
        self, campaign_id: str, states: Sequence[RowState] | None = None
    ) -> Iterator[Row]:
        """Rows in line order (in batches; constant memory)."""

    def broadcast_ids(self, campaign_id: str, *, since: float | None = None) -> set[str]:
        """The broadcast ids the ledger holds for the campaign (of rows sent at or after
        ``since``, when given: a reconcile window, not the whole campaign)."""

    # -- opt-outs -------------------------------------------------------------------------
    def add_optouts(self, numbers: Iterable[str], *, reason: str, now: float) -> int:
        """Add normalised numbers to the opt-out list; returns how many were new."""

    def remove_optouts(self, numbers: Iterable[str]) -> int:
        """Remove numbers from the opt-out list; returns how many were there."""

    def iter_optouts(self) -> Iterator[tuple[str, str, float]]:
        """``(number, reason, added_at)`` in number order."""

    def opted_out(self, numbers: Sequence[str]) -> set[str]:
        """Which of ``numbers`` are on the opt-out list."""

    def close(self) -> None:
        """Release the connection."""


@runtime_checkable
class LeasedStore(Protocol):
    """What a :class:`Store` has when its claims carry a lease, so several workers can share
    one campaign (:class:`._postgres.PostgresStore`). Checked with ``isinstance`` on these
    members only, so a method added to :class:`Store` never hides it.

    ``claim`` marks its rows with :attr:`owner` and an expiry :attr:`lease_seconds` ahead
    (by the database's clock); :meth:`renew` is the owner's heartbeat; ``recover`` only turns
    into ``unknown`` the ``sending`` rows whose lease has expired, so any worker may call it
    while others send.
    """

    owner: str
    lease_seconds: float

    def renew(self) -> int:
        """Extend the lease of this owner's rows in flight; returns how many."""
