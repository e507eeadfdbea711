"""Status events: Qontak's message-interaction callback, parsed strictly into one small object.

Qontak posts the same object for every change of an outbound message's status (spec §5):
``status`` (``created|sent|delivered|read``; the sandbox also sends ``failed`` with an
``error``), ``external_id`` (the WhatsApp message id, the log's ``whatsapp_message_id``),
``is_campaign``, ``room.account_uniq_id`` (the customer's number) and ``created_at``. It carries
no broadcast id and no signature.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import ValidationError

__all__ = [
    "MAX_EVENT_BYTES",
    "STATUS_RANK",
    "StatusEvent",
    "parse_event",
    "status_rank",
]

# A status callback is a few kilobytes; anything far larger is not one of Qontak's.
MAX_EVENT_BYTES = 64 * 1024

# A message's status only moves forward. ``failed`` ranks with ``read``: both are final, and
# whichever arrives first stays (a late ``failed`` never hides a ``read`` and vice versa).
STATUS_RANK: Mapping[str, int] = {
    "created": 0,
    "pending": 0,
    "sent": 1,
    "delivered": 2,
    "read": 3,
    "failed": 3,
}


def status_rank(status: str) -> int:
    """Where ``status`` stands in the order created < sent < delivered < read|failed."""
    return STATUS_RANK.get(status, -1)


@dataclass(frozen=True)
class StatusEvent:
    """One status change of one outbound message.

    ``external_id`` is the WhatsApp message id (match it with the broadcast log's
    ``whatsapp_message_id``); ``to_number`` the customer's number, digits only;
    ``occurred_at`` epoch seconds (UTC) from the event's ``created_at``. ``raw`` is the whole
    payload as received.
    """

    event_id: str
    external_id: str | None
    status: str
    to_number: str | None
    occurred_at: float | None
    is_campaign: bool
    channel_integration_id: str | None = None
    error: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def dedupe_key(self) -> str:
        """The same event delivered twice has the same key (one message, one status)."""
        return f"{self.external_id or 'event:' + self.event_id}|{self.status}"

    @property
    def rank(self) -> int:
        """See :func:`status_rank`."""
        return status_rank(self.status)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _text(value: Any, field_name: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise ValidationError(field_name, "is missing", code="missing")
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValidationError(field_name, "must be a string", code="invalid_type")
    text = str(value)
    if len(text) > 512 or any(ord(c) < 32 for c in text):
        raise ValidationError(field_name, "is not a plausible identifier", code="invalid")
    return text


def _time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _digits(value: str | None) -> str | None:
    if value is None:
        return None
    digits = "".join(c for c in value if c.isdigit())
    return digits or None


def parse_event(body: bytes | str | Mapping[str, Any]) -> StatusEvent:
    """Parse one status callback; raise :class:`~qontak.ValidationError` for anything else.

    Strict: at most :data:`MAX_EVENT_BYTES`, UTF-8 JSON without ``NaN``/``Infinity``, an
    object with a known ``status``. Framework-free, for receivers written by hand::

        >>> event = parse_event(b'{"id": "e1", "status": "read", "external_id": "wamid.1",'
        ...                     b' "room": {"account_uniq_id": "6281234567890"}}')
        >>> (event.status, event.external_id, event.to_number)
        ('read', 'wamid.1', '6281234567890')
    """
    if isinstance(body, Mapping):
        data: Any = body
    else:
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        if not isinstance(raw, bytes | bytearray):
            raise ValidationError("body", "must be bytes, text or a mapping", code="invalid_type")
        if len(raw) > MAX_EVENT_BYTES:
            raise ValidationError(
                "body", f"is larger than {MAX_EVENT_BYTES} bytes", code="too_large"
            )
        try:
            data = json.loads(bytes(raw).decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ValidationError("body", "is not valid UTF-8 JSON", code="invalid_json") from exc
    if not isinstance(data, Mapping):
        raise ValidationError("body", "must be a JSON object", code="invalid_type")
    status = _text(data.get("status"), "status", required=True)
    assert status is not None
    if status not in STATUS_RANK:
        raise ValidationError("status", f"unknown status {status[:40]!r}", code="invalid")
    room = data.get("room")
    if room is not None and not isinstance(room, Mapping):
        raise ValidationError("room", "must be an object", code="invalid_type")
    room = room or {}
    external_id = _text(data.get("external_id"), "external_id")
    if external_id == "n/a":
        external_id = None
    event_id = _text(data.get("id"), "id")
    if event_id is None and external_id is None:
        raise ValidationError(
            "id", "the event has neither an id nor an external_id", code="missing"
        )
    error = data.get("error")
    return StatusEvent(
        event_id=event_id or "",
        external_id=external_id,
        status=status,
        to_number=_digits(_text(room.get("account_uniq_id"), "room.account_uniq_id")),
        occurred_at=_time(data.get("created_at")),
        is_campaign=data.get("is_campaign") is True,
        channel_integration_id=_text(
            room.get("channel_integration_id"), "room.channel_integration_id"
        ),
        error=dict(error) if isinstance(error, Mapping) else None,
        raw=dict(data),
    )
