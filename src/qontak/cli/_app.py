"""The ``qontak`` typer app: global options, one-line usage errors, command registration.

Commands are loaded on demand: :data:`COMMANDS` names each command, the module that
registers it and the one-line summary ``qontak --help`` lists, so ``qontak --help`` and
``qontak channels`` import only what they use (the SDK, pydantic, the sandbox and most of
rich stay unloaded for ``--help``). A test checks the summaries against the commands.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.main import get_command_from_info, get_group_from_info

from ._env import Env
from ._globals import global_params, take_global_options
from .exit_codes import ExitCode

__all__ = [
    "COMMANDS",
    "LazyCommand",
    "QontakCommand",
    "QontakGroup",
    "QontakSubGroup",
    "app",
    "use_qontak_classes",
]


class LazyCommand(NamedTuple):
    """Where a command lives (``qontak.cli.<module>``, whose ``register(app)`` adds it) and
    the summary ``qontak --help`` shows for it (the first paragraph of its help)."""

    module: str
    summary: str


#: Every command, in the order ``qontak --help`` lists them.
COMMANDS: dict[str, LazyCommand] = {
    "channels": LazyCommand(
        "channels", "List the WhatsApp channels: id, phone number, account name, active."
    ),
    "send": LazyCommand(
        "send", "Send one template message (validated against its template first)."
    ),
    "preview": LazyCommand(
        "send",
        "Show the message as the recipient will see it (header, body with values, footer,\n"
        "buttons). Takes the same arguments as send; nothing is sent or uploaded.",
    ),
    "log": LazyCommand(
        "broadcasts",
        "Per-recipient delivery status of a broadcast, with WhatsApp's error text.",
    ),
    "broadcasts": LazyCommand(
        "broadcasts",
        "Recent broadcasts with their status counts (pending, sent, delivered, read, failed).",
    ),
    "sandbox": LazyCommand(
        "sandbox", "Run the sandbox: a local server that behaves like Qontak, with a web inbox."
    ),
    "doctor": LazyCommand(
        "doctor", "Check configuration, reachability, clock skew and that the credentials work."
    ),
    "demo": LazyCommand(
        "demo",
        "Send every kind of template through an embedded sandbox and watch each reach read.",
    ),
    "templates": LazyCommand(
        "templates", "WhatsApp templates: list them, or show one with its placeholders."
    ),
    "campaign": LazyCommand(
        "campaign",
        "Send one template to a file of customers: resumable, never twice, never lost.",
    ),
    "webhooks": LazyCommand(
        "webhooks", "Receive delivery statuses by webhook instead of polling logs."
    ),
    "optout": LazyCommand("optout", "The opt-out list: numbers no campaign will ever contact."),
}


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


class _TakesGlobalOptions:
    """Takes the global options after the command's name too, shows flags without a value
    in ``--help``, and shows help when run with no arguments (mixed into click classes)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_take_no_value([*super().get_params(ctx), *global_params()])  # type: ignore[misc]

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _help_when_no_arguments(self, ctx, args)
        return super().parse_args(ctx, args)  # type: ignore[misc, no-any-return]

    def invoke(self, ctx: Any) -> Any:
        take_global_options(ctx)
        return super().invoke(ctx)  # type: ignore[misc]


class QontakCommand(_TakesGlobalOptions, TyperCommand):
    """Every ``qontak`` command."""


class QontakSubGroup(_TakesGlobalOptions, TyperGroup):
    """A command group below the root (``templates``): the same as :class:`QontakCommand`."""


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
    """The root command group. Usage errors (unknown option, bad value, missing argument)
    become one red line on stderr and exit code 2 instead of a usage box (its callback
    declares the global options itself).

    Commands of :data:`COMMANDS` are imported when first resolved; while the group's own
    help is drawn they appear as their summaries only.
    """

    _listing = False

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_take_no_value(super().get_params(ctx))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _help_when_no_arguments(self, ctx, args)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        lazy = COMMANDS.get(cmd_name)
        if command is not None or lazy is None:
            return command
        if self._listing:
            return TyperCommand(cmd_name, help=lazy.summary, rich_markup_mode=self.rich_markup_mode)
        self.load(lazy.module)
        return self.commands.get(cmd_name)

    def load(self, module: str) -> None:
        """Import ``qontak.cli.<module>`` and add the commands it registers."""
        sub = typer.Typer()
        importlib.import_module(f"{__package__}.{module}").register(sub)
        use_qontak_classes(sub)
        for info in sub.registered_commands:
            command = get_command_from_info(
                info, pretty_exceptions_short=True, rich_markup_mode=self.rich_markup_mode
            )
            self.add_command(command)
        for group_info in sub.registered_groups:
            group = get_group_from_info(
                group_info,
                pretty_exceptions_short=True,
                suggest_commands=self.suggest_commands,
                rich_markup_mode=self.rich_markup_mode,
            )
            self.add_command(group)

    def load_all(self) -> None:
        """Import every command (documentation, tests)."""
        for module in dict.fromkeys(lazy.module for lazy in COMMANDS.values()):
            self.load(module)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # While the command list is drawn, unloaded commands show as their summaries.
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

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
            from ._output import error_json, error_line

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
            from ._output import error_line

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
    rate_limits: Annotated[
        str | None,
        typer.Option(
            "--rate-limits",
            help="Client-side limits, e.g. send=600/min,all=1000/min,burst=20/s, or off "
            "(default: QONTAK_RATE_LIMITS, else send=60/min,all=100/min,burst=10/s).",
        ),
    ] = None,
) -> None:
    """Global options; they may also be given after the command name."""
    from ._output import start_output
    from ._state import State, fail, set_state

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
    if rate_limits is not None:
        from qontak import ConfigurationError, parse_rate_limits

        try:
            parse_rate_limits(rate_limits, setting="--rate-limits")
        except ConfigurationError as exc:
            fail(str(exc))
        st.merge(rate_limits=rate_limits)
