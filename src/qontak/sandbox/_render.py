"""What the recipient sees: a template with the send's values filled in.

Pure functions over the template object and already-validated values; the result is the
``rendered`` field of the ground truth (and what the web inbox draws).

The template facts (the placeholder pattern, header formats, button types) are the SDK models'
own (:mod:`qontak.models.template`), so the sandbox and the client read a template alike; the
server's *checks* stay written separately in :mod:`._validation`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from ..models.template import (
    MEDIA_FORMATS,
    PLACEHOLDER,
    ButtonType,
    HeaderFormat,
    placeholders,
)

__all__ = ["MEDIA_FORMATS", "placeholders", "render", "substitute"]


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace each ``{{name}}`` with its value; unknown names stay as they are."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _filename_from(url: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name or "file"


def render(
    template: dict[str, Any],
    *,
    body_values: dict[str, str],
    header_values: dict[str, str],
    button_values: dict[int, str],
) -> dict[str, Any]:
    """``{"header", "body", "footer", "buttons"}`` as WhatsApp would show the message.

    ``header_values`` holds ``url``/``filename`` for a media header, or the placeholder
    values of a TEXT header; ``button_values`` maps a button's position to its URL suffix.
    """
    header = template.get("header")
    rendered_header: dict[str, Any] | None = None
    if isinstance(header, dict):
        fmt = HeaderFormat.of(str(header.get("format", "")))
        if fmt in MEDIA_FORMATS:
            url = header_values.get("url", "")
            rendered_header = {
                "format": str(fmt),
                "url": url,
                "filename": header_values.get("filename") or _filename_from(url),
            }
        elif fmt == HeaderFormat.TEXT:
            rendered_header = {
                "format": "TEXT",
                "text": substitute(str(header.get("text") or ""), header_values),
            }
    buttons: list[dict[str, Any]] = []
    for index, button in enumerate(template.get("buttons") or []):
        kind = ButtonType.of(str(button.get("type", "")))
        item: dict[str, Any] = {"type": str(kind), "text": button.get("text")}
        if kind == ButtonType.URL:
            url = str(button.get("url") or "")
            suffix = button_values.get(index)
            if suffix is not None:
                url = substitute(url, {name: suffix for name in placeholders(url)})
            item["url"] = url
        elif kind == ButtonType.PHONE_NUMBER:
            item["phone_number"] = button.get("phone_number")
        buttons.append(item)
    return {
        "header": rendered_header,
        "body": substitute(str(template.get("body") or ""), body_values),
        "footer": template.get("footer"),
        "buttons": buttons,
    }
