"""Broadcasts (the result of a direct send) and their per-recipient log rows."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._base import QontakModel

__all__ = [
    "FINAL_STATUSES",
    "Broadcast",
    "BroadcastLogEntry",
    "MessageStatusCount",
    "UploadedFile",
]

#: A log row in one of these states will not change any more (``read`` may still follow
#: ``delivered``; ``failed`` and ``read`` are terminal).
FINAL_STATUSES = frozenset({"read", "failed"})


class MessageStatusCount(QontakModel):
    """How many recipients of a broadcast are in each delivery state."""

    failed: int = 0
    delivered: int = 0
    read: int = 0
    pending: int = 0
    sent: int = 0


class Broadcast(QontakModel):
    """A broadcast; ``id`` is the broadcast id used to read its log."""

    id: str
    name: str | None = None
    organization_id: str | None = None
    channel_integration_id: str | None = None
    contact_list_id: str | None = None
    contact_id: str | None = None
    target_channel: str | None = None
    parameters: dict[str, Any] | None = None
    created_at: str | None = None
    send_at: str | None = None
    execute_status: str | None = None
    execute_type: str | None = None
    message_status_count: MessageStatusCount | None = None
    message_template: dict[str, Any] | None = None
    contact_extra: Any = None
    division_id: str | None = None
    message_broadcast_error: Any = None
    sender_name: str | None = None
    sender_email: str | None = None
    channel_account_name: str | None = None
    channel_phone_number: str | None = None


class BroadcastLogEntry(QontakModel):
    """One recipient's delivery status in a broadcast log.

    ``status`` is ``pending``, ``sent``, ``delivered``, ``read`` or ``failed``; on failure
    ``whatsapp_error_message`` says why and ``messages_response`` holds WhatsApp's answer.
    """

    id: str
    organization_id: str | None = None
    messages_broadcast_id: str | None = None
    contact_phone_number: str | None = None
    contact_full_name: str | None = None
    status: str | None = None
    whatsapp_message_id: str | None = None
    whatsapp_error_message: str | None = None
    messages_response: dict[str, Any] | None = Field(default=None)
    messages: dict[str, Any] | None = None
    created_at: str | None = None
    is_pacing: bool | None = None
    channel_integration_id: str | None = None

    @property
    def is_final(self) -> bool:
        """Whether this status will not change any more."""
        return (self.status or "") in FINAL_STATUSES

    @property
    def error_code(self) -> int | None:
        """The WhatsApp error code of a failed message, when Qontak passed it on."""
        resp = self.messages_response or {}
        errors = resp.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = errors[0].get("code")
            if isinstance(code, int) or (isinstance(code, str) and code.isdigit()):
                return int(code)
        return None


class UploadedFile(QontakModel):
    """The result of ``POST /file_uploader``: use ``url`` as header media."""

    filename: str | None = None
    url: str
