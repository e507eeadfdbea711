"""Optional webhook callbacks: POST each message status change to ``webhook_url``.

Statuses are computed lazily from the clock, so changes are found by polling: every
``webhook_poll_seconds`` a background thread (started with the server) reads the change feed
(:meth:`Store.events_after <._store.Store.events_after>`) past its **high-water mark** — the
number of the last change it has dealt with, kept in the store's ``meta`` so a restart on
the same database goes on where it stopped — and posts each status once, in order. A poll
therefore reads only what changed since the last one, never every message. Tests with a
fake clock call :meth:`WebhookDispatcher.deliver_due` directly instead.

Payload: Qontak's message-interaction object (spec §5) for an outbound campaign message,
``is_campaign: true``, ``sender_type: "Models::SystemAccount"``, ``participant_type:
"bot"``, ``external_id`` = the wamid, ``status`` = ``sent|delivered|read`` (and ``failed``,
with an ``error`` object, which Qontak does not document but a client can ignore).
The URL is the registered one (``PUT /message_interactions``), else ``webhook_url``; a failed
POST is retried per message with exponential backoff (:mod:`._interactions`).

The polling thread must outlive anything a poll runs into, since nothing would restart it:
a message removed by a reset while a poll is under way is skipped, a status whose payload
cannot be encoded as JSON is logged and skipped for good, and any other error is logged and
the next poll tries again. The mark moves past a change only once it is posted or skipped
for good, so a receiver that is down gets the same change again on the next poll.

Memory stays bounded while a receiver is down: failed statuses wait in the retry queue up to
its cap (:data:`~._interactions.MAX_QUEUED`), and at the cap a poll stops before the next
change, leaving it (and everything after it) in the store's change log for a later poll.
Changes up to the mark are removed from that log after each poll; the log itself is capped
too (:attr:`SandboxConfig.max_events <qontak.sandbox.SandboxConfig.max_events>`), but only
below the mark while there is a URL to post to: a change the poller has not dealt with is
never dropped for the cap.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from ._delivery import iso
from ._interactions import RetryQueue, status_url
from ._store import Event, MessageRow
from ._views import message_state

if TYPE_CHECKING:
    from . import Sandbox

__all__ = ["WebhookDispatcher"]


def _nothing(message_id: str, status: str) -> None:
    """Posted statuses need no record: the high-water mark is already past them."""


_log = logging.getLogger(__name__)

#: Changes read from the feed per query.
_BATCH = 500
_MARK = "webhook_hwm"


class WebhookDispatcher:
    """Finds unposted status changes and POSTs them."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.serving = False
        """True between :meth:`start` and :meth:`stop`: a URL registered then starts posting."""
        self.retries = RetryQueue(sandbox.now)
        """Failed POSTs waiting for their backoff (set ``retries.policy`` to tune it, and
        ``retries.max_size`` to bound it)."""
        self.stalls = 0
        """Polls that stopped early because :attr:`retries` was full."""
        self._stalling = False
        # The change log's cap must not drop what this poller still has to post.
        sandbox.store.reader_mark = self._reader_mark

    def _reader_mark(self) -> int | None:
        """The high-water mark while status changes have a URL to go to, else None."""
        return self.high_water_mark if status_url(self.sandbox) else None

    def payload(self, row: MessageRow, status: str, at: float) -> dict[str, Any]:
        """The message-interaction object for one status change of ``row``."""
        sandbox = self.sandbox
        state = message_state(row, sandbox.now(), sandbox.config.delivery_delays)
        channel = sandbox.store.get_object("channels", row.channel_integration_id) or {}
        settings = channel.get("settings") or {}
        body: dict[str, Any] = {
            "id": row.id,
            "type": "text",
            "room_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "room:" + row.to_number)),
            "is_campaign": True,
            "sender_id": row.broadcast_id,
            "sender_type": "Models::SystemAccount",
            "sender": {"name": settings.get("account_name"), "avatar": None},
            "participant_id": row.broadcast_id,
            "organization_id": sandbox.organization_id,
            "text": row.rendered.get("body"),
            "status": status,
            "participant_type": "bot",
            "external_id": state.wamid,
            "local_id": None,
            "created_at": iso(at),
            "reply": None,
            "room": {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "room:" + row.to_number)),
                "name": row.to_name,
                "status": "unassigned",
                "type": "Models::CustomerServiceRoom",
                "channel": "wa",
                "channel_account": settings.get("account_name"),
                "account_uniq_id": row.to_number,
                "channel_integration_id": row.channel_integration_id,
                "session": "open",
            },
        }
        if status == "failed" and state.error is not None:
            body["error"] = state.error.to_dict()
        return body

    @property
    def high_water_mark(self) -> int:
        """Number of the last change posted (or skipped for good)."""
        return int(self.sandbox.store.get_meta(_MARK) or 0)

    def due(self, limit: int = _BATCH) -> list[Event]:
        """Up to ``limit`` changes past the high-water mark (``pending`` included: it is
        never posted), oldest first."""
        sandbox = self.sandbox
        return sandbox.store.events_after(
            self.high_water_mark, limit, sandbox.now(), sandbox.config.delivery_delays
        )

    def deliver_due(self, client: httpx.Client | None = None) -> int:
        """Post every due status change once; returns how many were posted."""
        url = status_url(self.sandbox)
        if not url:
            return 0
        store = self.sandbox.store
        own = client is None
        http = client or httpx.Client(timeout=5.0)

        def post(body: str) -> bool:
            try:
                response = http.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError:
                return False
            return response.status_code < 300

        try:
            # Earlier failures whose backoff has passed go first (each message in order).
            posted = self.retries.flush(post, still_due=self._still_due, done=_nothing)
            while True:
                batch = self.due()
                for event in batch:
                    if self.retries.full:
                        # The receiver is down for many messages: the mark stays here and
                        # the rest waits in the change log (on disk), not in memory.
                        self._stalled()
                        return posted
                    posted += self._deliver(event, post)
                    # The change is dealt with: posted, needing no post, or owned by the
                    # retry queue (in memory: a sandbox restart re-reads nothing before it).
                    store.set_meta(_MARK, str(event.seq))
                if len(batch) < _BATCH:
                    self._stalling = False
                    return posted
        finally:
            # Changes up to the mark are dealt with: the change log need not keep them.
            store.forget_events(self.high_water_mark)
            if own:
                http.close()

    def _stalled(self) -> None:
        self.stalls += 1
        if not self._stalling:
            self._stalling = True
            _log.warning(
                "webhook receiver failing: %d statuses wait for a retry; new status changes "
                "wait until some get through",
                len(self.retries),
            )

    def _still_due(self, message_id: str, status: str) -> bool:
        """A deferred status is still worth posting unless a reset removed its message."""
        return self.sandbox.store.has_message(message_id)

    def _deliver(self, event: Event, post: Callable[[str], bool]) -> int:
        """Post one change now, or leave it to the retry queue; 1 when posted."""
        store = self.sandbox.store
        row = event.message
        if row is None or event.status == "pending":
            return 0
        if store.posted_before_upgrade(row.id, event.status):
            return 0
        try:
            # Encoded here, strictly, so a bad payload is this status's problem only.
            body = json.dumps(self.payload(row, event.status, event.at), allow_nan=False)
        except (TypeError, ValueError):
            _log.exception(
                "webhook for message %s (%s) cannot be encoded; skipped", row.id, event.status
            )
            return 0
        if not store.event_exists(event.seq):
            return 0  # a reset removed the message while this poll was posting
        if self.retries.holds(row.id):
            # Behind an earlier status of the same message: order per message kept.
            self.retries.defer(row.id, event.status, body, failed=False)
            return 0
        if post(body):
            return 1
        # Backoff for this message only; the others go on.
        self.retries.defer(row.id, event.status, body, failed=True)
        return 0

    def start(self) -> None:
        """Poll in a daemon thread until :meth:`stop` (once a URL is known)."""
        self.serving = True
        if not status_url(self.sandbox) or self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            with httpx.Client(timeout=5.0) as client:
                while not self._stop.wait(self.sandbox.config.webhook_poll_seconds):
                    try:
                        self.deliver_due(client)
                    except Exception:  # the thread is never restarted: log and poll again
                        _log.exception("webhook poll failed; trying again on the next poll")

        self._thread = threading.Thread(target=loop, name="qontak-sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the polling thread."""
        self.serving = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
