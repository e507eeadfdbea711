"""What the recipient sees: a template with the send's values filled in.

Pure functions over the template object and already-validated values; the result is the
``rendered`` field of the ground truth (and what the web inbox draws).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["MEDIA_FORMATS", "placeholders", "render", "substitute"]

MEDIA_FORMATS = ("IMAGE", "VIDEO", "DOCUMENT")

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def placeholders(text: str | None) -> list[str]:
    """Distinct placeholder names in ``text``, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in _PLACEHOLDER.finditer(text or ""):
        seen.setdefault(match.group(1), None)
    return list(seen)


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace each ``{{name}}`` with its value; unknown names stay as they are."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


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
        fmt = str(header.get("format", "")).upper()
        if fmt in MEDIA_FORMATS:
            url = header_values.get("url", "")
            rendered_header = {
                "format": fmt,
                "url": url,
                "filename": header_values.get("filename") or _filename_from(url),
            }
        elif fmt == "TEXT":
            rendered_header = {
                "format": "TEXT",
                "text": substitute(str(header.get("text") or ""), header_values),
            }
    buttons: list[dict[str, Any]] = []
    for index, button in enumerate(template.get("buttons") or []):
        kind = str(button.get("type", "")).upper()
        item: dict[str, Any] = {"type": kind, "text": button.get("text")}
        if kind == "URL":
            url = str(button.get("url") or "")
            suffix = button_values.get(index)
            if suffix is not None:
                url = substitute(url, {name: suffix for name in placeholders(url)})
            item["url"] = url
        elif kind == "PHONE_NUMBER":
            item["phone_number"] = button.get("phone_number")
        buttons.append(item)
    return {
        "header": rendered_header,
        "body": substitute(str(template.get("body") or ""), body_values),
        "footer": template.get("footer"),
        "buttons": buttons,
    }
