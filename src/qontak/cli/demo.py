"""``qontak demo``: the whole documented flow, for every kind of template, on an embedded sandbox.

It starts a sandbox in a background thread (short delivery delays), then for each kind (OTP,
text with variables, image, document, video, CTA URL, CTA phone) walks: authorise → find
template → find channel → map parameters → preview → send → read the log until ``read``.
Without ``--serve`` it finishes in a few seconds; with ``--serve`` it keeps the sandbox
running and prints the web inbox URL.

JSON shape::

    {"base_url": str, "inbox": str | null, "channel": Channel,
     "results": [{"kind": str, "template": Template, "message": <wire JSON>, "preview": str,
                  "broadcast": Broadcast, "statuses": [str, ...], "log": [BroadcastLogEntry],
                  "final_status": str}]}
"""

from __future__ import annotations

import contextlib
import logging
import signal
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from qontak import BroadcastLogEntry, Channel, DirectMessage, Qontak, Template, messages
from qontak import preview as render_preview
from qontak.resources.templates import pick_template

from ._output import Column, bubble, console, fit_table, print_json, status_text
from ._state import command, fail, state
from .exit_codes import ExitCode
from .sandbox import info_panel, parse_delays, sandbox_info

__all__ = ["KINDS", "Kind", "register", "sample_pdf", "sample_png"]

#: The demo's recipient (any valid Indonesian mobile number works in the sandbox).
DEMO_NUMBER = "0812-3456-7890"
DEMO_NAME = "Budi"
_STEPS = {"pending": 0, "sent": 1, "delivered": 2, "read": 3}


def sample_png(size: int = 48) -> bytes:
    """A small green PNG (made here, so the demo needs no files and no network)."""
    raw = b"".join(b"\x00" + bytes((37, 211, 102)) * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))  # fmt: skip


def sample_pdf() -> bytes:
    """A one-page PDF saying "Invoice INV-2025-001"."""
    stream = b"BT /F1 24 Tf 72 720 Td (Invoice INV-2025-001) Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out


Builder = Callable[[Qontak, Template, Channel], tuple[DirectMessage, list[tuple[str, str]]]]


@dataclass(frozen=True)
class Kind:
    """One kind of template message the demo sends: its label, seeded template and builder.

    The builder returns the message and the parameter mapping to show (slot, value).
    """

    label: str
    template: str
    build: Builder


def _otp(c: Qontak, t: Template, ch: Channel) -> tuple[DirectMessage, list[tuple[str, str]]]:
    code = "482913"
    msg = messages.otp(DEMO_NUMBER, code, template=t, channel=ch, name=DEMO_NAME)
    return msg, [("body {{1}}", code), ("button 0 (copy code)", code)]


def _text(c: Qontak, t: Template, ch: Channel) -> tuple[DirectMessage, list[tuple[str, str]]]:
    values = {"name": DEMO_NAME, "product": "Sepatu Lari Pro"}
    msg = messages.text(DEMO_NUMBER, values, template=t, channel=ch, name=DEMO_NAME)
    return msg, [("body {{1}}", values["name"]), ("body {{2}}", values["product"])]


def _image(c: Qontak, t: Template, ch: Channel) -> tuple[DirectMessage, list[tuple[str, str]]]:
    uploaded = c.file_uploader.upload(sample_png(), filename="promo.png")
    msg = messages.image(DEMO_NUMBER, uploaded.url, template=t, channel=ch, name=DEMO_NAME)
    return msg, [("header IMAGE (uploaded)", uploaded.url)]


def _document(c: Qontak, t: Template, ch: Channel) -> tuple[DirectMessage, list[tuple[str, str]]]:
    uploaded = c.file_uploader.upload(sample_pdf(), filename="invoice.pdf")
    msg = messages.document(
        DEMO_NUMBER, uploaded.url, filename="INV-2025-001.pdf", template=t, channel=ch,
        name=DEMO_NAME,
    )  # fmt: skip
    return msg, [("header DOCUMENT (uploaded)", uploaded.url), ("filename", "INV-2025-001.pdf")]


def _video(c: Qontak, t: Template, ch: Channel) -> tuple[DirectMessage, list[tuple[str, str]]]:
    url = (t.header.example if t.header and t.header.example else None) or (
        "https://cdn.qontak.com/uploads/direct/videos/sandbox/product.mp4"
    )
    values = [DEMO_NAME, "Qontak", "Mekari"]
    msg = messages.video(DEMO_NUMBER, url, template=t, channel=ch, variables=values,
                         name=DEMO_NAME)  # fmt: skip
    return msg, [("header VIDEO", url)] + [(f"body {{{{{i}}}}}", v) for i, v in
                                           enumerate(values, 1)]  # fmt: skip


def _cta_url(c: Qontak, t: Template, ch: Channel) -> tuple[DirectMessage, list[tuple[str, str]]]:
    suffix = "fitur/personalisasi-report-sales"
    msg = messages.cta_url(DEMO_NUMBER, suffix, template=t, channel=ch, name=DEMO_NAME)
    return msg, [("button 0 URL suffix", suffix)]


def _cta_phone(c: Qontak, t: Template, ch: Channel) -> tuple[DirectMessage, list[tuple[str, str]]]:
    msg = messages.cta_phone(DEMO_NUMBER, template=t, channel=ch, name=DEMO_NAME)
    return msg, [("(nothing: the call button is static)", "")]


#: Every kind of template in the Node client's README, in the order the demo sends them.
KINDS: tuple[Kind, ...] = (
    Kind("OTP", "login_otp", _otp),
    Kind("text with variables", "order_update", _text),
    Kind("image", "promo_image", _image),
    Kind("document", "invoice_document", _document),
    Kind("video", "product_video", _video),
    Kind("CTA URL", "cta_url", _cta_url),
    Kind("CTA phone", "cta_phone", _cta_phone),
)


def _follow(
    client: Qontak, broadcast_id: str, label: str, timeout: float, interval: float, quiet: bool
) -> tuple[list[str], list[BroadcastLogEntry]]:
    """Poll the log until read/failed; returns the statuses seen (in order) and the rows."""
    seen: list[str] = []

    def note(rows: list[BroadcastLogEntry]) -> None:
        for r in rows:
            if r.status and (not seen or seen[-1] != r.status):
                seen.append(r.status)

    if quiet:
        rows = client.broadcasts.wait(broadcast_id, timeout=timeout, interval=interval,
                                      on_update=note)  # fmt: skip
        return seen, rows
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<22}"),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[status]}"),
        console=console(),
    )
    with progress:
        task = progress.add_task(label, total=3, status="pending")

        def update(rows: list[BroadcastLogEntry]) -> None:
            note(rows)
            status = rows[0].status if rows else "pending"
            progress.update(
                task, completed=_STEPS.get(status or "", 3), status=" → ".join(seen) or status
            )

        rows = client.broadcasts.wait(broadcast_id, timeout=timeout, interval=interval,
                                      on_update=update)  # fmt: skip
    return seen, rows


def run_demo(
    client: Qontak, *, quiet: bool, timeout: float, interval: float
) -> tuple[Channel, list[dict[str, Any]]]:
    """Walk every kind against ``client``; returns the channel and one result per kind."""
    out = console()
    say: Callable[[str], None] = (lambda _text: None) if quiet else (
        lambda text: out.print(text, highlight=False))  # fmt: skip
    channels = client.channels.list()
    say(f"[green]✔[/green] authorise: HMAC signature accepted ({client.base_url})")
    channel = channels[0]
    say(f"[green]✔[/green] find channel: {channel.id} · {channel.account_name} · "
        f"{channel.phone_number}")  # fmt: skip
    # One listing for every kind (not one search each): fewer requests under the rate limit.
    templates = list(client.templates.iter())
    results: list[dict[str, Any]] = []
    for n, kind in enumerate(KINDS, 1):
        if not quiet:
            out.print(Rule(f"{n}/{len(KINDS)} {kind.label}", style="cyan"))
        template = pick_template(templates, kind.template, "id")
        say(f"[green]✔[/green] find template: {template.name} ({template.language}) "
            f"{template.id} · {template.category}")  # fmt: skip
        message, mapping = kind.build(client, template, channel)
        if not quiet:
            table = Table.grid(padding=(0, 2))
            for slot, value in mapping:
                table.add_row(Text(slot, style="dim"), Text(value, style="bold cyan"))
            out.print("[green]✔[/green] map parameters:")
            out.print(table)
            out.print(bubble(template, message, title=f"preview: {kind.label}"))
        broadcast = client.broadcasts.send_direct(message)
        say(f"[green]✔[/green] send: broadcast id [bold]{broadcast.id}[/bold]")
        seen, rows = _follow(client, broadcast.id, kind.label, timeout, interval, quiet)
        final = rows[0].status if rows else "unknown"
        mark = "[green]✔[/green]" if final == "read" else "[red]✘[/red]"
        say(f"{mark} read the log: {' → '.join(seen) or 'no log rows'}")
        results.append(
            {
                "kind": kind.label,
                "template": template.to_dict(),
                "message": message.to_wire(),
                "preview": render_preview(template, message),
                "broadcast": broadcast.to_dict(),
                "statuses": seen,
                "log": [r.to_dict() for r in rows],
                "final_status": final,
            }
        )
    return channel, results


def _summary(results: list[dict[str, Any]]) -> Table:
    cols = [
        Column("Kind"),
        Column("Template", no_wrap=True, drop=1),
        Column("Broadcast id", no_wrap=True),
        Column("Status", no_wrap=True),
    ]
    for r in results:
        row = [r["kind"], r["template"]["name"], r["broadcast"]["id"],
               status_text(r["final_status"])]  # fmt: skip
        for col, value in zip(cols, row, strict=True):
            col.cells.append(value)
    return fit_table("Demo summary", cols)


def _serve_until_stopped() -> None:
    """Block until Ctrl-C or SIGTERM.

    The sandbox runs in a thread (uvicorn there installs no signal handlers), so without
    this a SIGTERM (``kill``, ``docker stop``, a process manager) would end the process
    without stopping the server and closing the sandbox; ``qontak sandbox`` gets the same
    from uvicorn itself. SIGTERM is turned into the KeyboardInterrupt that Ctrl-C raises.
    """
    # Only the main thread may set handlers (the app invoked from a worker thread skips it).
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if main else None
    try:
        with contextlib.suppress(KeyboardInterrupt):  # how serving is meant to end
            threading.Event().wait()
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


class _HideInjectedFaults(logging.Filter):
    """Drop the sandbox's log line for a fault it injected on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("sandbox fault:")


def run_demo_campaign(url: str, sandbox: Any, directory: Path, *, rate_limits: bool = True) -> Any:
    """The demo's last act: a small campaign (one bad row, one duplicate, one opt-out) sent
    with faults on, reconciled and reported (see :func:`qontak.campaigns.demo_campaign`)."""
    import anyio

    from qontak import AsyncQontak, campaigns
    from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, FaultConfig

    async def main() -> Any:
        # The faults are the point here: their one-line server log would only be noise.
        hide = _HideInjectedFaults()
        logging.getLogger("uvicorn.error").addFilter(hide)
        store = campaigns.SQLiteStore(directory / "campaigns.db")
        try:
            async with AsyncQontak(
                SANDBOX_CLIENT_ID,
                SANDBOX_CLIENT_SECRET,
                base_url=url,
                env_file=None,
                rate_limits=rate_limits,
            ) as client:
                template = await client.templates.find("order_update", language="id")
                channel = (await client.channels.list())[0]
                # Some answers lost after the message was stored, some sends refused before:
                # the newcomer sees unknowns appear and reconcile settle them (seeded).
                sandbox.set_faults(
                    FaultConfig(seed=11, lost_response=0.15, error_before=0.1, scope="send")
                )
                try:
                    # On loopback a lost answer's message is stored before the drop: half a
                    # second is enough for reconcile's absence to be proof.
                    return await campaigns.demo_campaign(
                        client,
                        store,
                        template=template,
                        channel=channel,
                        directory=directory,
                        settle_after=0.5,
                    )
                finally:
                    sandbox.set_faults(FaultConfig())
        finally:
            store.close()
            logging.getLogger("uvicorn.error").removeFilter(hide)

    return anyio.run(main)


def _campaign_table(outcome: Any) -> Table:
    table = Table(title="Campaign: 20 customers, one bad row, one duplicate, one opt-out")
    table.add_column("step")
    table.add_column("result")
    summary = outcome.checked.summary
    read = summary.rows + summary.invalid + summary.duplicates + summary.opted_out
    table.add_row(
        "check", f"{read} rows read: {summary.rows} to send, {summary.invalid} invalid (skipped)"
    )
    rejects = outcome.status.rejects
    table.add_row(
        "import",
        f"{rejects.get('duplicate', 0)} duplicate, {rejects.get('opted_out', 0)} opted out",
    )
    first = outcome.runs[0].counts
    table.add_row(
        "send (faults on)",
        f"{first.get('accepted', 0)} accepted, {first.get('unknown', 0)} outcome unknown, "
        f"{first.get('failed', 0)} failed, {first.get('pending', 0)} to retry",
    )
    for settled in outcome.reconciled:
        table.add_row(
            "reconcile",
            f"{settled.accepted} found accepted, {settled.absent} proven absent (sent again); "
            f"{settled.requests} requests",
        )
    counts = outcome.status.counts
    table.add_row("ledger", ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    delivery = outcome.status.delivery
    table.add_row("delivery", ", ".join(f"{k} {v}" for k, v in delivery.items() if v) or "-")
    table.add_row("report", str(outcome.report))
    return table


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""

    @app.command("demo")
    @command
    def demo(
        serve: Annotated[
            bool, typer.Option("--serve", help="Keep the sandbox running and print the inbox URL.")
        ] = False,
        port: Annotated[
            int,
            typer.Option("--port", min=0, max=65535, help="Sandbox port (default: a free one)."),
        ] = 0,
        delays: Annotated[
            str, typer.Option("--delays", help="Seconds to sent,delivered,read.")
        ] = "0.25,0.5,0.75",
        no_rate_limits: Annotated[
            bool,
            typer.Option(
                "--no-rate-limits",
                help="Switch rate limits off (the sandbox's and the demo's own): a quicker run.",
            ),
        ] = False,
    ) -> None:
        """Send every kind of template through an embedded sandbox and watch each reach read.

        JSON: {"base_url", "inbox", "channel", "results": [{"kind", "template", "message",
        "preview", "broadcast", "statuses", "log", "final_status"}]}.
        """
        from qontak.sandbox import (
            SANDBOX_CLIENT_ID,
            SANDBOX_CLIENT_SECRET,
            FaultConfig,
            RateLimitConfig,
            Sandbox,
        )

        st = state()
        limited = not no_rate_limits
        sandbox = Sandbox(
            delivery_delays=parse_delays(delays),
            faults=FaultConfig(),
            rate_limits=RateLimitConfig(enabled=limited),
        )
        out = console()
        started = time.monotonic()
        try:
            with sandbox.run_in_thread(port=port) as url:
                info = sandbox_info(url)
                if not st.json:
                    out.print(Rule("qontak demo: every template kind, end to end", style="bold"))
                    out.print(f"sandbox running at {info['base_url']}", highlight=False)
                with Qontak(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, base_url=url,
                            env_file=None, rate_limits=limited) as client:  # fmt: skip
                    channel, results = run_demo(client, quiet=st.json, timeout=30.0,
                                                interval=0.12)  # fmt: skip
                not_read = [r["kind"] for r in results if r["final_status"] != "read"]
                outcome = None
                if not not_read:  # the campaign builds on every kind having worked
                    directory = Path(tempfile.mkdtemp(prefix="qontak-demo-"))
                    outcome = run_demo_campaign(url, sandbox, directory, rate_limits=limited)
                if st.json:
                    print_json(
                        {
                            "base_url": info["base_url"],
                            "inbox": info["inbox"] if serve else None,
                            "channel": channel.to_dict(),
                            "results": results,
                            "campaign": outcome.to_dict() if outcome else None,
                        }
                    )
                else:
                    out.print(_summary(results))
                    if outcome is not None:
                        out.print(_campaign_table(outcome))
                    elapsed = time.monotonic() - started
                    if not_read:  # the green line is a promise that every kind was read
                        out.print(
                            f"[bold red]{len(results) - len(not_read)} of {len(results)} kinds "
                            f"read[/bold red] in {elapsed:.1f}s",
                            highlight=False,
                        )
                    else:
                        out.print(f"[bold green]{len(results)} kinds sent and read[/bold green] "
                                  f"in {elapsed:.1f}s", highlight=False)  # fmt: skip
                if not_read:
                    finals = {r["kind"]: r["final_status"] for r in results}
                    fail(
                        "not read: " + ", ".join(f"{k} ({finals[k]})" for k in not_read),
                        ExitCode.API_ERROR,
                    )
                if serve:
                    if not st.json:
                        out.print(info_panel(info, "Sandbox still running"))
                        out.print(f"Open the inbox: {info['inbox']}  (Ctrl-C to stop)",
                                  highlight=False)  # fmt: skip
                    _serve_until_stopped()
                elif not st.json:
                    out.print(
                        "Run [bold]qontak demo --serve[/bold] to see these messages in the web "
                        "inbox; repeat any with [bold]qontak send[/bold]."
                    )
        finally:
            sandbox.close()
