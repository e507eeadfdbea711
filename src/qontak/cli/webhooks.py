"""``qontak webhooks serve|register|get``: receive Qontak's status callbacks.

``serve`` runs :class:`qontak.webhooks.WebhookReceiver` with uvicorn; events go to a SQLite
file (``--db``, ``QONTAK_WEBHOOK_DB``, default ``./qontak-webhooks.db``; give the campaign
ledger's file to feed campaigns). The URL token comes from ``--token`` or
``QONTAK_WEBHOOK_TOKEN``; without one a fresh token is made and the URL to register is shown
once. Access logs are off: they would print the token.

JSON shapes: ``register`` and ``get`` print ``{"status_message": bool,
"receive_message_from_agent": bool, "receive_message_from_customer": bool, "urls": [...]}``
with tokens in URLs redacted.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from typing import Annotated, Any

import typer

from ..resources import WebhookSettings
from ..webhooks import SQLiteWebhookStore, WebhookReceiver, new_token
from ._output import console, print_json
from ._state import command, fail, state
from .exit_codes import ExitCode

__all__ = ["redact_url", "register"]

_TOKENISH = re.compile(r"(?<=/)[A-Za-z0-9_\-.~]{16,}(?=/?$)|(?<=[?&]token=)[^&#]+")


def redact_url(url: str) -> str:
    """``url`` with a token (a long last path segment or ``token=``) replaced by ``***``."""
    return _TOKENISH.sub("***", url)


def _settings_json(settings: WebhookSettings) -> dict[str, Any]:
    return {
        "status_message": settings.status_message,
        "receive_message_from_agent": settings.receive_message_from_agent,
        "receive_message_from_customer": settings.receive_message_from_customer,
        "urls": [redact_url(u) for u in settings.urls],
    }


def _show(settings: WebhookSettings) -> None:
    if state().json:
        print_json(_settings_json(settings))
        return
    out = console()
    on = [name for name, flag in _settings_json(settings).items() if flag is True]
    out.print(f"callbacks on: {', '.join(on) or 'none'}")
    for url in settings.urls:
        out.print(f"  → {redact_url(url)}")


def register(app: typer.Typer) -> None:
    """Add the ``webhooks`` group to ``app``."""
    group = typer.Typer(
        name="webhooks",
        help="Receive delivery statuses by webhook instead of polling logs.",
        no_args_is_help=True,
    )
    app.add_typer(group)

    @group.command("serve")
    @command
    def serve(
        host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535)] = 8787,
        db: Annotated[
            str | None,
            typer.Option("--db", help="SQLite file for events (QONTAK_WEBHOOK_DB)."),
        ] = None,
        token: Annotated[
            str | None,
            typer.Option("--token", help="URL secret (QONTAK_WEBHOOK_TOKEN); made if absent."),
        ] = None,
        allow_ip: Annotated[
            list[str] | None,
            typer.Option("--allow-ip", help="Only accept callbacks from this address/network."),
        ] = None,
    ) -> None:
        """Run the receiver: POST https://HOST/<token> (or ?token=) with Qontak's callbacks."""
        import uvicorn

        path = db or os.environ.get("QONTAK_WEBHOOK_DB") or "qontak-webhooks.db"
        secret = token or os.environ.get("QONTAK_WEBHOOK_TOKEN")
        made = secret is None
        secret = secret or new_token()
        try:
            receiver = WebhookReceiver(SQLiteWebhookStore(path), token=secret, allowed_ips=allow_ip)
        except ValueError as exc:
            fail(f"--allow-ip: {exc}")
        try:
            sock = socket.create_server((host, port), reuse_port=False)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", ExitCode.API_ERROR)
        bound = sock.getsockname()[1]
        err = console(stderr=True)
        shown = secret if made else "<your token>"
        err.print(f"receiving Qontak callbacks on http://{host}:{bound}/{shown} → {path}")
        if made:
            err.print("(a new token, shown once: set QONTAK_WEBHOOK_TOKEN to keep it)")
        config = uvicorn.Config(receiver, access_log=False, log_level="warning", lifespan="on")
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[sock])

    @group.command("register")
    @command
    def register_url(
        url: Annotated[
            str, typer.Argument(metavar="URL", help="Your receiver's public URL, token included.")
        ],
        status: Annotated[
            bool, typer.Option("--status/--no-status", help="Message status changes.")
        ] = True,
        from_customer: Annotated[
            bool, typer.Option("--from-customer", help="Also incoming customer messages.")
        ] = False,
        from_agent: Annotated[
            bool, typer.Option("--from-agent", help="Also messages sent by agents.")
        ] = False,
    ) -> None:
        """Tell Qontak where to POST status changes (PUT /message_interactions)."""
        with state().client() as client:
            settings = client.webhooks.register(
                url,
                status_message=status,
                receive_message_from_customer=from_customer,
                receive_message_from_agent=from_agent,
            )
        _show(settings)

    @group.command("get")
    @command
    def get() -> None:
        """Show the current webhook settings."""
        with state().client() as client:
            _show(client.webhooks.get())
