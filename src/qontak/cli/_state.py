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
from datetime import datetime, timezone
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer._click.exceptions import ClickException

from .._client import Qontak
from .._config import ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_ENVIRONMENT, load_dotenv_values
from .._logging import setup_logging
from ..errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    DeliveryUnknownError,
    PermissionDeniedError,
    QontakError,
    RateLimitError,
    ValidationError,
)
from ._env import Env
from ._output import error_json, error_line, start_output
from .exit_codes import ExitCode, exit_code_for

__all__ = [
    "AUTH_HINT",
    "Env",
    "State",
    "command",
    "describe_error",
    "error_details",
    "fail",
    "set_state",
    "state",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """What the global options say for this run."""

    json: bool = False
    base_url: str | None = None
    env: str | None = None
    debug: bool = False
    timeout: float | None = None
    max_retries: int | None = None
    rate_limits: str | None = None
    """``--rate-limits`` text; ``None`` leaves the client's default (``QONTAK_RATE_LIMITS``)."""
    tried_base_url: str | None = None
    """The API root of the last client made (named when the server cannot be reached)."""

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
        if self.rate_limits is not None:
            kwargs["rate_limits"] = self.rate_limits
        try:
            client = Qontak(**kwargs)
        except ConfigurationError as exc:
            if self.environment != "sandbox" or not _missing_credentials(exc):
                raise
            client = self._sandbox_client(kwargs)
        self.tried_base_url = client.base_url
        return client

    def _sandbox_client(self, kwargs: dict[str, Any]) -> Qontak:
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


def set_state(st: State) -> None:
    """Make ``st`` the :class:`State` of the running command."""
    _current[:] = [st]


def _root_state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def fail(message: str, code: ExitCode = ExitCode.USAGE, *, kind: str | None = None) -> NoReturn:
    """Print one red error line and leave with ``code``. Under ``--json`` the error also goes
    to stdout as ``{"error": {"type": kind, "message", "exit_code"}}`` (``kind`` defaults to
    ``UsageError`` for exit 2, else ``Error``)."""
    error_line(message)
    if state().json:
        name = kind or ("UsageError" if code == ExitCode.USAGE else "Error")
        error_json({"type": name, "message": message, "exit_code": int(code)})
    raise typer.Exit(int(code))


#: What to do about a rejected signature, said the same way by every command.
AUTH_HINT = f"check {ENV_CLIENT_ID}/{ENV_CLIENT_SECRET} and the clock; `qontak doctor` checks both"


def describe_error(exc: BaseException, st: State | None = None) -> str:
    """The one line the CLI prints for ``exc``: the SDK's message, with advice in CLI terms
    (flags and environment variables, never the SDK's keyword arguments)."""
    if not isinstance(exc, QontakError):
        return f"{type(exc).__name__}: {exc}"
    text = str(exc)
    if isinstance(exc, ConfigurationError):
        # The SDK says "pass client_secret= or set …"; a shell user has no keyword to pass.
        for field, name in (("client_id", ENV_CLIENT_ID), ("client_secret", ENV_CLIENT_SECRET)):
            if text.startswith(f"{field}: missing"):
                return f"{field}: missing; set {name} (environment or .env) or use --env sandbox"
        if text.startswith("timeout:"):
            return "--timeout must be a positive number of seconds"
        return text
    if isinstance(exc, APIConnectionError):
        where = exc.url or (st.tried_base_url if st is not None else None)
        return f"{text}; base URL tried: {where}" if where else text
    if isinstance(exc, PermissionDeniedError):
        return f"{text}; the application may lack the qontak-chat scope, or {AUTH_HINT}"
    if isinstance(exc, AuthenticationError):
        return f"{text}; {AUTH_HINT}"
    return text


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    # Whole seconds, rounded down: usable as `qontak broadcasts --since` without missing it.
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def error_details(exc: BaseException, message: str, code: ExitCode) -> dict[str, Any]:
    """The ``{"error": …}`` object ``--json`` prints for ``exc``: its class, the line shown
    on stderr and the exit code, plus what a script needs to act on it (never a secret).

    ``DeliveryUnknownError`` adds ``to_number``, ``message_template_id``, ``sent_at`` (UTC,
    ISO 8601), ``status_code`` and ``request_id``: enough to reconcile an exit 5 with
    ``qontak broadcasts --since SENT_AT`` before sending again.
    """
    details: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": message,
        "exit_code": int(code),
    }
    if isinstance(exc, DeliveryUnknownError):
        details.update(
            to_number=exc.to_number,
            message_template_id=exc.message_template_id,
            sent_at=_iso(exc.sent_at),
            status_code=exc.status_code,
            request_id=exc.request_id,
        )
    elif isinstance(exc, APIStatusError):
        details.update(status_code=exc.status_code, request_id=exc.request_id)
        if isinstance(exc, RateLimitError):
            details["retry_after"] = exc.retry_after
    elif isinstance(exc, ValidationError):
        details["field"] = exc.field
    return details


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
        start_output()
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
            message = describe_error(exc, st)
            code = exit_code_for(exc)
            error_line(message)
            if st.json:
                error_json(error_details(exc, message, code))
            raise typer.Exit(int(code)) from None

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    annotations = {k: v for k, v in hints.items() if k not in own_ctx}
    annotations.update({name: annotation for name, annotation, _ in _GLOBAL_PARAMS})
    annotations[_CTX_PARAM] = typer.Context
    wrapper.__annotations__ = annotations
    return wrapper  # type: ignore[return-value]
