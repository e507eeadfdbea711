"""``qontak sandbox``: run the local Qontak sandbox (prints its URL, credentials and inbox).

JSON shape (printed once, before serving)::

    {"url": "http://127.0.0.1:8765", "base_url": "http://127.0.0.1:8765/qontak/chat/v1",
     "inbox": "http://127.0.0.1:8765/", "client_id": "sandbox-client-id",
     "client_secret": "sandbox-client-secret", "faults": "<spec or off>",
     "faults_from": "--faults" | "QONTAK_SANDBOX_FAULTS" | null, "db": null,
     "remote": false, "admin_token": null}

``faults`` is what the sandbox really runs with, whether it came from ``--faults`` or from
the ``QONTAK_SANDBOX_FAULTS`` environment variable (``faults_from`` says which). ``url`` is
the address really bound (``http://0.0.0.0:8765`` when it is every interface).

**Beyond loopback.** A ``--host`` that is not a loopback address (``0.0.0.0``, a LAN address)
is refused unless ``--allow-remote`` is given (it also works with a loopback ``--host``, for a
port forwarded elsewhere): then the sandbox accepts only fresh random
credentials (or ``--client-id``/``--client-secret`` of your own, never the default pair),
its admin routes need a fresh random admin token, and both are printed once, here
(``remote: true``; the ``inbox`` link carries the token; a secret you gave yourself is never
printed: ``client_secret`` is null then).
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.panel import Panel
from rich.text import Text

from ._output import console, print_json
from ._state import command, fail, state
from .exit_codes import ExitCode

if TYPE_CHECKING:
    from ..sandbox import FaultConfig, Sandbox, SandboxConfig

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


def sandbox_info(
    url: str,
    faults: str | None = None,
    db: str | None = None,
    *,
    credentials: tuple[str, str | None] | None = None,
    admin_token: str | None = None,
) -> dict[str, Any]:
    """What a client needs to talk to a sandbox served at ``url`` (``credentials``: the
    pair it accepts, default the well-known one; a secret of None is not shown)."""
    from ..sandbox import API_PREFIX, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    client_id, secret = credentials or (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)
    return {
        "url": url,
        "base_url": url + API_PREFIX,
        "inbox": url + "/" + (f"?token={admin_token}" if admin_token else ""),
        "client_id": client_id,
        "client_secret": secret,
        "faults": faults or "off",
        "db": db,
        "remote": admin_token is not None,
        "admin_token": admin_token,
    }


def _short_faults(config: FaultConfig, source: str | None) -> str | None:
    """The settings that differ from "no faults" (the seed always, for replay), and where
    they came from: ``seed=1,rate_limit=0.5 (from QONTAK_SANDBOX_FAULTS)``."""
    if not config.enabled:
        return None
    from ..sandbox import FaultConfig

    defaults = FaultConfig().to_dict()
    items = [f"{k}={v}" for k, v in config.to_dict().items() if k == "seed" or v != defaults[k]]
    return ",".join(items) + (f" (from {source})" if source else "")


def info_panel(
    info: dict[str, Any], title: str = "Qontak sandbox", *, faults: str | None = None
) -> Panel:
    """The sandbox's address, credentials and inbox link, with the lines to copy
    (``faults``: the line to show for the faults, default ``info["faults"]``)."""
    secret = info.get("client_secret") or "<the secret you gave>"
    text = Text()
    if info.get("remote"):
        text.append("Remote   ", style="bold red")
        text.append("--allow-remote: admin token and fresh credentials, shown only now\n")
    text.append("API      ", style="bold")
    text.append(f"{info['base_url']}\n")
    text.append("Inbox    ", style="bold")
    text.append(f"{info['inbox']}\n", style="blue underline")
    text.append("Client   ", style="bold")
    text.append(f"{info['client_id']} / {secret}\n")
    if info.get("admin_token"):
        text.append("Admin    ", style="bold")
        text.append(f"Authorization: Bearer {info['admin_token']} (for /_sandbox/*)\n")
    text.append("Faults   ", style="bold")
    text.append(f"{faults or info['faults']}\n")
    text.append("\nIn another terminal:\n", style="dim")
    text.append(f"  export QONTAK_BASE_URL={info['url']}\n")
    text.append(f"  export QONTAK_CLIENT_ID={info['client_id']}\n")
    text.append(f"  export QONTAK_CLIENT_SECRET={secret}\n")
    text.append("  qontak templates", style="bold")
    return Panel(text, title=title, border_style="green", expand=False)


def _fault_config(spec: str | None) -> tuple[FaultConfig, str | None]:
    """The faults to run with and where they came from (``--faults``, the environment, or
    nowhere). Read here rather than left to the Sandbox, so a bad spec is reported against
    the setting that holds it, before anything is printed."""
    from ..sandbox import ENV_FAULTS, FaultConfig

    if spec is not None:
        try:
            return FaultConfig.parse(spec), "--faults"
        except ValueError as exc:
            fail(f"--faults: {exc}")
    try:
        config = FaultConfig.from_env()
    except ValueError as exc:
        fail(f"{ENV_FAULTS}: {exc}")
    return config, (ENV_FAULTS if config.enabled else None)


def _build_sandbox(config: SandboxConfig) -> Sandbox:
    """The Sandbox for ``config``, with a bad ``--db`` or ``--seed`` reported as one line
    (exit 2) instead of a traceback after the banner."""
    from ..sandbox import Sandbox

    for path in config.seed_files:
        if not Path(path).is_file():
            fail(f"--seed: no such file: {path}")
    try:
        return Sandbox(config)
    except sqlite3.Error as exc:  # e.g. "unable to open database file": the directory is missing
        fail(f"--db: cannot use {config.db} as the sandbox database ({exc})")
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
        if not config.seed_files:
            raise
        files = ", ".join(str(p) for p in config.seed_files)
        fail(f"--seed: cannot load {files} ({type(exc).__name__}: {exc})")


def _access(
    config: SandboxConfig,
    host: str,
    allow_remote: bool,
    client_id: str | None,
    client_secret: str | None,
) -> SandboxConfig:
    """``config`` with the credentials and admin token serving on ``host`` needs; a
    non-loopback host without ``--allow-remote`` is refused (exit 2) before anything runs.

    ``--allow-remote`` switches the protection on whatever the host, so a loopback port
    that is forwarded elsewhere (``ssh -R``, a container's published port) can have it too.
    """
    from ..sandbox import SANDBOX_CLIENT_SECRET, binds_loopback_only, remote_config

    own = (client_id, client_secret) if client_id and client_secret else None
    if own is None and (client_id is not None or client_secret is not None):
        fail("--client-id and --client-secret go together, and neither may be empty")
    if not allow_remote:
        if binds_loopback_only(host):
            return config if own is None else replace(config, credentials=own)
        fail(
            f"--host {host} is not a loopback address: the sandbox's admin routes have no "
            "authentication and its default credentials are public; add --allow-remote to "
            "serve other machines with fresh credentials and an admin token"
        )
    if own is not None and own[1] == SANDBOX_CLIENT_SECRET:
        fail("--client-secret: serving beyond loopback needs a secret of your own")
    return remote_config(config, own)


def _url_host(address: str) -> str:
    """An address as the host part of a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, here (not by uvicorn) so that a port in use is known
    before the banner says the sandbox is serving, and reported as one line with exit 1
    rather than uvicorn's exit 3 (which ``qontak`` uses for rejected credentials).

    It listens only once the banner is out (:func:`_serve`): whoever waits for the port to
    accept connections can count on the banner being printed by then.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        fail(f"--host: cannot resolve {host!r} ({exc.strerror})")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a restart may reuse a port whose old connections linger in
        # TIME_WAIT (a port someone still listens on stays refused).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", ExitCode.API_ERROR)
    return sock


def _serve(sandbox: Sandbox, sock: socket.socket, *, debug: bool) -> None:
    """Listen on the bound ``sock`` and serve ``sandbox`` with uvicorn until Ctrl-C."""
    import uvicorn

    from ..sandbox import uvicorn_config
    from ..sandbox._faults import quiet_dropped_connections

    # With the sandbox's limits: a header timeout and a connection cap shed slow clients.
    config = uvicorn_config(sandbox.app, log_level="debug" if debug else "warning")
    try:
        sock.listen(config.backlog)
    except OSError as exc:
        fail(f"cannot listen: {exc.strerror or exc}", ExitCode.API_ERROR)
    server = uvicorn.Server(config)
    quiet_dropped_connections()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    except SystemExit:  # uvicorn leaves with its own code 3 when the app fails to start
        fail("the sandbox failed to start (run with --debug for details)", ExitCode.API_ERROR)


def register(app: typer.Typer) -> None:
    """Add ``sandbox`` to ``app``."""

    @app.command("sandbox")
    @command
    def sandbox(
        host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
        port: Annotated[
            int,
            typer.Option("--port", "-p", min=0, max=65535, help="Port (0 picks a free one)."),
        ] = 8765,
        db: Annotated[
            str | None, typer.Option("--db", help="SQLite file to keep state (default: memory).")
        ] = None,
        faults: Annotated[
            str | None,
            typer.Option(
                "--faults",
                help="Fault spec, e.g. seed=1,rate_limit=0.1,lost_response=0.05 "
                "(default: QONTAK_SANDBOX_FAULTS). Faults hit every API request, template and "
                "channel look-ups included; add scope=send to hit only sends, e.g. "
                "'lost_response=1,scope=send' makes every qontak send end in exit 5; "
                "accept_late=1 stores each request, then answers after accept_late_seconds "
                "(default 35, past the client's 30 s timeout).",
            ),
        ] = None,
        delays: Annotated[
            str | None,
            typer.Option("--delays", help="Seconds to sent,delivered,read (default 0.5,1,2)."),
        ] = None,
        no_rate_limits: Annotated[
            bool, typer.Option("--no-rate-limits", help="Switch the sandbox's rate limits off.")
        ] = False,
        rate_limits: Annotated[
            str | None,
            typer.Option(
                "--rate-limits",
                help="The sandbox's own limits, e.g. send=600/min,all=1000/min,burst=20/s "
                "(default send=60/min,all=100/min,burst=10/s), or off.",
            ),
        ] = None,
        seed: Annotated[
            list[str] | None,
            typer.Option("--seed", help="Extra YAML/JSON seed file (repeatable)."),
        ] = None,
        webhook_url: Annotated[
            str | None, typer.Option("--webhook-url", help="POST status changes here.")
        ] = None,
        allow_remote: Annotated[
            bool,
            typer.Option(
                "--allow-remote",
                help="Allow a --host other machines can reach; the sandbox then takes fresh "
                "random credentials and an admin token, printed once.",
            ),
        ] = False,
        client_id: Annotated[
            str | None,
            typer.Option("--client-id", help="Accept this client id instead of the default."),
        ] = None,
        client_secret: Annotated[
            str | None,
            typer.Option(
                "--client-secret",
                envvar="QONTAK_SANDBOX_CLIENT_SECRET",
                show_envvar=False,
                help="Secret for --client-id (or QONTAK_SANDBOX_CLIENT_SECRET); never printed.",
            ),
        ] = None,
    ) -> None:
        """Run the sandbox: a local server that behaves like Qontak, with a web inbox.

        Prints its URL, credentials and inbox link, then serves until Ctrl-C.
        JSON: {"url", "base_url", "inbox", "client_id", "client_secret", "faults",
        "faults_from", "db", "remote", "admin_token"}. Loopback only unless --allow-remote.
        """
        from ..sandbox import RateLimitConfig, SandboxConfig, binds_loopback_only

        st = state()
        fault_config, fault_source = _fault_config(faults)
        limits = RateLimitConfig(enabled=not no_rate_limits)
        if rate_limits is not None:
            if no_rate_limits:
                fail("use either --rate-limits or --no-rate-limits, not both")
            try:
                limits = RateLimitConfig.parse(rate_limits)
            except ValueError as exc:
                fail(f"--rate-limits: {str(exc).removeprefix('rate limits: ')}")
        config = SandboxConfig(
            db=db,
            faults=fault_config,
            seed_files=tuple(seed or ()),
            rate_limits=limits,
            webhook_url=webhook_url,
        )
        if delays:
            config = replace(config, delivery_delays=parse_delays(delays))
        config = _access(config, host, allow_remote, client_id, client_secret)
        # Everything that can fail does so before the banner: database and seeds, then the
        # socket. The banner is only printed once the sandbox can really serve.
        sb = _build_sandbox(config)
        sb.check_bind(host)  # _access refused what it would refuse; this notes the name
        try:
            with _bind(host, port) as sock:
                address, bound = sock.getsockname()[:2]
                # The address really bound (0.0.0.0 included), never a friendlier name.
                shown = _url_host(host if binds_loopback_only(host) else str(address))
                effective = sb.faults.config  # what the sandbox will really do
                pair: tuple[str, str | None] | None = config.credentials
                if pair is not None and client_secret is not None:
                    pair = (pair[0], None)  # a secret the user gave is never printed
                info = sandbox_info(
                    f"http://{shown}:{bound}",
                    effective.describe() if effective.enabled else None,
                    db,
                    credentials=pair,
                    admin_token=config.admin_token,
                )
                info["faults_from"] = fault_source
                if st.json:
                    print_json(info)
                else:
                    console().print(info_panel(info, faults=_short_faults(effective, fault_source)))
                    console().print("Serving; press Ctrl-C to stop.", style="dim")
                _serve(sb, sock, debug=st.debug)
        finally:
            sb.close()
