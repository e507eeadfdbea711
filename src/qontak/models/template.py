"""WhatsApp message templates (``GET /templates/whatsapp``)."""

from __future__ import annotations

import re

from pydantic import Field

from ._base import QontakModel

__all__ = [
    "MEDIA_FORMATS",
    "Template",
    "TemplateButton",
    "TemplateCategory",
    "TemplateHeader",
    "placeholders",
]

MEDIA_FORMATS = frozenset({"IMAGE", "VIDEO", "DOCUMENT"})
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def placeholders(text: str | None) -> list[str]:
    """The distinct placeholder names in ``text``, in order of first appearance.

    >>> placeholders("Hi {{1}}, your order {{2}} ({{1}})")
    ['1', '2']
    """
    seen: dict[str, None] = {}
    for match in _PLACEHOLDER.finditer(text or ""):
        seen.setdefault(match.group(1), None)
    return list(seen)


class TemplateHeader(QontakModel):
    """A template header: ``format`` is IMAGE, VIDEO, DOCUMENT or TEXT."""

    format: str
    example: str | None = None
    text: str | None = None


class TemplateButton(QontakModel):
    """A template button: URL (maybe with a ``{{1}}`` suffix), PHONE_NUMBER or QUICK_REPLY."""

    type: str
    text: str | None = None
    url: str | None = None
    phone_number: str | None = None
    example: str | list[str] | None = None
    otp_type: str | None = None

    @property
    def is_dynamic(self) -> bool:
        """Whether a value must be supplied for this button at send time."""
        return self.type.upper() == "URL" and bool(placeholders(self.url))


class Template(QontakModel):
    """An approved (or not) WhatsApp template; ``id`` is the ``message_template_id``."""

    id: str
    name: str
    language: str
    organization_id: str | None = None
    header: TemplateHeader | None = None
    body: str = ""
    footer: str | None = None
    buttons: list[TemplateButton] = Field(default_factory=list)
    status: str | None = None
    category: str | None = None
    quality_rating: str | None = None
    quality_rating_text: str | None = None
    type: str | None = None

    @property
    def body_placeholders(self) -> list[str]:
        """Placeholder names in the body (``['1', '2']`` for ``{{1}} … {{2}}``)."""
        return placeholders(self.body)

    @property
    def header_format(self) -> str | None:
        """``IMAGE``/``VIDEO``/``DOCUMENT``/``TEXT``, or ``None`` without a header."""
        return self.header.format.upper() if self.header else None

    @property
    def is_approved(self) -> bool:
        """Whether WhatsApp will accept sends of this template."""
        return (self.status or "").upper() == "APPROVED"


class TemplateCategory(QontakModel):
    """An item of ``GET /templates/category``."""

    name: str | None = None
    value: str | None = None
