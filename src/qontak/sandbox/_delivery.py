"""Delivery simulation: how an accepted message moves through WhatsApp's statuses.

Status is computed from the clock whenever it is read, never by a background task, so a
fake clock drives it exactly. With ``delivery_delays = (sent, delivered, read)`` seconds:

    accepted ── pending ──(sent s)── sent ──(delivered s)── delivered ──(read s)── read

Magic recipients (the table :data:`MAGIC_ERRORS`, the one place they are defined): a
``to_number`` whose **last six digits** are one of these WhatsApp error codes is accepted
(201) like any other, then fails at the ``sent`` time with that error, e.g.
``6281234131026``:

======  ==================================================  =====================
code    meaning                                             whatsapp_message_id
======  ==================================================  =====================
130429  Cloud API throughput reached                        ``n/a`` (refused)
131000  Something went wrong                                wamid kept
131026  Message undeliverable                               wamid kept
131047  Re-engagement message (24 h window closed)          wamid kept
131049  Meta chose not to deliver (per-user marketing cap)  wamid kept
131050  User stopped marketing messages                     wamid kept
131053  Media upload error                                  wamid kept
131056  Pair rate limit hit                                 ``n/a`` (refused)
132001  Template does not exist / not approved              ``n/a`` (refused)
132015  Template is paused                                  ``n/a`` (refused)
133010  Phone number not registered                         ``n/a`` (refused)
======  ==================================================  =====================

"Refused" errors are the ones Meta returns synchronously to the send call, so no WhatsApp
message id ever existed and the log shows ``"n/a"`` as in Qontak's documented failed row;
the others are reported later by a status webhook, after a ``wamid`` was issued.
The log row then has ``status: "failed"``, ``whatsapp_error_message`` = the error's details
and ``messages_response = {"code": "400", "meta": {…}, "errors": [{"code", "title",
"details"}]}``.

**Due-time index.** Reading a status never needs the store: :func:`status_history` is a pure
function of the clock. Consumers of *changes* (the inbox's ``?after=`` feed, the webhook
poller) need each change once, in order, without re-reading every message; for them the store
keeps each message's last status and the time its next one is due (``None`` once final), and
:func:`advance_status` moves one message on. Only messages whose due time has passed are ever
touched, so a poll costs what changed, not what is stored.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "MAGIC_ERRORS",
    "STATUSES",
    "WhatsAppError",
    "advance_status",
    "error_for_number",
    "iso",
    "new_wamid",
    "status_history",
    "status_schedule",
]

#: Every status a log row can have, in Qontak's ``message_status_count`` key order.
STATUSES = ("failed", "delivered", "read", "pending", "sent")


@dataclass(frozen=True)
class WhatsAppError:
    """One WhatsApp (Meta Cloud API) error as Qontak relays it in a log row."""

    code: int
    title: str
    details: str
    refused: bool
    """True when Meta refuses the send call itself, so no wamid is ever issued."""

    def to_dict(self) -> dict[str, Any]:
        """``{"code", "title", "details"}``, the ground-truth ``error`` field."""
        return {"code": self.code, "title": self.title, "details": self.details}

    def messages_response(self) -> dict[str, Any]:
        """The raw provider response Qontak stores in ``messages_response``."""
        return {
            "code": "400",
            "meta": {"version": "sandbox", "api_status": "stable"},
            "errors": [self.to_dict()],
        }


def _e(code: int, title: str, details: str, *, refused: bool = False) -> WhatsAppError:
    return WhatsAppError(code, title, details, refused)


#: The magic recipients: last six digits of ``to_number`` → the error that message gets.
MAGIC_ERRORS: dict[str, WhatsAppError] = {
    str(err.code): err
    for err in (
        _e(
            130429,
            "Rate limit hit",
            "Cloud API message throughput has been reached.",
            refused=True,
        ),
        _e(131000, "Something went wrong", "Message failed to send due to an unknown error."),
        _e(
            131026,
            "Message undeliverable",
            "Unable to deliver message. Reasons can include: the recipient phone number is not"
            " a WhatsApp phone number; the recipient has not accepted WhatsApp's new Terms of"
            " Service and Privacy Policy; the recipient is using an old WhatsApp version.",
        ),
        _e(
            131047,
            "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer"
            " last replied to this number.",
        ),
        _e(
            131049,
            "This message was not delivered to maintain healthy ecosystem engagement.",
            "In order to maintain a healthy ecosystem engagement, the message failed to be"
            " delivered. Wait at least 24 hours before resending.",
        ),
        _e(
            131050,
            "User has stopped marketing messages",
            "Unable to deliver the message. This recipient has chosen to stop receiving"
            " marketing messages on WhatsApp from your business.",
        ),
        _e(
            131053,
            "Media upload error",
            "Unable to upload the media used in the message.",
        ),
        _e(
            131056,
            "(Business Account, Consumer Account) pair rate limit hit",
            "Too many messages sent from the sender phone number to the same recipient phone"
            " number in a short period of time.",
            refused=True,
        ),
        _e(
            132001,
            "Template does not exist",
            "The template does not exist in the specified language or the template has not"
            " been approved.",
            refused=True,
        ),
        _e(
            132015,
            "Template is Paused",
            "Template is paused due to low quality so it cannot be sent in a template message.",
            refused=True,
        ),
        _e(
            133010,
            "Phone number not registered",
            "Phone number not registered on the WhatsApp Business Platform.",
            refused=True,
        ),
    )
}


def error_for_number(to_number: str) -> WhatsAppError | None:
    """The simulated failure for a recipient, or None for a normal delivery."""
    return MAGIC_ERRORS.get(to_number[-6:])


def new_wamid(to_number: str) -> str:
    """A fresh ``wamid.…`` shaped like Meta's (base64 of a protobuf-like blob)."""
    blob = b"\x15\x02\x00\x11\x18\x12" + secrets.token_hex(9).upper().encode() + b"\x00"
    number = to_number.encode()[:255]
    return "wamid." + base64.b64encode(b"\x18" + bytes([len(number)]) + number + blob).decode()


def iso(ts: float) -> str:
    """Epoch seconds → ``2024-10-15T21:18:44.042Z`` (Qontak's timestamp style)."""
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def status_schedule(
    accepted_at: float, delays: tuple[float, float, float], error: WhatsAppError | None
) -> list[tuple[str, float]]:
    """Every status the message will ever reach, oldest first, with the time it reaches it."""
    if error is not None:
        return [("pending", accepted_at), ("failed", accepted_at + delays[0])]
    steps = zip(("sent", "delivered", "read"), delays, strict=True)
    return [("pending", accepted_at), *((status, accepted_at + delay) for status, delay in steps)]


def status_history(
    accepted_at: float,
    now: float,
    delays: tuple[float, float, float],
    error: WhatsAppError | None,
) -> list[tuple[str, float]]:
    """Every status the message has reached by ``now``, oldest first, with its time."""
    schedule = status_schedule(accepted_at, delays, error)
    return [schedule[0], *(step for step in schedule[1:] if now >= step[1])]


def advance_status(
    status: str,
    accepted_at: float,
    delays: tuple[float, float, float],
    error: WhatsAppError | None,
    now: float,
) -> tuple[list[tuple[str, float]], str, float | None]:
    """Move a message on from its stored ``status`` to where the clock says it is by ``now``.

    Returns the statuses reached since ``status`` (oldest first, with their times), the status
    it is now in, and when its next status is due (None once it is final).
    """
    schedule = status_schedule(accepted_at, delays, error)
    names = [name for name, _ in schedule]
    position = names.index(status) if status in names else 0
    reached: list[tuple[str, float]] = []
    for step in schedule[position + 1 :]:
        if now < step[1]:
            return reached, (reached[-1][0] if reached else schedule[position][0]), step[1]
        reached.append(step)
    return reached, schedule[-1][0], None
