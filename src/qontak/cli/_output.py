"""Everything the CLI prints: JSON, tables, message bubbles, status colours and error lines.

Human output goes to stdout through rich; ``--json`` output is plain JSON on stdout (no
colours, no wrapping). Errors and warnings go to stderr as one line each, never with a
secret in them (every line passes through :func:`qontak._logging.redact`).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .._logging import redact
from ..models import Broadcast, BroadcastLogEntry, Channel, DirectMessage, Template
from ..render import RenderedButton, RenderedMedia, render

__all__ = [
    "STATUS_STYLES",
    "broadcasts_table",
    "bubble",
    "channels_table",
    "console",
    "error_line",
    "log_table",
    "print_json",
    "status_text",
    "template_panel",
    "templates_table",
    "warn_line",
]

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")

#: Colour of each delivery status (WhatsApp's ticks: grey, grey, blue-ish, blue; red failure).
STATUS_STYLES = {
    "pending": "dim",
    "sent": "white",
    "delivered": "cyan",
    "read": "bold blue",
    "failed": "bold red",
}
_TICKS = {"pending": "🕓", "sent": "✓", "delivered": "✓✓", "read": "✓✓", "failed": "✗"}


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr). When the stream is not a terminal and ``COLUMNS``
    is unset, lines are 160 wide so ids and URLs in tables are not folded."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not (hasattr(stream, "isatty") and stream.isatty()) and not os.environ.get("COLUMNS"):
        width = 160
    return Console(stderr=stderr, width=width, highlight=False)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON (UTF-8 kept readable) to stdout."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _one_line(message: str) -> str:
    return redact(" ".join(str(message).split()))


def error_line(message: str) -> None:
    """``error: …`` in red on stderr, on a single line."""
    console(stderr=True).print(
        Text(f"error: {_one_line(message)}", style="red"), soft_wrap=True, markup=False
    )


def warn_line(message: str) -> None:
    """``warning: …`` in yellow on stderr, on a single line."""
    console(stderr=True).print(
        Text(f"warning: {_one_line(message)}", style="yellow"), soft_wrap=True, markup=False
    )


def status_text(status: str | None) -> Text:
    """A delivery status with its tick and colour (``✓✓ read`` in blue)."""
    name = status or "?"
    return Text(f"{_TICKS.get(name, '·')} {name}", style=STATUS_STYLES.get(name, ""))


# --- tables --------------------------------------------------------------------------------------


def _table(title: str | None, *columns: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def channels_table(channels: Iterable[Channel]) -> Table:
    """ID, phone number, account name, channel type and whether it is active."""
    table = _table("Channels", "ID", "Phone number", "Account name", "Channel", "Active")
    for ch in channels:
        active = "yes" if ch.is_active else ("no" if ch.is_active is False else "?")
        table.add_row(
            ch.id, ch.phone_number or "", ch.account_name or "", ch.target_channel or "", active
        )
    return table


def templates_table(templates: Iterable[Template]) -> Table:
    """One row per template: name, language, category, status, header, variables, buttons."""
    table = _table(
        "Templates", "Name", "Lang", "Category", "Status", "Header", "Variables", "Buttons", "ID"
    )
    for t in templates:
        status = t.status or ""
        style = "green" if t.is_approved else ("red" if status.upper() == "REJECTED" else "yellow")
        variables = " ".join(f"{{{{{p}}}}}" for p in t.body_placeholders)
        buttons = ", ".join(b.type.upper() for b in t.buttons)
        table.add_row(
            t.name,
            t.language,
            t.category or "",
            Text(status, style=style),
            t.header_format or "",
            variables,
            buttons,
            t.id,
        )
    return table


def log_table(rows: Sequence[BroadcastLogEntry], title: str | None = None) -> Table:
    """Per-recipient delivery status, with WhatsApp's error text for failures."""
    table = _table(title, "Phone", "Name", "Status", "WhatsApp message id", "Error", "Created")
    for row in rows:
        error = row.whatsapp_error_message or "" if row.status == "failed" else ""
        if row.status == "failed" and row.error_code is not None:
            error = f"{row.error_code}: {error}" if error else str(row.error_code)
        table.add_row(
            row.contact_phone_number or "",
            row.contact_full_name or "",
            status_text(row.status),
            row.whatsapp_message_id or "",
            Text(error, style="red") if error else "",
            row.created_at or "",
        )
    return table


def broadcasts_table(broadcasts: Iterable[Broadcast]) -> Table:
    """Broadcasts with their per-status counts."""
    table = _table(
        "Broadcasts",
        "ID",
        "Created",
        "To",
        "Template",
        "Pending",
        "Sent",
        "Delivered",
        "Read",
        "Failed",
    )
    for b in broadcasts:
        c = b.message_status_count
        counts = (
            [str(c.pending), str(c.sent), str(c.delivered), str(c.read), str(c.failed)]
            if c is not None
            else ["", "", "", "", ""]
        )
        template = b.message_template or {}
        name = str(template.get("name") or "")
        if template.get("language"):
            name += f" ({template['language']})"
        failed = Text(counts[4], style="red" if c is not None and c.failed else "")
        table.add_row(b.id, b.created_at or "", b.name or "", name, *counts[:4], failed)
    return table


# --- message bubbles -----------------------------------------------------------------------------


def _styled_fill(text: str, values: dict[str, str] | None) -> Text:
    """``text`` with placeholders replaced: values highlighted, unfilled ones marked in red
    (``values=None`` marks every placeholder as a slot, for a template on its own)."""
    out = Text()
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        out.append(text[pos : match.start()])
        name = match.group(1)
        if values is None:
            out.append(f"⟨{{{{{name}}}}}⟩", style="bold yellow")
        elif values.get(name):
            out.append(values[name], style="bold cyan")
        else:
            out.append(f"⟨missing {{{{{name}}}}}⟩", style="bold red")
        pos = match.end()
    out.append(text[pos:])
    return out


def _button_line(button: RenderedButton) -> Text:
    line = Text()
    if button.kind == "URL":
        line.append(f"[ {button.text} ↗ ]", style="bold blue")
        if button.url:
            line.append(f"  {button.url}", style="blue underline")
    elif button.kind == "PHONE_NUMBER":
        line.append(f"[ {button.text} ☎ ]", style="bold blue")
        if button.phone_number:
            line.append(f"  {button.phone_number}", style="blue")
    elif button.kind == "COPY_CODE":
        line.append(f"[ {button.text} ⧉ ]", style="bold blue")
        if button.value:
            line.append(f"  {button.value}", style="bold cyan")
    else:
        line.append(f"[ {button.text} ]", style="bold blue")
    return line


def bubble(template: Template, message: DirectMessage | None, *, title: str | None = None) -> Panel:
    """The message as the recipient will see it: header, body with the values, footer,
    buttons; problems (unfilled or extra parameters) are listed under the bubble.

    With ``message=None`` the template is drawn on its own, each placeholder marked ⟨{{n}}⟩.
    """
    rendered = render(template, message)
    parts: list[RenderableType] = []
    header = rendered.header
    if isinstance(header, RenderedMedia):
        icon = {"IMAGE": "🖼", "VIDEO": "🎬", "DOCUMENT": "📄"}.get(header.format, "▣")
        name = header.filename or header.url
        if name:
            card = Text(f"{icon} {header.format}  {name}", style="bold magenta")
        elif message is None:
            card = Text(f"{icon} {header.format}  ⟨media⟩", style="bold yellow")
        else:
            card = Text(f"{icon} {header.format}  ⟨missing media⟩", style="bold red")
        if header.url and header.filename:
            card.append(f"\n   {header.url}", style="dim")
        parts.append(card)
    elif header:
        parts.append(Text(header, style="bold"))
    values = message.body_values if message is not None else None
    parts.append(_styled_fill(template.body, values))
    if rendered.footer:
        parts.append(Text(rendered.footer, style="dim italic"))
    if rendered.buttons:
        parts.append(Text("─" * 30, style="dim"))
        parts.extend(_button_line(b) for b in rendered.buttons)
    if message is not None:
        if rendered.missing:
            parts.append(Text("⚠ missing: " + ", ".join(rendered.missing), style="bold red"))
        if rendered.extra:
            parts.append(Text("⚠ extra: " + ", ".join(rendered.extra), style="bold red"))
    subtitle = f"{template.name} · {template.language}"
    if template.category:
        subtitle += f" · {template.category}"
    return Panel(
        Group(*parts),
        title=title,
        subtitle=subtitle,
        box=box.ROUNDED,
        border_style="green",
        expand=False,
        width=72,
    )


def template_panel(template: Template) -> Panel:
    """A template on its own with its placeholders marked (``templates show``)."""
    return bubble(template, None, title=f"{template.name} ({template.status or '?'})")
