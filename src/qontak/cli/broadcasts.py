"""``qontak log BROADCAST_ID [--watch]`` and ``qontak broadcasts [--since] [--until]``.

JSON shapes: ``log`` prints a list of :class:`qontak.BroadcastLogEntry` objects (the last
rows seen with ``--watch``); ``broadcasts`` prints a list of :class:`qontak.Broadcast`
objects, each with its ``message_status_count``.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated

import typer
from rich.live import Live

from qontak import BroadcastLogEntry

from ._output import broadcasts_table, console, log_table, paging_status, print_json
from ._state import command, delivery_failure, fail, state
from .exit_codes import ExitCode

__all__ = ["parse_when", "register", "stdout_is_terminal"]

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(value: str, flag: str, *, now: datetime | None = None) -> str:
    """``2025-03-01``, an ISO 8601 time, or a relative age (``30m``, ``12h``, ``7d``) → the
    string the API takes (a date, or a UTC ISO time)."""
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        moment = (now or datetime.now(timezone.utc)) - delta
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(
            f"{flag}: expected a date (2025-03-01), an ISO time or an age like 12h/7d, "
            f"got {value!r}"
        )
    return text


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal (asked directly: ``FORCE_COLOR`` does not make a pipe
    one)."""
    return sys.stdout.isatty()


def register(app: typer.Typer) -> None:
    """Add ``log`` and ``broadcasts`` to ``app``."""

    @app.command("log")
    @command
    def log(
        broadcast_id: Annotated[
            str, typer.Argument(metavar="BROADCAST_ID", help="The broadcast id a send returned.")
        ],
        watch: Annotated[
            bool, typer.Option("--watch", "-w", help="Refresh until every row is read or failed.")
        ] = False,
        interval: Annotated[
            float, typer.Option("--interval", help="Seconds between refreshes with --watch.")
        ] = 1.0,
        watch_timeout: Annotated[
            float, typer.Option("--watch-timeout", help="Seconds --watch runs at most.")
        ] = 300.0,
    ) -> None:
        """Per-recipient delivery status of a broadcast, with WhatsApp's error text.

        JSON: a list of BroadcastLogEntry objects.
        """
        st = state()
        # A live table is for a terminal; a pipe or a file gets the final table once (a
        # live display there would leave its last line without a newline).
        live_table = watch and not st.json and stdout_is_terminal()
        title = f"Broadcast {broadcast_id}"
        with st.client() as client:
            rows: list[BroadcastLogEntry] = client.broadcasts.log(broadcast_id)
            if watch:
                deadline = time.monotonic() + watch_timeout
                live = Live(log_table(rows, title=title), console=console(),
                            refresh_per_second=4) if live_table else None  # fmt: skip
                with live if live is not None else contextlib.nullcontext():
                    while not (rows and all(r.is_final for r in rows)):
                        if time.monotonic() >= deadline:
                            break
                        time.sleep(interval)
                        rows = client.broadcasts.log(broadcast_id)
                        if live is not None:
                            live.update(log_table(rows, title=title))
        if st.json:
            print_json([r.to_dict() for r in rows])
        elif not live_table:
            if rows:
                console().print(log_table(rows, title=title))
            else:
                console().print("No log rows yet.")
        failed = next((r for r in rows if r.status == "failed"), None)
        if watch and failed is not None:
            fail(delivery_failure(failed)["message"], ExitCode.API_ERROR)

    @app.command("broadcasts")
    @command
    def broadcasts(
        since: Annotated[
            str | None,
            typer.Option("--since", help="From this date/time, or an age: 30m, 12h, 7d."),
        ] = None,
        until: Annotated[
            str | None, typer.Option("--until", help="Up to this date/time (or an age).")
        ] = None,
        limit: Annotated[
            int, typer.Option("--limit", "-n", min=1, help="Show at most this many.")
        ] = 20,
    ) -> None:
        """Recent broadcasts with their status counts (pending, sent, delivered, read, failed).

        JSON: a list of Broadcast objects.
        """
        st = state()
        start = parse_when(since, "--since") if since else None
        end = parse_when(until, "--until") if until else None
        items = []
        with st.client() as client, paging_status("broadcasts", quiet=st.json) as tick:
            for b in client.broadcasts.iter(start_date=start, end_date=end):
                items.append(b)
                tick(len(items))
                if len(items) >= limit:
                    break
        if st.json:
            print_json([b.to_dict() for b in items])
            return
        if not items:
            console().print("No broadcasts in that period.")
            return
        console().print(broadcasts_table(items))
