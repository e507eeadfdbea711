"""``qontak channels``: the WhatsApp channels of the account.

JSON shape: a list of :class:`qontak.Channel` objects (``Channel.to_dict()``)::

    [{"id": "...", "target_channel": "wa_cloud", "settings": {...}, "is_active": true, ...}]
"""

from __future__ import annotations

from typing import Annotated

import typer

from qontak import Channel, normalize_phone

from ._output import channels_table, console, print_json
from ._state import command, fail, state
from .exit_codes import ExitCode

__all__ = ["pick_channel", "register"]


def pick_channel(channels: list[Channel], ref: str | None) -> Channel:
    """The channel ``ref`` names (an id or its phone number), or the only one there is.

    Raises ``typer.Exit(2)`` (after one error line) when ``ref`` matches nothing, or when it
    is omitted and there is not exactly one channel.
    """
    if ref is None:
        if len(channels) == 1:
            return channels[0]
        if not channels:
            fail("no WhatsApp channel found for these credentials", ExitCode.USAGE)
        ids = ", ".join(c.id for c in channels)
        fail(f"{len(channels)} channels exist; choose one with --channel ({ids})")
    for ch in channels:
        if ch.id == ref:
            return ch
    try:
        wanted = normalize_phone(ref)
    except ValueError:
        wanted = None
    for ch in channels:
        if wanted and ch.phone_number and normalize_phone(ch.phone_number) == wanted:
            return ch
    fail(f"--channel: no channel with id or phone number {ref!r}")


def register(app: typer.Typer) -> None:
    """Add ``channels`` to ``app``."""

    @app.command("channels")
    @command
    def channels(
        target_channel: Annotated[
            str,
            typer.Option("--target-channel", help="Channel type to list ('all' for every one)."),
        ] = "wa_cloud",
    ) -> None:
        """List the WhatsApp channels: id, phone number, account name, active.

        JSON: a list of Channel objects.
        """
        st = state()
        with st.client() as client:
            page = client.channels.list(None if target_channel == "all" else target_channel)
        if st.json:
            print_json([c.to_dict() for c in page])
            return
        if not len(page):
            console().print("No channels.")
            return
        console().print(channels_table(page))
