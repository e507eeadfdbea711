"""The ``qontak`` typer app: global options, one-line usage errors, command registration."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from ._globals import global_params, take_global_options
from ._output import error_json, error_line, start_output
from ._state import Env, State, fail, set_state
from .exit_codes import ExitCode

__all__ = ["QontakCommand", "QontakGroup", "QontakSubGroup", "app", "use_qontak_classes"]


def _flags_take_no_value(params: list[Any]) -> list[Any]:
    """Give boolean flags an empty metavar, so help shows ``--json`` rather than
    ``--json <bool>``.

    typer's rich help prints ``<type>`` for every option, flags included (its plain-text
    help skips flags; the rich path does not), which reads as if ``--json`` took a value.
    A flag never parses a value, so its metavar appears nowhere else.
    """
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


def _help_when_no_arguments(command: Any, ctx: Any, args: list[str]) -> None:
    """``no_args_is_help``: print the help and leave with exit 2. Done before click would
    raise its own no-arguments error, which is not part of typer's public API and would
    otherwise reach the one-line error handler with the whole help as its message."""
    if not args and command.no_args_is_help and not ctx.resilient_parsing:
        text = ctx.get_help()  # rich help prints itself and returns ""
        if text:
            typer.echo(text)
        raise typer.Exit(int(ExitCode.USAGE))


class QontakCommand(TyperCommand):
    """Every ``qontak`` command: takes the global options after its name too, and shows
    flags without a value in ``--help``."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_take_no_value([*super().get_params(ctx), *global_params()])

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _help_when_no_arguments(self, ctx, args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        take_global_options(ctx)
        return super().invoke(ctx)


class QontakSubGroup(TyperGroup):
    """A command group below the root (``templates``): the same as :class:`QontakCommand`."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_take_no_value([*super().get_params(ctx), *global_params()])

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _help_when_no_arguments(self, ctx, args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        take_global_options(ctx)
        return super().invoke(ctx)


def use_qontak_classes(typer_app: typer.Typer) -> None:
    """Build every command registered on ``typer_app`` (and its groups) as a
    :class:`QontakCommand`, unless it chose a class of its own (typer fills in
    ``TyperCommand`` when none was given)."""
    for info in typer_app.registered_commands:
        if info.cls is None or info.cls is TyperCommand:
            info.cls = QontakCommand
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            use_qontak_classes(group.typer_instance)


class QontakGroup(TyperGroup):
    """The root command group (its callback declares the global options itself). Usage
    errors (unknown option, bad value, missing argument) become one red line on stderr and
    exit code 2 instead of a usage box."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_take_no_value(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _help_when_no_arguments(self, ctx, args)
        return super().parse_args(ctx, args)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args=args,
                prog_name=prog_name or "qontak",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except typer.TyperException as exc:
            if exc.exit_code != int(ExitCode.USAGE):  # click's other errors (a file error…)
                error_line(exc.format_message())
                sys.exit(exc.exit_code)
            # A usage error: it names the command it happened in (click's documented ctx).
            usage_ctx = getattr(exc, "ctx", None)
            hint = f" (see '{usage_ctx.command_path} --help')" if usage_ctx is not None else ""
            error_line(exc.format_message() + hint)
            argv = list(args) if args is not None else sys.argv[1:]
            if "--json" in argv[: argv.index("--") if "--" in argv else None]:
                # The command never ran, but a script asked for JSON: give it the error too.
                error_json(
                    {
                        "type": "UsageError",
                        "message": exc.format_message(),
                        "exit_code": int(ExitCode.USAGE),
                    }
                )
            sys.exit(int(ExitCode.USAGE))
        except typer.Abort:
            error_line("aborted")
            sys.exit(130)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    name="qontak",
    cls=QontakGroup,
    help=(
        "Send WhatsApp template messages through Qontak, preview them, follow their delivery, "
        "and run a local sandbox.\n\n"
        "Credentials: QONTAK_CLIENT_ID / QONTAK_CLIENT_SECRET (environment or .env). "
        "Exit codes: 0 ok, 1 API error, 2 usage/validation, 3 auth, 4 rate limited, "
        "5 outcome unknown."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root(
    ctx: typer.Context,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON (stable shapes).")
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="API root (default: QONTAK_BASE_URL, else --env)."),
    ] = None,
    env: Annotated[
        Env | None,
        typer.Option(
            "--env",
            help="production, staging or sandbox (default: QONTAK_ENV, else production). "
            "With sandbox and no credentials set, the sandbox's own are used.",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and (redacted) request logs.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds per request (default 30).")
    ] = None,
    max_retries: Annotated[
        int | None,
        typer.Option("--max-retries", help="Extra attempts for retryable failures (default 2)."),
    ] = None,
) -> None:
    """Global options; they may also be given after the command name."""
    st = ctx.obj if isinstance(ctx.obj, State) else State()
    st.merge(
        json=json_output,
        base_url=base_url,
        env=env.value if env is not None else None,
        debug=debug,
        timeout=timeout,
        max_retries=max_retries,
    )
    ctx.obj = st
    set_state(st)
    start_output()
    # Checked here, in the CLI's words: the SDK would say "expected seconds > 0 or an
    # httpx.Timeout", and would quietly treat a negative retry count as none.
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        fail(f"--timeout must be a positive number of seconds, got {timeout:g}")
    if max_retries is not None and max_retries < 0:
        fail(f"--max-retries must be 0 or more, got {max_retries}")
