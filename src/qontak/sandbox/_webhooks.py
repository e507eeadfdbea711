"""Optional webhook callbacks: POST each message status change to ``webhook_url``.

Statuses are computed lazily from the clock, so changes are found by polling: every
``webhook_poll_seconds`` a background thread (started with the server) looks for statuses
reached but not yet posted, and posts each once, in order. Tests with a fake clock call
:meth:`WebhookDispatcher.deliver_due` directly instead.

Payload: Qontak's message-interaction object (spec §5) for an outbound campaign message,
``is_campaign: true``, ``sender_type: "Models::SystemAccount"``, ``participant_type:
"bot"``, ``external_id`` = the wamid, ``status`` = ``sent|delivered|read`` (and ``failed``,
with an ``error`` object, which Qontak does not document but a client can ignore).
The URL is the registered one (``PUT /message_interactions``), else ``webhook_url``; a failed
POST is retried per message with exponential backoff (:mod:`._interactions`).

The polling thread must outlive anything a poll runs into, since nothing would restart it:
a message removed by a reset while a poll is under way is skipped, a status whose payload
cannot be encoded as JSON is logged and skipped for good, and any other error is logged and
the next poll tries again. Each poll reads the messages once.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from ._delivery import iso
from ._interactions import RetryQueue, status_url
from ._store import MessageRow
from ._views import message_state

if TYPE_CHECKING:
    from . import Sandbox

__all__ = ["WebhookDispatcher"]

_log = logging.getLogger(__name__)


class WebhookDispatcher:
    """Finds unposted status changes and POSTs them."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.serving = False
        """True between :meth:`start` and :meth:`stop`: a URL registered then starts posting."""
        self.retries = RetryQueue(sandbox.now)
        """Failed POSTs waiting for their backoff (set ``retries.policy`` to tune it)."""

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

    def due(self) -> list[tuple[MessageRow, str, float]]:
        """``(message, status, time)`` reached so far (``pending`` never is), posted or not."""
        sandbox = self.sandbox
        now = sandbox.now()
        out: list[tuple[MessageRow, str, float]] = []
        for row in sandbox.store.messages():
            state = message_state(row, now, sandbox.config.delivery_delays)
            out.extend((row, status, at) for status, at in state.history if status != "pending")
        return out

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
            posted = self.retries.flush(
                post, still_due=store.webhook_due, done=store.mark_webhook_sent
            )
            for row, status, at in self.due():
                if not store.webhook_due(row.id, status):
                    continue
                try:
                    # Encoded here, strictly, so a bad payload is this status's problem only.
                    body = json.dumps(self.payload(row, status, at), allow_nan=False)
                except (TypeError, ValueError):
                    _log.exception(
                        "webhook for message %s (%s) cannot be encoded; skipped", row.id, status
                    )
                    store.mark_webhook_sent(row.id, status)
                    continue
                if self.retries.holds(row.id):
                    # Behind an earlier status of the same message: order per message kept.
                    self.retries.defer(row.id, status, body, failed=False)
                elif post(body):
                    store.mark_webhook_sent(row.id, status)
                    posted += 1
                else:
                    # Backoff for this message only; the others go on.
                    self.retries.defer(row.id, status, body, failed=True)
        finally:
            if own:
                http.close()
        return posted

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
