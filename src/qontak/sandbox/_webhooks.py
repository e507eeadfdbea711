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
Delivery is best effort: a failed POST is retried on the next poll.

The polling thread must outlive anything a poll runs into, since nothing would restart it:
a message removed by a reset while a poll is under way is skipped, a status whose payload
cannot be encoded as JSON is logged and skipped for good, and any other error is logged and
the next poll tries again. The mark moves past a change only once it is posted or skipped
for good, so a receiver that is down gets the same change again on the next poll.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from ._delivery import iso
from ._store import Event, MessageRow
from ._views import message_state

if TYPE_CHECKING:
    from . import Sandbox

__all__ = ["WebhookDispatcher"]

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
        url = self.sandbox.config.webhook_url
        if not url:
            return 0
        store = self.sandbox.store
        own = client is None
        http = client or httpx.Client(timeout=5.0)
        posted = 0
        try:
            while True:
                batch = self.due()
                for event in batch:
                    outcome = self._deliver(http, url, event)
                    if outcome is None:
                        return posted  # receiver down: the same change again next poll
                    posted += outcome
                    store.set_meta(_MARK, str(event.seq))
                if len(batch) < _BATCH:
                    return posted
        finally:
            if own:
                http.close()

    def _deliver(self, http: httpx.Client, url: str, event: Event) -> int | None:
        """Post one change: 1 when posted, 0 when it needs no post, None when the receiver
        did not take it."""
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
        try:
            response = http.post(url, content=body, headers={"Content-Type": "application/json"})
        except httpx.HTTPError:
            return None
        return None if response.status_code >= 300 else 1

    def start(self) -> None:
        """Poll in a daemon thread until :meth:`stop`."""
        if not self.sandbox.config.webhook_url or self._thread is not None:
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
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
