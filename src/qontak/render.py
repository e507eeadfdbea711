"""What the recipient will see: a template filled with a message's parameters (pure).

The layout follows ``whatsapp-rules.md`` §6: header (media card or bold title), body with the
variables substituted, footer, then the buttons. A variable the message does not fill is not
hidden or blanked: it shows as ``⟨missing {{2}}⟩`` and is listed in ``missing``, because that
send would fail with 132000 and a preview is where one should notice.

>>> from qontak.models import Template, DirectMessage, Language, MessageParameters
>>> tpl = Template(id="t", name="hi", language="id", body="Halo {{1}}, pesanan {{2}} dikirim.",
...                footer="Powered by Qontak")
>>> msg = DirectMessage(to_name="Budi", to_number="6281234567890", message_template_id="t",
...     channel_integration_id="c", language=Language(code="id"),
...     parameters=MessageParameters(body=[{"key": "1", "value_text": "Budi", "value": "n"}]))
>>> print(preview(tpl, msg))
Halo Budi, pesanan ⟨missing {{2}}⟩ dikirim.
_Powered by Qontak_
⚠ missing: body {{2}}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .models import (
    MEDIA_FORMATS,
    ButtonParameter,
    DirectMessage,
    HeaderParameter,
    Template,
    TemplateButton,
    placeholders,
)
from .validation import is_auth_button

__all__ = [
    "RenderedButton",
    "RenderedMedia",
    "RenderedMessage",
    "preview",
    "render",
    "render_template",
]

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
#: WhatsApp shows at most this many buttons before collapsing them into "See all options" (§6).
MAX_VISIBLE_BUTTONS = 3


@dataclass(frozen=True)
class RenderedMedia:
    """A media header: ``format`` is IMAGE/VIDEO/DOCUMENT; ``url``/``filename`` ``None`` when
    the message does not give them."""

    format: str
    url: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class RenderedButton:
    """A button as shown: ``kind`` is URL, PHONE_NUMBER, QUICK_REPLY, COPY_CODE or the template's
    own type; ``url`` is the final address (base + suffix), ``value`` a copied code."""

    kind: str
    text: str
    url: str | None = None
    phone_number: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class RenderedMessage:
    """A template message as the recipient sees it, plus what did not fit.

    ``missing`` and ``extra`` name unfilled and unused parameters (``"body {{2}}"``,
    ``"header IMAGE"``, ``"button 0 {{1}}"``); both empty means the parameters fit the template.
    """

    header: RenderedMedia | str | None
    body: str
    footer: str | None = None
    buttons: tuple[RenderedButton, ...] = ()
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    category: str | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Whether every placeholder was filled and no parameter was left over."""
        return not self.missing and not self.extra

    @property
    def urls(self) -> list[str]:
        """The final URLs of the URL buttons."""
        return [b.url for b in self.buttons if b.url]

    @property
    def phone_numbers(self) -> list[str]:
        """The numbers of the call buttons."""
        return [b.phone_number for b in self.buttons if b.phone_number]

    @property
    def quick_replies(self) -> list[str]:
        """The labels of the quick-reply buttons (sent back as the user's answer)."""
        return [b.text for b in self.buttons if b.kind == "QUICK_REPLY"]

    def to_text(self) -> str:
        """The plain-text preview of §6, e.g.::

            [IMAGE: Gojo_copy.jpeg]
            Halo Budi, pesanan #123 sudah dikirim.
            _Powered by Qontak_
            [ Lacak pesanan ↗ ] → https://x.co/track/123
            [ Hubungi kami ☎ ] → +6281234567890
            [ Ya ] [ Tidak ]

        Problems follow as ``⚠ missing: …`` / ``⚠ extra: …`` lines.
        """
        lines: list[str] = []
        if isinstance(self.header, RenderedMedia):
            name = self.header.filename or self.header.url or "⟨missing⟩"
            lines.append(f"[{self.header.format}: {name}]")
        elif self.header:
            lines.append(f"*{self.header}*")  # WhatsApp shows a text header as a bold title
        lines.append(self.body)
        if self.footer:
            lines.append(f"_{self.footer}_")  # small grey text: italic is the closest in text
        lines.extend(_button_lines(self.buttons))
        if len(self.buttons) > MAX_VISIBLE_BUTTONS:
            lines.append('(WhatsApp shows the first 2 buttons and "See all options")')
        if self.missing:
            lines.append("⚠ missing: " + ", ".join(self.missing))
        if self.extra:
            lines.append("⚠ extra: " + ", ".join(self.extra))
        return "\n".join(lines)


def _button_lines(buttons: tuple[RenderedButton, ...]) -> list[str]:
    """One row per button; consecutive quick replies share a row, as in WhatsApp's group."""
    lines: list[str] = []
    replies: list[str] = []
    for button in buttons:
        if button.kind == "QUICK_REPLY":
            replies.append(f"[ {button.text} ]")
            continue
        if replies:
            lines.append(" ".join(replies))
            replies = []
        if button.kind == "URL":
            lines.append(f"[ {button.text} ↗ ] → {button.url}")
        elif button.kind == "PHONE_NUMBER":
            target = f" → {button.phone_number}" if button.phone_number else ""
            lines.append(f"[ {button.text} ☎ ]{target}")
        elif button.kind == "COPY_CODE":
            target = f" → {button.value}" if button.value else ""
            lines.append(f"[ {button.text} ⧉ ]{target}")
        else:
            lines.append(f"[ {button.text} ]")
    if replies:
        lines.append(" ".join(replies))
    return lines


# --- Rendering ------------------------------------------------------------------------------------


def render(template: Template, message: DirectMessage | None = None) -> RenderedMessage:
    """Fill ``template`` with ``message``'s parameters (nothing filled when ``message`` is None).

    >>> from qontak.models import Template
    >>> render(Template(id="t", name="n", language="id", body="Hi {{1}}")).missing
    ('body {{1}}',)
    """
    return _render(template, message, lambda name: f"⟨missing {{{{{name}}}}}⟩")


def preview(template: Template, message: DirectMessage) -> str:
    """``render(template, message).to_text()``: what the recipient will see, as text."""
    return render(template, message).to_text()


def render_template(template: Template) -> str:
    """A template on its own, each placeholder marked ``⟨{{1}}⟩`` (for ``templates show``).

    >>> from qontak.models import Template, TemplateButton
    >>> print(render_template(Template(id="t", name="n", language="id", body="Hi {{1}}",
    ...     buttons=[TemplateButton(type="URL", text="Track", url="https://x.co/t/{{1}}")])))
    Hi ⟨{{1}}⟩
    [ Track ↗ ] → https://x.co/t/⟨{{1}}⟩
    """
    rendered = _render(template, None, lambda name: f"⟨{{{{{name}}}}}⟩")
    header = rendered.header
    if isinstance(header, RenderedMedia):
        # The media is given per send: mark it like a placeholder, not as missing.
        header = RenderedMedia(format=header.format, filename="⟨media url⟩")
    # Unfilled placeholders are the point here, not a problem: drop the warnings.
    return RenderedMessage(
        header=header,
        body=rendered.body,
        footer=rendered.footer,
        buttons=rendered.buttons,
    ).to_text()


def _render(
    template: Template, message: DirectMessage | None, mark: Callable[[str], str]
) -> RenderedMessage:
    params = message.parameters if message is not None else None
    missing: list[str] = []
    extra: list[str] = []

    header = _header(template, params.header if params else None, mark, missing, extra)

    values = message.body_values if message is not None else {}
    wanted = placeholders(template.body)
    missing += [f"body {{{{{n}}}}}" for n in wanted if not values.get(n)]
    extra += [f"body {{{{{k}}}}}" for k in values if k not in wanted]
    body = _fill(template.body, values, mark)

    given = {b.index: b for b in (params.buttons or [])} if params else {}
    buttons = _buttons(template, given, mark, missing, extra)

    return RenderedMessage(
        header=header,
        body=body,
        footer=template.footer or None,
        buttons=tuple(buttons),
        missing=tuple(missing),
        extra=tuple(extra),
        category=template.category,
    )


def _fill(text: str, values: dict[str, str], mark: Callable[[str], str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1)) or mark(m.group(1)), text)


def _header(
    template: Template,
    given: HeaderParameter | None,
    mark: Callable[[str], str],
    missing: list[str],
    extra: list[str],
) -> RenderedMedia | str | None:
    fmt = template.header_format
    if fmt in MEDIA_FORMATS:
        if given is None:
            missing.append(f"header {fmt}")
            return RenderedMedia(format=fmt)
        if given.format.upper() != fmt:
            missing.append(f"header {fmt}")
            extra.append(f"header {given.format.upper()}")
            return RenderedMedia(format=fmt)
        return RenderedMedia(format=fmt, url=given.get("url"), filename=given.get("filename"))
    if given is not None and given.format.upper() != "TEXT":
        extra.append(f"header {given.format.upper()}")
    if fmt == "TEXT" and template.header is not None:
        text = template.header.text or template.header.example or ""
        # Qontak documents no wire format for text-header variables; take params by key.
        values = {p.key: p.value for p in given.params} if given is not None else {}
        wanted = placeholders(text)
        missing += [f"header {{{{{n}}}}}" for n in wanted if n not in values]
        return _fill(text, values, mark)
    return None


def _buttons(
    template: Template,
    given: dict[str, ButtonParameter],
    mark: Callable[[str], str],
    missing: list[str],
    extra: list[str],
) -> list[RenderedButton]:
    out: list[RenderedButton] = []
    used: set[str] = set()
    auth = (template.category or "").upper() == "AUTHENTICATION"
    for i, button in enumerate(template.buttons):
        param = given.get(str(i))
        if param is not None:
            used.add(str(i))
        if auth and is_auth_button(template, button):
            out.append(_copy_code(button, param))
            if param is None:
                missing.append(f"button {i} code")
            continue
        out.append(_button(button, i, param, mark, missing))
        takes_value = button.is_dynamic or button.type.upper() in ("COPY_CODE", "OTP")
        if param is not None and not takes_value:
            used.discard(str(i))  # a static button given a value: the value is extra
    if auth and not template.buttons and "0" in given:
        # Qontak's template list may leave out the code button; the message still carries it.
        used.add("0")
        out.append(_copy_code(None, given["0"]))
    extra += [f"button {k}" for k in given if k not in used]
    return out


def _copy_code(button: TemplateButton | None, param: ButtonParameter | None) -> RenderedButton:
    """An authentication template's code button, with the template's own label ("Copy code",
    or "Autofill" for one-tap, when the template gives none)."""
    otp_type = (button.otp_type or "").upper() if button is not None else ""
    default = "Autofill" if otp_type in ("ONE_TAP", "ZERO_TAP") else "Copy code"
    label = (button.text if button is not None else None) or default
    return RenderedButton(kind="COPY_CODE", text=label, value=param.value if param else None)


def _button(
    button: TemplateButton,
    i: int,
    param: ButtonParameter | None,
    mark: Callable[[str], str],
    missing: list[str],
) -> RenderedButton:
    kind = button.type.upper()
    text = button.text or kind.replace("_", " ").title()
    if kind == "URL":
        url = button.url or ""
        names = placeholders(url)
        if names and param is None:
            missing += [f"button {i} {{{{{n}}}}}" for n in names]
        values = {n: param.value for n in names} if param is not None else {}
        return RenderedButton(kind=kind, text=text, url=_fill(url, values, mark))
    if kind == "PHONE_NUMBER":
        return RenderedButton(kind=kind, text=text, phone_number=button.phone_number)
    if kind in ("COPY_CODE", "OTP"):
        return _copy_code(button, param)
    return RenderedButton(kind=kind, text=text)
