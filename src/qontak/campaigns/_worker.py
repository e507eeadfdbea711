"""A campaign worker: one of any number of processes, on any number of machines, sending the
same campaigns from one PostgreSQL ledger.

Each worker runs the ordinary runner (:func:`._runner.run_campaign`) with
``RunOptions.shared``: no campaign-wide lease, rows claimed with ``FOR UPDATE SKIP LOCKED``
under a per-row lease its heartbeat renews, the campaign's state (a pause from any host)
read between claims. A worker that dies leaves its rows in flight ``sending`` until their
lease expires; then any other worker (or reconcile) turns them into ``unknown``, never
``pending``, and reconcile settles them.

On a SQLite ledger there are no row leases: a worker takes the campaign's lease like
``resume`` does, so only one worker sends a given campaign at a time (a second one is
refused, or moves on to the next campaign).
"""

from __future__ import annotations

import dataclasses

from .._client import AsyncQontak
from ._ledger import CampaignState, LedgerError
from ._runner import RunOptions, RunResult, run_campaign
from ._store import LeasedStore, Store

__all__ = ["run_worker"]

#: Campaigns a worker picks up by itself (``paused`` and ``blocked`` wait for a person).
_ACTIVE = (CampaignState.READY, CampaignState.RUNNING)


async def run_worker(
    client: AsyncQontak,
    store: Store,
    *,
    campaign_id: str | None = None,
    options: RunOptions | None = None,
) -> list[RunResult]:
    """Send as one worker among many; returns one result per campaign it worked on.

    With ``campaign_id``: that campaign (resumed if it was paused; refused if blocked by
    invalid rows) until nothing is left to send, it pauses, or ``options.stopper`` is set.
    Without: every ``ready`` or ``running`` campaign with rows to send, oldest first, one
    after the other, then returns.
    """
    opts = dataclasses.replace(options or RunOptions(), shared=isinstance(store, LeasedStore))
    if campaign_id is not None:
        found = store.get_campaign(campaign_id)
        if found is None:
            raise LedgerError(f"no campaign {campaign_id!r} in this ledger")
        if found.state is CampaignState.BLOCKED:
            raise LedgerError(
                f"campaign {campaign_id} is blocked ({found.pause_reason}); "
                "resume it with --skip-invalid first"
            )
        # Named by the person starting it: like `resume`, it lifts their pause.
        lifting = dataclasses.replace(opts, lift_user_pause=True)
        return [await run_campaign(client, store, campaign_id, lifting)]
    results: list[RunResult] = []
    for listed in sorted(store.list_campaigns(), key=lambda c: (c.created_at, c.id)):
        if opts.stopper.stopped:
            break
        # Read again: the list is as old as the campaigns sent before this one, and a pause
        # made since (a person's, which only `resume` lifts) must not be undone by starting.
        campaign = store.get_campaign(listed.id)
        if campaign is None or campaign.state not in _ACTIVE:
            continue
        counts = store.counts(campaign.id)
        if not counts["pending"] and not counts["sending"]:
            continue
        try:
            results.append(await run_campaign(client, store, campaign.id, opts))
        except Exception as exc:
            # The runner sends from a task group: a lease lost mid-run (another worker took
            # the campaign) arrives wrapped in an exception group.
            errors = ledger_errors(exc)
            if errors is None or (opts.shared and errors[0] is exc):
                raise
            if opts.shared:
                raise errors[0] from exc  # the error itself, not "unhandled errors in a group"
            continue  # SQLite: another worker holds this campaign's lease
    return results


def ledger_errors(exc: BaseException) -> list[LedgerError] | None:
    """The :class:`LedgerError` ``exc`` is, or all those inside it when it is an exception
    group (a task group's, nested or not) holding nothing else; None otherwise.

    >>> ledger_errors(LedgerError("taken"))
    [LedgerError('taken')]
    >>> ledger_errors(ValueError("bug")) is None
    True
    """
    if isinstance(exc, LedgerError):
        return [exc]
    # An ExceptionGroup (built in from Python 3.11, anyio's exceptiongroup backport before).
    inner = getattr(exc, "exceptions", None)
    if not isinstance(inner, tuple) or not inner:
        return None
    found: list[LedgerError] = []
    for member in inner:
        errors = ledger_errors(member) if isinstance(member, BaseException) else None
        if errors is None:
            return None
        found += errors
    return found
