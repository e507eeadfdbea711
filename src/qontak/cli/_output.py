"""Everything the CLI prints: JSON, tables, message bubbles, status colours and error lines.

Human output goes to stdout through rich; ``--json`` output is plain JSON on stdout (no
colours, no wrapping). Errors and warnings go to stderr as one line each, never with a
secret in them (every line passes through :func:`safe_text`: :func:`qontak.redact`, and no
password of a URL).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from qontak import (
    Broadcast,
    BroadcastLogEntry,
    Channel,
    DirectMessage,
    Template,
    TemplateStatus,
    redact,
)
from qontak.models.template import PLACEHOLDER as _PLACEHOLDER
from qontak.render import RenderedButton, RenderedMedia, render

__all__ = [
    "STATUS_STYLES",
    "Column",
    "broadcasts_table",
    "bubble",
    "channels_table",
    "console",
    "error_json",
    "error_line",
    "fit_table",
    "hide_userinfo",
    "log_table",
    "paging_status",
    "print_json",
    "safe_text",
    "start_output",
    "status_text",
    "template_panel",
    "templates_table",
    "warn_line",
]

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


@contextlib.contextmanager
def paging_status(what: str, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A spinner on stderr while pages of ``what`` are fetched; yields ``tick(count)`` to
    report how many have arrived.

    Shown only when stderr is a terminal and ``quiet`` (``--json``) is off: a pipe or a log
    file gets no spinner frames, and stdout is never touched. ``isatty`` is asked directly
    rather than rich's ``is_terminal``, which ``FORCE_COLOR``/``TTY_COMPATIBLE`` can force on.
    The status is transient: it is erased before the command prints its table.
    """
    if quiet or not sys.stderr.isatty():
        yield lambda _count: None
        return
    label = f"Fetching {what}…"
    with console(stderr=True).status(label) as status:
        yield lambda count: status.update(f"{label} {count} so far")


#: Whether this command already wrote its JSON document to stdout (see :func:`error_json`).
_json_written: list[bool] = [False]


def start_output() -> None:
    """Mark the start of a command: nothing has been written to stdout yet."""
    _json_written[0] = False


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON (UTF-8 kept readable) to stdout."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    _json_written[0] = True


def error_json(error: dict[str, Any]) -> None:
    """Under ``--json``, write ``{"error": {...}}`` to stdout, so a script reading stdout
    learns what failed, unless the command already wrote its own JSON document (a second
    document would make stdout unparseable; that one already carries the outcome)."""
    if _json_written[0]:
        return
    error = {k: (_one_line(v) if isinstance(v, str) else v) for k, v in error.items()}
    print_json({"error": error})


#: The user-information part of a URL (``user:password@``): greedy up to the last ``@``
#: before the host's end, so a password holding an ``@`` is hidden whole.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s]*@")


def hide_userinfo(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced by ``***``
    (``http://u:SECRET@host`` → ``http://***@host``): a base URL may carry a password that
    the SDK never registered as a secret."""
    return _USERINFO.sub(r"\1***@", text)


def safe_text(text: str) -> str:
    """``text`` with registered secrets and URL passwords removed: what any output shows."""
    return hide_userinfo(redact(text))


def _one_line(message: str) -> str:
    return safe_text(" ".join(str(message).split()))


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
#
# Tables are laid out for the console they are printed on. Identifiers (ids, names, phone
# numbers, statuses) are never folded: a folded id cannot be copied. Headers never break inside
# a word. When the console is too narrow for every column at those widths, the least important
# columns are left out and the caption says which ones (``--json`` always has everything).


@dataclass
class Column:
    """One column of a fitted table.

    ``drop`` ranks the column for leaving out on a narrow console: 0 is always shown, and
    higher ranks go first. ``no_wrap`` columns hold identifiers and keep their full width.
    """

    header: str
    cells: list[str | Text] = field(default_factory=list)
    no_wrap: bool = False
    drop: int = 0
    justify: Literal["left", "right"] = "left"
    floor: int = 0
    """For wrapping text worth reading (error messages): the width it keeps, when its text is
    that long, before other columns are left out for it."""

    def min_width(self) -> int:
        """The narrowest this column can be without breaking a header word or an id."""
        longest = max((cell_len(str(c)) for c in self.cells), default=0)
        words = [cell_len(w) for w in self.header.split()] + [min(self.floor, longest)]
        for cell in self.cells:
            text = cell.plain if isinstance(cell, Text) else cell
            if self.no_wrap:
                words.append(cell_len(text))
            else:  # wrapped text breaks between words; a very long word may still fold
                words.extend(min(cell_len(w), _LONGEST_UNBROKEN) for w in text.split())
        return max(words, default=1)


#: A word in a wrapping column longer than this may be folded rather than widen the column.
_LONGEST_UNBROKEN = 20


def _table_overhead(columns: int) -> int:
    # SIMPLE_HEAVY with edges: one padding cell on each side of every column, plus the
    # edge/divider characters (columns + 1 of them).
    return 3 * columns + 1


def fit_table(title: str | None, columns: list[Column], width: int | None = None) -> Table:
    """A table of ``columns`` that fits ``width`` (default: the console's), leaving out
    droppable columns, highest ``drop`` first, until the rest fit unbroken."""
    available = width if width is not None else console().width
    shown = list(columns)
    hidden: list[str] = []
    for candidate in sorted((c for c in columns if c.drop), key=lambda c: -c.drop):
        needed = sum(c.min_width() for c in shown) + _table_overhead(len(shown))
        if needed <= available:
            break
        shown.remove(candidate)
        hidden.append(candidate.header)
    caption = None
    if hidden:
        caption = f"hidden at {available} columns: {', '.join(hidden)} (--json has all)"
    table = Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAVY,
        title_justify="left",
        caption_justify="left",
        header_style="bold",
    )
    for column in shown:
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=column.no_wrap,
            overflow="ellipsis" if column.no_wrap else "fold",
            min_width=column.min_width(),
        )
    rows = zip(*(c.cells for c in shown), strict=False) if shown else iter(())
    for row in rows:
        table.add_row(*row)
    return table


def _when(value: str | None) -> str:
    """An API timestamp (``2025-03-01T08:25:14.198Z``) as ``2025-03-01 08:25:14`` UTC: the
    milliseconds and the ``T`` only cost width in a table (``--json`` keeps the original)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # Python 3.10 takes only 0, 3 or 6 fraction digits: show it as given
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def channels_table(channels: Iterable[Channel], *, width: int | None = None) -> Table:
    """ID, phone number, account name, channel type and whether it is active."""
    cols = [
        Column("ID", no_wrap=True),
        Column("Phone number", no_wrap=True),
        Column("Account name"),
        Column("Channel", no_wrap=True, drop=2),
        Column("Active", no_wrap=True, drop=1),
    ]
    for ch in channels:
        active = "yes" if ch.is_active else ("no" if ch.is_active is False else "?")
        values = [ch.id, ch.phone_number or "", ch.account_name or "", ch.target_channel or ""]
        for col, value in zip(cols, [*values, active], strict=True):
            col.cells.append(value)
    return fit_table("Channels", cols, width)


def templates_table(templates: Iterable[Template], *, width: int | None = None) -> Table:
    """One row per template: name, language, category, status, header, variables, buttons,
    id (on a narrow console the id and then the buttons are left out)."""
    cols = [
        Column("Name", no_wrap=True),
        Column("Lang", no_wrap=True),
        Column("Category", no_wrap=True),
        Column("Status", no_wrap=True),
        Column("Header", no_wrap=True, drop=1),
        Column("Variables"),
        Column("Buttons", drop=2),
        Column("ID", no_wrap=True, drop=3),
    ]
    for t in templates:
        status = t.status or ""
        rejected = status == TemplateStatus.REJECTED
        style = "green" if t.is_approved else ("red" if rejected else "yellow")
        variables = " ".join(f"{{{{{p}}}}}" for p in t.body_placeholders)
        buttons = ", ".join(str(b.type) for b in t.buttons)
        row: list[str | Text] = [t.name, t.language, t.category or "", Text(status, style=style),
                                 t.header_format or "", variables, buttons, t.id]  # fmt: skip
        for col, value in zip(cols, row, strict=True):
            col.cells.append(value)
    return fit_table("Templates", cols, width)


def log_table(
    rows: Sequence[BroadcastLogEntry], title: str | None = None, *, width: int | None = None
) -> Table:
    """Per-recipient delivery status, with WhatsApp's error text for failures."""
    cols = [
        Column("Phone", no_wrap=True),
        Column("Name", drop=2),
        Column("Status", no_wrap=True),
        Column("WhatsApp message id", no_wrap=True, drop=4),
        Column("Error", floor=30),
        Column("Created (UTC)", no_wrap=True, drop=3),
    ]
    for row in rows:
        error = row.whatsapp_error_message or "" if row.status == "failed" else ""
        if row.status == "failed" and row.error_code is not None:
            error = f"{row.error_code}: {error}" if error else str(row.error_code)
        values: list[str | Text] = [
            row.contact_phone_number or "",
            row.contact_full_name or "",
            status_text(row.status),
            row.whatsapp_message_id or "",
            Text(error, style="red") if error else "",
            _when(row.created_at),
        ]
        for col, value in zip(cols, values, strict=True):
            col.cells.append(value)
    return fit_table(title, cols, width)


_COUNT_NAMES = ("pending", "sent", "delivered", "read", "failed")


def broadcasts_table(broadcasts: Iterable[Broadcast], *, width: int | None = None) -> Table:
    """Broadcasts with their per-status counts.

    Wide consoles get one column per status; narrower ones one ``Statuses`` column with the
    non-zero counts (``1 delivered, 2 read``), then lose Created, To and Template in that
    order; the id always stays whole, since ``qontak log`` needs it.
    """
    items = list(broadcasts)
    wide = [
        Column("ID", no_wrap=True),
        Column("Created (UTC)", no_wrap=True, drop=2),
        Column("To", no_wrap=True, drop=1),
        Column("Template"),
        *(Column(n.capitalize(), no_wrap=True, justify="right") for n in _COUNT_NAMES),
    ]
    narrow = [
        Column("ID", no_wrap=True),
        Column("Created (UTC)", no_wrap=True, drop=3),
        Column("To", no_wrap=True, drop=2),
        Column("Template", drop=1),
        Column("Statuses"),
    ]
    for b in items:
        c = b.message_status_count
        counts = [getattr(c, n) for n in _COUNT_NAMES] if c is not None else None
        template = b.message_template or {}
        name = str(template.get("name") or "")
        if template.get("language"):
            name += f" ({template['language']})"
        common: list[str | Text] = [b.id, _when(b.created_at), b.name or ""]
        if counts is None:
            per_status: list[str | Text] = [""] * len(_COUNT_NAMES)
        else:
            per_status = [str(n) for n in counts[:4]]
            per_status.append(Text(str(counts[4]), style="red" if counts[4] else ""))
        summary = Text()
        for status, n in zip(_COUNT_NAMES, counts or [], strict=False):
            if n:
                if summary:
                    summary.append(", ")
                summary.append(f"{n} {status}", style=STATUS_STYLES.get(status, ""))
        for col, value in zip(wide, [*common, name, *per_status], strict=True):
            col.cells.append(value)
        for col, value in zip(narrow, [*common, name, summary], strict=True):
            col.cells.append(value)
    available = width if width is not None else console().width
    if sum(c.min_width() for c in wide) + _table_overhead(len(wide)) <= available:
        return fit_table("Broadcasts", wide, available)
    return fit_table("Broadcasts", narrow, available)


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
        parts.extend(Text(f"⚠ note: {note}", style="bold yellow") for note in rendered.notes)
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
