"""The global options (``--json``, ``--base-url``, ``--env``, ``--debug``) that every command
also accepts after its name (``qontak channels --json``).

They are declared once, in typer's own terms (:func:`_global_options`), turned into click
parameters by typer's public ``typer.main.get_command``, and added to each command by the
command classes of :mod:`._app`; :func:`take_global_options` moves their values into the
run's state before the command's function is called, so no function signature is rewritten.
This module imports no SDK, so building the commands (``qontak --help``) stays light.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import typer
import typer.main

from ._env import Env

__all__ = ["global_params", "take_global_options"]


def _global_options(
    global_json: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON (stable shapes).")
    ] = False,
    global_base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="API root (default: QONTAK_BASE_URL / --env)."),
    ] = None,
    global_env: Annotated[
        Env | None,
        typer.Option("--env", help="production, staging or sandbox (default: QONTAK_ENV)."),
    ] = None,
    global_debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and (redacted) request logs.")
    ] = False,
) -> None:
    """Never called: declares, in typer's own terms, the options every command accepts after
    its name (``qontak channels --json``). :func:`global_params` turns them into parameters."""


_GLOBAL_NAMES = ("global_json", "global_base_url", "global_env", "global_debug")


@functools.cache
def _global_param_objects() -> tuple[Any, ...]:
    holder = typer.Typer(add_completion=False)
    holder.command()(_global_options)
    return tuple(typer.main.get_command(holder).params)


def global_params() -> list[Any]:
    """The parameters of the options every command takes after its name, built by typer
    from :func:`_global_options` (``typer.main.get_command`` is typer's public bridge)."""
    return list(_global_param_objects())


def take_global_options(ctx: typer.Context) -> None:
    """Move the global options given after a command's name out of ``ctx.params`` (the
    command's function does not take them) into the run's state, and start the command."""
    values = {name: ctx.params.pop(name, None) for name in _GLOBAL_NAMES}
    # Imported here: building the commands (``--help``) needs no SDK, running one does.
    from ._state import enter_command

    env = values["global_env"]
    enter_command(
        ctx,
        json=values["global_json"],
        base_url=values["global_base_url"],
        env=env.value if isinstance(env, Env) else env,
        debug=values["global_debug"],
    )
