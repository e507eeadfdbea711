"""``qontak sandbox``: run the local Qontak sandbox (prints its URL, credentials and inbox).

JSON shape (printed once, before serving)::

    {"url": "http://127.0.0.1:8765", "base_url": "http://127.0.0.1:8765/qontak/chat/v1",
     "inbox": "http://127.0.0.1:8765/", "client_id": "sandbox-client-id",
     "client_secret": "sandbox-client-secret", "faults": "<spec or off>", "db": null}
"""

from __future__ import annotations

import contextlib
import socket
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.text import Text

from ._output import console, print_json
from ._state import command, fail, state

__all__ = ["free_port", "parse_delays", "register", "sandbox_info"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def parse_delays(text: str) -> tuple[float, float, float]:
    """``"0.5,1,2"`` → seconds after which a message is sent, delivered and read."""
    try:
        values = tuple(float(x) for x in text.replace(" ", "").split(","))
    except ValueError:
        fail(f"--delays: expected three numbers like 0.5,1,2, got {text!r}")
    if len(values) != 3 or any(v < 0 for v in values) or list(values) != sorted(values):
        fail("--delays: three non-decreasing, non-negative seconds (sent,delivered,read)")
    return (values[0], values[1], values[2])


def sandbox_info(url: str, faults: str | None = None, db: str | None = None) -> dict[str, Any]:
    """What a client needs to talk to a sandbox served at ``url``."""
    from ..sandbox import API_PREFIX, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    return {
        "url": url,
        "base_url": url + API_PREFIX,
        "inbox": url + "/",
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
        "faults": faults or "off",
        "db": db,
    }


def info_panel(info: dict[str, Any], title: str = "Qontak sandbox") -> Panel:
    """The sandbox's address, credentials and inbox link, with the lines to copy."""
    text = Text()
    text.append("API      ", style="bold")
    text.append(f"{info['base_url']}\n")
    text.append("Inbox    ", style="bold")
    text.append(f"{info['inbox']}\n", style="blue underline")
    text.append("Client   ", style="bold")
    text.append(f"{info['client_id']} / {info['client_secret']}\n")
    text.append("Faults   ", style="bold")
    text.append(f"{info['faults']}\n")
    text.append("\nIn another terminal:\n", style="dim")
    text.append(f"  export QONTAK_BASE_URL={info['url']}\n")
    text.append(f"  export QONTAK_CLIENT_ID={info['client_id']}\n")
    text.append(f"  export QONTAK_CLIENT_SECRET={info['client_secret']}\n")
    text.append("  qontak templates", style="bold")
    return Panel(text, title=title, border_style="green", expand=False)


def register(app: typer.Typer) -> None:
    """Add ``sandbox`` to ``app``."""

    @app.command("sandbox")
    @command
    def sandbox(
        host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
        port: Annotated[
            int, typer.Option("--port", "-p", help="Port (0 picks a free one).")
        ] = 8765,
        db: Annotated[
            str | None, typer.Option("--db", help="SQLite file to keep state (default: memory).")
        ] = None,
        faults: Annotated[
            str | None,
            typer.Option(
                "--faults",
                help="Fault spec, e.g. seed=1,error_before=0.1,rate_limit=0.1,lost_response=0.05",
            ),
        ] = None,
        delays: Annotated[
            str | None,
            typer.Option("--delays", help="Seconds to sent,delivered,read (default 0.5,1,2)."),
        ] = None,
        no_rate_limits: Annotated[
            bool, typer.Option("--no-rate-limits", help="Switch the sandbox's rate limits off.")
        ] = False,
        seed: Annotated[
            list[str] | None,
            typer.Option("--seed", help="Extra YAML/JSON seed file (repeatable)."),
        ] = None,
        webhook_url: Annotated[
            str | None, typer.Option("--webhook-url", help="POST status changes here.")
        ] = None,
    ) -> None:
        """Run the sandbox: a local server that behaves like Qontak, with a web inbox.

        Prints its URL, credentials and inbox link, then serves until Ctrl-C.
        JSON: {"url", "base_url", "inbox", "client_id", "client_secret", "faults", "db"}.
        """
        from ..sandbox import FaultConfig, RateLimitConfig, serve

        st = state()
        try:
            fault_config = FaultConfig.parse(faults) if faults else None
        except ValueError as exc:
            fail(f"--faults: {exc}")
        delivery = parse_delays(delays) if delays else None
        if port == 0:
            port = free_port(host)
        shown = "localhost" if host in ("0.0.0.0", "::") else host
        info = sandbox_info(
            f"http://{shown}:{port}", fault_config.describe() if fault_config else None, db
        )
        if st.json:
            print_json(info)
        else:
            console().print(info_panel(info))
            console().print("Serving; press Ctrl-C to stop.", style="dim")
        with contextlib.suppress(KeyboardInterrupt):
            serve(
                host,
                port,
                db,
                fault_config,
                seed_files=tuple(seed or ()),
                delivery_delays=delivery,
                rate_limits=RateLimitConfig(enabled=not no_rate_limits),
                webhook_url=webhook_url,
                log_level="debug" if st.debug else "warning",
            )
