"""Delivery status by webhook: receive Qontak's status callbacks instead of polling logs.

Polling ``GET /broadcasts/{id}/whatsapp/log`` costs one request per message out of the same
budget sending needs; Qontak can instead POST every status change to a URL you register
(``client.webhooks.register(url)``). This package receives them:

- :func:`parse_event` turns one callback body into a :class:`StatusEvent` (framework-free);
- :class:`WebhookReceiver` is an ASGI app that checks the URL token, stores each event durably
  and idempotently (:class:`SQLiteWebhookStore`) before answering, and calls your
  ``@receiver.on_status`` functions;
- ``qontak webhooks serve`` runs it standalone.

Mounting in FastAPI::

    from fastapi import FastAPI
    from qontak.webhooks import SQLiteWebhookStore, WebhookReceiver

    receiver = WebhookReceiver(SQLiteWebhookStore("qontak-webhooks.db"), token=TOKEN)
    app = FastAPI()
    app.mount("/qontak", receiver)       # register https://your.host/qontak/<TOKEN>
"""

from ._events import MAX_EVENT_BYTES, STATUS_RANK, StatusEvent, parse_event, status_rank
from ._receiver import StatusCallback, WebhookReceiver, new_token
from ._store import MessageStatus, SQLiteWebhookStore, WebhookStore

__all__ = [
    "MAX_EVENT_BYTES",
    "STATUS_RANK",
    "MessageStatus",
    "SQLiteWebhookStore",
    "StatusCallback",
    "StatusEvent",
    "WebhookReceiver",
    "WebhookStore",
    "new_token",
    "parse_event",
    "status_rank",
]
