"""JSON shapes served by the sandbox, built from stored rows and the clock.

Broadcast and log shapes mirror the official OpenAPI examples key for key; the ground-truth
message shape is the contract with the web inbox (see :func:`ground_truth`).
"""

from __future__ import annotations

from typing import Any

from ..models.template import MEDIA_FORMATS, HeaderFormat, placeholders
from ._delivery import MAGIC_ERRORS, STATUSES, WhatsAppError, iso, status_history
from ._store import MessageRow

__all__ = ["broadcast_view", "ground_truth", "log_row", "message_state"]


class MessageState:
    """A message's status as of one instant."""

    def __init__(self, row: MessageRow, now: float, delays: tuple[float, float, float]) -> None:
        self.error: WhatsAppError | None = MAGIC_ERRORS.get(row.error_code or "")
        self.history = status_history(row.accepted_at, now, delays, self.error)
        self.status = self.history[-1][0]
        refused = self.error is not None and self.error.refused
        self.wamid = "n/a" if refused else row.wamid
        self.failed = self.status == "failed"


def message_state(row: MessageRow, now: float, delays: tuple[float, float, float]) -> MessageState:
    """Status, history and error of ``row`` at ``now``."""
    return MessageState(row, now, delays)


def ground_truth(row: MessageRow, now: float, delays: tuple[float, float, float]) -> dict[str, Any]:
    """One accepted message as ``GET /_sandbox/messages`` and ``Sandbox.messages()`` give it.

    Keys: id, broadcast_id, whatsapp_message_id, to_number, to_name, channel_integration_id,
    status, status_history[{status, at}], error (null or {code, title, details}),
    created_at, template, parameters (as received), rendered {header, body, footer, buttons}.
    """
    state = message_state(row, now, delays)
    return {
        "id": row.id,
        "broadcast_id": row.broadcast_id,
        "whatsapp_message_id": state.wamid,
        "to_number": row.to_number,
        "to_name": row.to_name,
        "channel_integration_id": row.channel_integration_id,
        "status": state.status,
        "status_history": [{"status": s, "at": iso(at)} for s, at in state.history],
        "error": state.error.to_dict() if state.failed and state.error else None,
        "created_at": iso(row.accepted_at),
        "template": row.template,
        "parameters": row.parameters,
        "rendered": row.rendered,
    }


def _wire_messages(row: MessageRow) -> dict[str, Any]:
    # Qontak's "messages" echoes the template parts and the provider-bound parameters.
    template = row.template
    params = row.parameters if isinstance(row.parameters, dict) else {}
    body_values = {
        str(item.get("key")): item.get("value_text")
        for item in params.get("body") or []
        if isinstance(item, dict)
    }
    body_params = [
        {"type": "text", "text": body_values[name]}
        for name in placeholders(template.get("body"))
        if name in body_values
    ]
    header_params: list[dict[str, Any]] = []
    header = row.rendered.get("header")
    fmt = HeaderFormat.of(str(header.get("format"))) if isinstance(header, dict) else None
    if isinstance(header, dict) and fmt in MEDIA_FORMATS:
        kind = str(fmt).lower()
        media: dict[str, Any] = {"link": header.get("url")}
        if kind == "document":
            media["filename"] = header.get("filename")
        header_params.append({"type": kind, kind: media})
    button_params = [
        {
            "type": "button",
            "sub_type": "url",
            "index": str(item.get("index")),
            "parameters": [{"type": "text", "text": item.get("value")}],
        }
        for item in params.get("buttons") or []
        if isinstance(item, dict)
    ]
    return {
        "body": {"type": "body", "template": template.get("body"), "parameters": body_params},
        "header": {
            "type": "header",
            "template": template.get("header") or {},
            "parameters": header_params,
        },
        "buttons": {
            "type": "buttons",
            "template": template.get("buttons") or None,
            "parameters": button_params,
        },
    }


def log_row(
    row: MessageRow, now: float, delays: tuple[float, float, float], organization_id: str
) -> dict[str, Any]:
    """One row of ``GET /broadcasts/{id}/whatsapp/log``, shaped like the OpenAPI example."""
    state = message_state(row, now, delays)
    error = state.error if state.failed else None
    return {
        "id": row.id,
        "organization_id": organization_id,
        "messages_broadcast_id": row.broadcast_id,
        "contact_phone_number": row.to_number,
        "contact_full_name": row.to_name,
        "status": state.status,
        "whatsapp_message_id": state.wamid,
        "whatsapp_error_message": error.details if error else "n/a",
        "messages_response": error.messages_response() if error else {},
        "messages": _wire_messages(row),
        "created_at": iso(row.accepted_at),
        "is_pacing": False,
        "channel_integration_id": row.channel_integration_id,
    }


def broadcast_view(
    stored: dict[str, Any],
    rows: list[MessageRow],
    now: float,
    delays: tuple[float, float, float],
    *,
    detail: bool,
) -> dict[str, Any]:
    """A broadcast as the list (``detail=False``) or detail endpoint serves it."""
    counts = dict.fromkeys(STATUSES, 0)
    for row in rows:
        counts[message_state(row, now, delays).status] += 1
    view: dict[str, Any] = {}
    for key, value in stored.items():
        view[key] = value
        if key == "created_at":
            view["message_status_count"] = counts
        if key == "message_broadcast_error" and detail:
            view["contact_list_name"] = None
    return view
