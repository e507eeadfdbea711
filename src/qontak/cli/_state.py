"""Per-invocation settings, the client factory, and the wrapper every command runs in.

Global options (``--json``, ``--base-url``, ``--env``, ``--debug``, ``--timeout``,
``--max-retries``) may be given before the command (``qontak --json channels``) or after it
(``qontak channels --json``); :func:`command` adds them to each command and turns every
error into one red line on stderr and a stable exit code (see :mod:`.exit_codes`).
"""

from __future__ import annotations

import functools
import inspect
import os
import traceback
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer._click.exceptions import ClickException

from .._client import Qontak
from .._config import ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_ENVIRONMENT, load_dotenv_values
from .._logging import setup_logging
from ..errors import ConfigurationError, QontakError
from ._output import error_line
from .exit_codes import ExitCode, exit_code_for

__all__ = ["Env", "State", "command", "fail", "state"]

F = TypeVar("F", bound=Callable[..., Any])


class Env(str, Enum):
    """Named environments for ``--env``."""

    production = "production"
    staging = "staging"
    sandbox = "sandbox"


@dataclass
class State:
    """What the global options say for this run."""

    json: bool = False
    base_url: str | None = None
    env: str | None = None
    debug: bool = False
    timeout: float | None = None
    max_retries: int | None = None

    def merge(self, **values: Any) -> None:
        """Take every option given after the command (``None``/``False`` leaves it as is)."""
        for key, value in values.items():
            if value is not None and value is not False:
                setattr(self, key, value)
        if self.debug:
            setup_logging("debug")

    @property
    def environment(self) -> str | None:
        """``--env``, else ``QONTAK_ENV`` (environment or ``.env``)."""
        return (
            self.env or os.environ.get(ENV_ENVIRONMENT) or load_dotenv_values().get(ENV_ENVIRONMENT)
        )

    def client(self) -> Qontak:
        """A client for this run. With ``--env sandbox`` and no credentials configured, the
        sandbox's built-in credentials are used."""
        kwargs: dict[str, Any] = {
            "base_url": self.base_url,
            "environment": self.environment,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }
        try:
            return Qontak(**kwargs)
        except ConfigurationError as exc:
            if self.environment != "sandbox" or not _missing_credentials(exc):
                raise
        from ..sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

        client_id = os.environ.get(ENV_CLIENT_ID) or load_dotenv_values().get(ENV_CLIENT_ID)
        secret = os.environ.get(ENV_CLIENT_SECRET) or load_dotenv_values().get(ENV_CLIENT_SECRET)
        if client_id and secret:  # pragma: no cover - Qontak() would have accepted them
            return Qontak(client_id, secret, **kwargs)
        return Qontak(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, **kwargs)


def _missing_credentials(exc: ConfigurationError) -> bool:
    text = str(exc)
    return text.startswith(("client_id: missing", "client_secret: missing"))


_current: list[State] = []


def state() -> State:
    """The :class:`State` of the running command."""
    if not _current:
        _current.append(State())
    return _current[-1]


def _root_state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    """Print one red error line and leave with ``code``."""
    error_line(message)
    raise typer.Exit(int(code))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, QontakError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


_CTX_PARAM = "qontak_cli_context"

# The options every command accepts after its name (defaults are None: "not given here").
_GLOBAL_PARAMS: list[tuple[str, Any, Any]] = [
    (
        "json_output",
        Annotated[
            bool, typer.Option("--json", help="Print machine-readable JSON (stable shapes).")
        ],
        False,
    ),
    (
        "base_url_opt",
        Annotated[
            str | None,
            typer.Option("--base-url", help="API root (default: QONTAK_BASE_URL / --env)."),
        ],
        None,
    ),
    (
        "env_opt",
        Annotated[
            Env | None,
            typer.Option("--env", help="production, staging or sandbox (default: QONTAK_ENV)."),
        ],
        None,
    ),
    (
        "debug_opt",
        Annotated[
            bool, typer.Option("--debug", help="Show tracebacks and (redacted) request logs.")
        ],
        False,
    ),
]


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The function's evaluated annotations, ``Annotated`` metadata kept.

    Python 3.10's ``get_type_hints`` wraps ``Optional[...]`` around the annotation of every
    parameter whose default is ``None``, which hides the ``Annotated[..., typer.Option(...)]``
    inside it (typer then sees no option names); unwrap that again.
    """
    hints = typing.get_type_hints(func, include_extras=True)
    for name, hint in hints.items():
        if typing.get_origin(hint) is typing.Union:
            inner = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(inner) == 1 and typing.get_origin(inner[0]) is typing.Annotated:
                hints[name] = inner[0]
    return hints


def command(func: F) -> F:
    """Wrap a command: accept the global options after the command name, run it, and turn
    any error into one line on stderr plus the documented exit code."""
    signature = inspect.signature(func)
    hints = _type_hints(func)
    # The command's own Context parameters are filled from ours (typer fills only one).
    own_ctx = [name for name, hint in hints.items() if hint is typer.Context]
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name not in own_ctx
    ]
    params.append(
        inspect.Parameter(_CTX_PARAM, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    )
    for name, annotation, default in _GLOBAL_PARAMS:
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.pop(_CTX_PARAM)
        for name in own_ctx:
            kwargs[name] = ctx
        st = _root_state(ctx)
        _current[:] = [st]
        env = kwargs.pop("env_opt")
        st.merge(
            json=kwargs.pop("json_output"),
            base_url=kwargs.pop("base_url_opt"),
            env=env.value if isinstance(env, Env) else env,
            debug=kwargs.pop("debug_opt"),
        )
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except KeyboardInterrupt:
            error_line("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            if st.debug:
                traceback.print_exc()
            error_line(_describe(exc))
            raise typer.Exit(int(exit_code_for(exc))) from None

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    annotations = {k: v for k, v in hints.items() if k not in own_ctx}
    annotations.update({name: annotation for name, annotation, _ in _GLOBAL_PARAMS})
    annotations[_CTX_PARAM] = typer.Context
    wrapper.__annotations__ = annotations
    return wrapper  # type: ignore[return-value]
