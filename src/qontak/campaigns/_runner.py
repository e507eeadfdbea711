"""Sending a campaign: several requests in flight, paced by the client's own rate limiter,
every outcome written to the ledger before the next decision.

Per row::

    claim (pending → sending, committed) → POST → accepted | failed | unknown
                                                  (or back to pending when the request
                                                   provably took no effect: 401/403, 429,
                                                   connection refused)

Retries are the SDK's (:class:`~qontak.RetryPolicy`): a send is retried only when nothing can
have happened; a possible acceptance is :class:`~qontak.DeliveryUnknownError` and the row
becomes ``unknown`` for reconcile. A failure that would repeat for every row pauses the
campaign instead of burning the list: credentials rejected (401/403), the template no longer
approved or gone, the channel gone, or the same 4xx answer for :attr:`RunOptions.same_error_limit`
rows in a row. A stop request (SIGINT/SIGTERM in the CLI) lets the requests in flight finish
and records them before returning.
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from .._client import AsyncQontak
from ..errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    DeliveryUnknownError,
    NotFoundError,
    PermissionDeniedError,
    QontakError,
    RateLimitError,
    ValidationError,
)
from ..models import DirectMessage, Template, URLButton
from ._ledger import Campaign, CampaignState, LedgerError, Row, RowState
from ._store import LeasedStore, Store
from ._time import iso_utc
from ._windows import Window, is_open, next_open, parse_window

__all__ = ["RunOptions", "RunResult", "Stopper", "run_campaign"]

Event = dict[str, Any]
#: Seconds a run lease lasts without renewal (a crashed runner frees the campaign after this).
LEASE_SECONDS = 60.0
#: Longest single sleep while waiting for a window or a start time (stop requests are
#: noticed at least this often).
_NAP = 1.0


def new_owner(kind: str = "run") -> str:
    """A lease owner name: ``host:pid:kind-random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{kind}-{uuid.uuid4().hex[:8]}"


def _dead_local_owner(owner: str) -> bool:
    """Whether ``owner`` was a process on this machine that no longer exists (a crash or a
    SIGKILL leaves its lease behind; waiting for it to expire would only delay the resume)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take_lease(store: Store, campaign_id: str, owner: str) -> None:
    """Take the campaign's lease, from a dead process on this machine if need be; raise
    :class:`LedgerError` when a live runner holds it."""
    now = time.time()
    if store.acquire(campaign_id, owner, now=now, ttl=LEASE_SECONDS):
        return
    holder = store.lease_owner(campaign_id)
    if holder is not None and _dead_local_owner(holder):
        store.release(campaign_id, holder)
        if store.acquire(campaign_id, owner, now=now, ttl=LEASE_SECONDS):
            return
    raise LedgerError(
        f"campaign {campaign_id} is being run by another process ({holder}); pause it first"
    )


class Stopper:
    """A flag a signal handler sets; the runner stops claiming rows once it is set."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def stop(self, reason: str = "stopped") -> None:
        """Ask the run to stop after the requests in flight."""
        if self.reason is None:
            self.reason = reason

    @property
    def stopped(self) -> bool:
        """Whether a stop was asked for."""
        return self.reason is not None


@dataclass
class RunOptions:
    """How a run behaves (the CLI's flags)."""

    concurrency: int = 4
    same_error_limit: int = 5
    """Pause after this many rows in a row failed with the same 4xx answer."""
    clock: Callable[[], float] = time.time
    """Epoch seconds: send times, windows, start time (the sandbox clock in tests)."""
    sleep: Callable[[float], Awaitable[Any]] = anyio.sleep
    on_event: Callable[[Event], None] | None = None
    stopper: Stopper = field(default_factory=Stopper)
    progress_every: float = 1.0
    """Seconds (monotonic) between progress events."""
    max_wait: float | None = None
    """Give up waiting for a window/start time after this many seconds (None: wait)."""
    shared: bool = False
    """Other workers send the same campaign at the same time (a :class:`.LeasedStore`, i.e.
    PostgreSQL): no campaign lease is taken (each row carries its own), and a stop of this
    worker does not pause the campaign for the others."""
    lift_user_pause: bool = False
    """This run may lift a person's pause (``qontak campaign resume``). Otherwise a run that
    finds one (the same ``run`` command again, a worker) stops without sending, even when
    the pause lands at the very moment it starts."""


@dataclass
class RunResult:
    """How a run ended."""

    campaign_id: str
    state: CampaignState
    counts: dict[str, int]
    pause_reason: str | None = None
    pause_code: str | None = None
    """Why it paused, for programs: ``auth``, ``connection``, ``template_or_channel``,
    ``repeated_error`` or ``user`` (a pause asked from elsewhere)."""
    stopped: bool = False
    """A stop was asked for (signal) before the campaign was done."""
    waiting_until: float | None = None
    """Rows wait for their window (or the start time) until then."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "campaign_id": self.campaign_id,
            "state": self.state.value,
            "counts": self.counts,
            "pause_reason": self.pause_reason,
            "pause_code": self.pause_code,
            "stopped": self.stopped,
            "waiting_until": iso_utc(self.waiting_until),
        }


def _shape(template: Template) -> tuple[object, ...]:
    """What a send must match: placeholders, header format and the buttons that take values."""
    return (
        tuple(template.body_placeholders),
        template.header_format,
        tuple(
            (str(b.type), b.takes_value, b.url if isinstance(b, URLButton) else None)
            for b in template.buttons
        ),
        template.language,
    )


def message_for(campaign: Campaign, row: Row, template: Template) -> DirectMessage:
    """The message of one ledger row, exactly as validated at import."""
    message = DirectMessage.model_validate(
        {
            "to_name": row.to_name,
            "to_number": row.to_number,
            "message_template_id": campaign.template_id,
            "channel_integration_id": campaign.channel_id,
            "language": {"code": campaign.language},
            "parameters": row.parameters,
        }
    )
    return message.with_template(template)


class _Run:
    def __init__(
        self, client: AsyncQontak, store: Store, campaign: Campaign, options: RunOptions
    ) -> None:
        self.client = client
        self.store = store
        self.campaign = campaign
        self.opt = options
        self.window: Window | None = parse_window(campaign.window) if campaign.window else None
        self.template = Template.model_validate(campaign.template)
        self.pause_reason: str | None = None
        self.pause_code: str | None = None
        self.owner = new_owner()
        self.lease_renewed = 0.0
        self.last_error: tuple[object, str] | None = None
        self.same_errors = 0
        self.rows_zones: list[str] = []
        self.last_progress = 0.0
        self.started = time.monotonic()
        self.done_this_run = 0
        self.not_before = 0.0

    # -- events ---------------------------------------------------------------------------
    def emit(self, event: str, **data: Any) -> None:
        if self.opt.on_event is not None:
            self.opt.on_event({"event": event, "campaign_id": self.campaign.id, **data})

    def progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_progress < self.opt.progress_every:
            return
        self.last_progress = now
        counts = self.store.counts(self.campaign.id)
        elapsed = max(now - self.started, 1e-9)
        rate = self.done_this_run / elapsed
        remaining = counts["pending"] + counts["sending"]
        eta = remaining / rate if rate > 0 else None
        self.emit(
            "progress",
            counts=counts,
            rate=round(rate, 3),
            eta_seconds=None if eta is None else round(eta, 1),
        )

    # -- control --------------------------------------------------------------------------
    def should_stop(self) -> bool:
        if self.opt.stopper.stopped or self.pause_reason is not None:
            return True
        return self.paused_elsewhere()

    def paused_elsewhere(self) -> bool:
        """The ledger says the campaign is paused (a person, or another worker): take that
        pause as this run's."""
        current = self.store.get_campaign(self.campaign.id)
        if current is not None and current.state is CampaignState.PAUSED:
            self.pause_reason = current.pause_reason or "paused"
            # Whoever paused it says why: a person, or another worker of a shared ledger
            # (its "auth" is the CLI's exit code 3 here too).
            self.pause_code = current.pause_code or "user"
            return True
        return False

    def renew_lease(self) -> None:
        if self.opt.shared:
            return  # the rows carry the leases (LeasedStore), renewed by heartbeat()
        now = time.time()
        if now - self.lease_renewed > LEASE_SECONDS / 3:
            take_lease(self.store, self.campaign.id, self.owner)
            self.lease_renewed = now

    def pause(self, reason: str, code: str) -> None:
        if self.pause_reason is None and self.paused_elsewhere():
            # Paused from outside while the request was out (a person seeing the same
            # trouble): their pause stands; written over, `run FILE` would lift it.
            return
        if self.pause_reason is None:
            if not self.store.update_campaign(
                self.campaign.id,
                keep_user_pause=True,
                state=CampaignState.PAUSED,
                pause_reason=reason,
                pause_code=code,
            ):
                self.paused_elsewhere()  # a person's pause, made since the look above
                return
            self.pause_reason = reason
            self.pause_code = code
            self.emit("paused", reason=reason, code=code)

    async def heartbeat(self, store: LeasedStore) -> None:
        """Renew this worker's row leases, and turn other workers' expired ones into
        ``unknown``, every third of a lease (real time: leases run on the database clock)."""
        every = max(store.lease_seconds / 3, 0.05)
        while True:
            await anyio.sleep(every)
            store.renew()
            if self.store.recover(self.campaign.id):
                self.emit("recovered", unknown=self.store.counts(self.campaign.id)["unknown"])

    def open_zones(self, now: float) -> list[str]:
        return [z for z in self.rows_zones if is_open(self.window, z, now)]

    # -- sending --------------------------------------------------------------------------
    async def worker(self) -> None:
        while not self.should_stop():
            now = self.opt.clock()
            if now < self.not_before:
                await self.opt.sleep(self.not_before - now)
                continue
            zones = self.open_zones(now) if self.window is not None else None
            self.renew_lease()
            rows = self.store.claim(self.campaign.id, 1, zones=zones, now=now)
            if not rows:
                return
            await self.send(rows[0])
            self.done_this_run += 1
            self.progress()

    async def send(self, row: Row) -> None:
        cid, line = self.campaign.id, row.line
        store, clock = self.store, self.opt.clock
        try:
            message = message_for(self.campaign, row, self.template)
            broadcast = await self.client.broadcasts.send_direct(message)
        except DeliveryUnknownError as exc:
            store.transition(
                cid,
                line,
                RowState.UNKNOWN,
                now=clock(),
                code=str(exc.status_code or ""),
                reason=exc.cause or str(exc),
            )
            self.last_error = None
        except (AuthenticationError, PermissionDeniedError) as exc:
            store.transition(cid, line, RowState.PENDING, now=clock(), reason=str(exc))
            self.pause(f"credentials rejected: {exc}", "auth")
        except RateLimitError as exc:
            # Refused, so not sent: the row waits, everyone waits.
            store.transition(cid, line, RowState.PENDING, now=clock(), reason="rate limited")
            self.not_before = clock() + (exc.retry_after or 5.0)
        except APIConnectionError as exc:
            store.transition(cid, line, RowState.PENDING, now=clock(), reason=str(exc))
            self.pause(f"cannot reach Qontak: {exc}", "connection")
        except ValidationError as exc:
            # Rows were checked at import, so this means the rows and the template disagree
            # (a tampered ledger, a changed SDK rule): counted like a repeated refusal.
            store.transition(
                cid, line, RowState.FAILED, now=clock(), code=exc.code, reason=str(exc)
            )
            self.note_failure(("validation", str(exc)), f"failed validation: {exc}")
        except APIStatusError as exc:
            await self.refused(row, exc)
        except QontakError as exc:
            # Anything else after the request may have been made: never guess "not sent".
            store.transition(cid, line, RowState.UNKNOWN, now=clock(), reason=str(exc))
        except BaseException:
            # Cancelled or crashed mid-request: whether it was accepted is unknown.
            store.transition(cid, line, RowState.UNKNOWN, now=clock(), reason="interrupted")
            raise
        else:
            store.transition(cid, line, RowState.ACCEPTED, now=clock(), broadcast_id=broadcast.id)
            self.last_error = None
            self.same_errors = 0

    async def refused(self, row: Row, exc: APIStatusError) -> None:
        """A 4xx answer: this row failed, unless the cause is the campaign's, not the row's."""
        cid, clock = self.campaign.id, self.opt.clock
        systemic = await self.systemic_cause()
        if systemic is not None:
            self.store.transition(cid, row.line, RowState.PENDING, now=clock(), reason=str(exc))
            self.pause(systemic, "template_or_channel")
            return
        reason = "; ".join(exc.messages) or str(exc)
        self.store.transition(
            cid, row.line, RowState.FAILED, now=clock(), code=str(exc.status_code), reason=reason
        )
        self.note_failure(
            (exc.status_code, reason), f"refused with HTTP {exc.status_code}: {reason}"
        )

    def note_failure(self, key: tuple[object, str], what: str) -> None:
        """Count rows failing the same way in a row; pause when it looks systematic."""
        self.same_errors = self.same_errors + 1 if key == self.last_error else 1
        self.last_error = key
        if self.same_errors >= self.opt.same_error_limit:
            self.pause(f"{self.same_errors} rows in a row {what}", "repeated_error")

    async def systemic_cause(self) -> str | None:
        """Why every row would fail now (template not approved or gone, channel gone)."""
        try:
            template = await self.client.templates.get(self.campaign.template_id)
        except NotFoundError:
            return f"template {self.campaign.template_name!r} no longer exists"
        except QontakError:
            return None
        if not template.is_approved:
            return (
                f"template {template.name!r} is {(template.status or 'not approved').upper()}; "
                "only APPROVED templates can be sent"
            )
        if _shape(template) != _shape(self.template):
            return (
                f"template {template.name!r} changed since the campaign was created (its "
                "body, header or buttons differ); create a new campaign from the file"
            )
        try:
            channel = await self.client.channels.get(self.campaign.channel_id)
        except NotFoundError:
            return f"channel {self.campaign.channel_id} no longer exists"
        except QontakError:
            return None
        if channel.is_active is False:
            return f"channel {self.campaign.channel_id} is not active"
        return None

    # -- the loop -------------------------------------------------------------------------
    async def wait_until(self, until: float, reason: str) -> bool:
        """Sleep until ``until`` (in naps, to notice stops); False when stopped."""
        self.emit("waiting", until=iso_utc(until), reason=reason)
        waited_from = self.opt.clock()
        while self.opt.clock() < until:
            if self.should_stop():
                return False
            if self.opt.max_wait is not None and self.opt.clock() - waited_from > self.opt.max_wait:
                return False
            # Still this runner's campaign while it waits for its window or start time: a
            # lease left to expire would let a second runner start beside this one.
            self.renew_lease()
            await self.opt.sleep(min(_NAP, until - self.opt.clock()))
        return True

    async def run(self) -> RunResult:
        cid = self.campaign.id
        self.renew_lease()
        try:
            recovered = self.store.recover(cid)
            if recovered:
                self.emit("recovered", unknown=recovered)
            # One conditional statement: a person's pause made a moment ago is never lifted
            # by a run that was not asked to (a check, then a write, would race with it).
            started = self.store.update_campaign(
                cid,
                keep_user_pause=not self.opt.lift_user_pause,
                state=CampaignState.RUNNING,
                pause_reason=None,
                pause_code=None,
            )
            waiting_until = None
            if not started:
                self.paused_elsewhere()
            else:
                self.emit("started", counts=self.store.counts(cid))
                cause = await self.systemic_cause()
                if cause is not None:
                    self.pause(cause, "template_or_channel")
                if isinstance(self.store, LeasedStore):
                    waiting_until = await self.loop_with_heartbeat(self.store)
                else:
                    waiting_until = await self.loop()
        finally:
            self.store.release(cid, self.owner)
        counts = self.store.counts(cid)
        if self.pause_reason is None:
            state = CampaignState.DONE if counts["pending"] == 0 else CampaignState.READY
            if self.opt.stopper.stopped and counts["pending"]:
                state = CampaignState.PAUSED
                self.pause_reason = f"{self.opt.stopper.reason}; resume to continue"
            if self.opt.shared and self.opt.stopper.stopped:
                # One worker leaving does not stop the others: the campaign stays as it is.
                current = self.store.get_campaign(cid)
                state = current.state if current is not None else state
                self.pause_reason = None
            elif not self.store.update_campaign(
                cid,
                keep_user_pause=True,
                state=state,
                pause_reason=self.pause_reason,
                pause_code=None,
            ):
                # Paused by a person after the last look: their pause stands.
                self.paused_elsewhere()
                state = CampaignState.PAUSED
        else:
            state = CampaignState.PAUSED
        self.progress(force=True)
        result = RunResult(
            campaign_id=cid,
            state=state,
            counts=counts,
            pause_reason=self.pause_reason,
            pause_code=self.pause_code if self.pause_reason is not None else None,
            stopped=self.opt.stopper.stopped,
            waiting_until=waiting_until,
        )
        self.emit("finished", **{k: v for k, v in result.to_dict().items() if k != "campaign_id"})
        return result

    async def loop_with_heartbeat(self, store: LeasedStore) -> float | None:
        result: list[float | None] = [None]
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.heartbeat, store)
            result[0] = await self.loop()
            tg.cancel_scope.cancel()
        return result[0]

    async def loop(self) -> float | None:
        cid = self.campaign.id
        start_at = self.campaign.start_at
        if (
            start_at is not None
            and self.opt.clock() < start_at
            and not await self.wait_until(start_at, "start_at")
        ):
            return start_at
        while not self.should_stop():
            self.rows_zones = self.store.pending_zones(cid)
            if not self.rows_zones:
                leased = self.store if isinstance(self.store, LeasedStore) else None
                if leased is not None and self.store.counts(cid)["sending"]:
                    # Other workers' rows in flight: they come back (a 429), settle, or
                    # expire into unknown; stay until then so the campaign ends settled.
                    self.store.recover(cid)
                    await anyio.sleep(min(_NAP, leased.lease_seconds / 3))
                    continue
                return None
            now = self.opt.clock()
            if self.window is not None and not self.open_zones(now):
                opens = [next_open(self.window, z, now) for z in self.rows_zones]
                upcoming = [t for t in opens if t is not None]
                if not upcoming:
                    self.pause(
                        f"the window {self.window.text} never opens for the rows left", "window"
                    )
                    return None
                if not await self.wait_until(min(upcoming), "window"):
                    return min(upcoming)
                continue
            async with anyio.create_task_group() as tg:
                for _ in range(max(1, self.opt.concurrency)):
                    tg.start_soon(self.worker)
        return None


async def run_campaign(
    client: AsyncQontak,
    store: Store,
    campaign_id: str,
    options: RunOptions | None = None,
) -> RunResult:
    """Send every pending row of a campaign (or continue one that stopped).

    Rows left ``sending`` by a crash become ``unknown`` first (see :func:`reconcile`).
    Returns when nothing is left to send, when the campaign pauses (a failure that would
    repeat for every row, or ``pause`` from another process), or when
    ``options.stopper`` is set (after the requests in flight are recorded).
    """
    campaign = store.get_campaign(campaign_id)
    if campaign is None:
        raise LedgerError(f"no campaign {campaign_id!r} in this ledger")
    opts = options or RunOptions()
    if opts.concurrency < 1 or not math.isfinite(opts.concurrency):
        raise ValidationError("concurrency", "must be 1 or more", code="invalid")
    return await _Run(client, store, campaign, opts).run()
