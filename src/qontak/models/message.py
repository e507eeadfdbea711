"""The direct-send request body (``POST /broadcasts/whatsapp/direct``).

Field order follows Qontak's documentation, and fields left unset are omitted, so that
``DirectMessage.to_wire()`` serialises byte for byte like the Node client's README examples.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, PrivateAttr

from ._base import QontakModel
from .template import Template

__all__ = [
    "BodyParameter",
    "ButtonParameter",
    "DirectMessage",
    "HeaderParam",
    "HeaderParameter",
    "Language",
    "MessageParameters",
]


class HeaderParam(QontakModel):
    """One ``{"key": "url"|"filename", "value": …}`` item of a media header."""

    key: str
    value: str


class HeaderParameter(QontakModel):
    """``parameters.header``: the media of an IMAGE/VIDEO/DOCUMENT header."""

    format: str
    params: list[HeaderParam] = Field(default_factory=list)

    def get(self, key: str) -> str | None:
        """The value of param ``key`` (``url`` or ``filename``), if present."""
        return next((p.value for p in self.params if p.key == key), None)


class ButtonParameter(QontakModel):
    """``parameters.buttons[]``: the dynamic part of a button (URL suffix or OTP code)."""

    index: str
    type: str
    value: str


class BodyParameter(QontakModel):
    """``parameters.body[]``: ``key`` is the placeholder number, ``value_text`` the text the
    recipient sees, ``value`` a free label (``"name"``, ``"otp"``…)."""

    key: str
    value_text: str
    value: str


class MessageParameters(QontakModel):
    """``parameters``: header media, button values and body variables."""

    header: HeaderParameter | None = None
    buttons: list[ButtonParameter] | None = None
    body: list[BodyParameter] | None = None


class Language(QontakModel):
    """``{"code": "id"}``: must equal the template's language."""

    code: str


class DirectMessage(QontakModel):
    """One WhatsApp template message to one recipient, exactly as sent on the wire."""

    to_name: str
    to_number: str
    message_template_id: str
    channel_integration_id: str
    language: Language
    parameters: MessageParameters = Field(default_factory=MessageParameters)

    # The template a builder used, so a send can be validated without fetching it again.
    _template: Template | None = PrivateAttr(default=None)

    @property
    def template(self) -> Template | None:
        """The template this message was built from, when known."""
        # Read from pydantic's private store directly: ``self._template`` first fails the
        # normal lookup and raises inside pydantic, costing more than a whole validation rule
        # (a send reads it several times).
        private = self.__pydantic_private__
        return private.get("_template") if private else None

    def with_template(self, template: Template | None) -> DirectMessage:
        """Remember the template this message is for (used for validation and preview)."""
        self._template = template
        return self

    def to_wire(self) -> dict[str, Any]:
        """The JSON body of the request, with unset parts omitted."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)

    def to_json(self, *, indent: int | None = None) -> str:
        """``to_wire()`` as a JSON string (non-ASCII text kept readable)."""
        return json.dumps(self.to_wire(), ensure_ascii=False, indent=indent)

    @property
    def body_values(self) -> dict[str, str]:
        """Body variables as ``{"1": "Budi", …}``."""
        return {p.key: p.value_text for p in self.parameters.body or []}
