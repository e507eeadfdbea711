"""Per-invocation settings, the client factory, and the wrapper every command runs in.

Global options (``--json``, ``--base-url``, ``--env``, ``--debug``, ``--timeout``,
``--max-retries``) may be given before the command (``qontak --json channels``) or after it
(``qontak channels --json``); :func:`command` adds them to each command and turns every
error into one red line on stderr and a stable exit code (see :mod:`.exit_codes`).
"""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import typer

from qontak import (
    AsyncQontak,
    BroadcastLogEntry,
    Qontak,
    RateLimiter,
    load_dotenv_values,
    setup_logging,
)
from qontak.errors import (
    APIConnectionError,
    APIResponseValidationError,
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
    "delivery_failure",
    "describe_error",
    "enter_command",
    "error_details",
    "fail",
    "missing_credentials",
    "set_state",
    "state",
]

F = TypeVar("F", bound=Callable[..., Any])


#: The environment variables the CLI names in its advice (the SDK reads the same ones).
ENV_CLIENT_ID = "QONTAK_CLIENT_ID"
ENV_CLIENT_SECRET = "QONTAK_CLIENT_SECRET"
ENV_ENVIRONMENT = "QONTAK_ENV"
ENV_BASE_URL = "QONTAK_BASE_URL"
_CREDENTIAL_VARIABLES = {"client_id": ENV_CLIENT_ID, "client_secret": ENV_CLIENT_SECRET}
#: The SDK's keyword arguments the CLI passes, and where the user gave them.
_SETTING_FLAGS = {
    "base_url": "--base-url",
    "environment": f"--env/{ENV_ENVIRONMENT}",
    "timeout": "--timeout",
    "max_retries": "--max-retries",
    "rate_limits": "--rate-limits",
}


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
    """``--rate-limits`` text (else the client reads ``QONTAK_RATE_LIMITS``)."""
    tried_base_url: str | None = None
    _limiters: dict[str | None, RateLimiter | None] = field(default_factory=dict, repr=False)
    """One rate budget per limits text for the whole run: a command that makes a sync and
    an async client (``campaign run``) must not give each its own budget."""
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

    def client(self, *, rate_limits: str | None = None) -> Qontak:
        """A client for this run. With ``--env sandbox`` and no credentials configured, the
        sandbox's built-in credentials are used. ``rate_limits`` (a command's own
        ``--rate-limits``) wins over the global option and ``QONTAK_RATE_LIMITS``."""
        client: Qontak = self._make(Qontak, rate_limits)
        return client

    def async_client(
        self, *, rate_limits: str | None = None, rate_limiter: RateLimiter | None = None
    ) -> AsyncQontak:
        """An :class:`~qontak.AsyncQontak` made as :meth:`client` makes its client
        (``rate_limiter``: e.g. a ``SharedRateLimiter`` for campaign workers)."""
        client: AsyncQontak = self._make(AsyncQontak, rate_limits, rate_limiter)
        return client

    def _make(
        self,
        cls: Callable[..., Any],
        rate_limits: str | None,
        rate_limiter: RateLimiter | None = None,
    ) -> Any:
        kwargs: dict[str, Any] = {
            "base_url": self.base_url,
            "environment": self.environment,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }
        text = rate_limits if rate_limits is not None else self.rate_limits
        if text is not None:
            kwargs["rate_limits"] = text
        if rate_limiter is None and self._limiters.get(text) is not None:
            rate_limiter = self._limiters[text]
        if rate_limiter is not None:
            kwargs["rate_limiter"] = rate_limiter
        try:
            client = cls(**kwargs)
        except ConfigurationError as exc:
            if self.environment != "sandbox" or not missing_credentials(exc):
                raise
            from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

            client = cls(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, **kwargs)
        self.tried_base_url = client.base_url
        self._limiters.setdefault(text, client.rate_limiter)
        return client


def missing_credentials(exc: ConfigurationError) -> bool:
    """Whether ``exc`` says a credential was not configured at all."""
    return exc.setting in _CREDENTIAL_VARIABLES and exc.reason == "missing"


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
        if missing_credentials(exc):
            # The SDK says "pass client_secret= or set …"; a shell user has no keyword to pass.
            name = _CREDENTIAL_VARIABLES[exc.setting]
            return f"{exc.setting}: missing; set {name} (environment or .env) or use --env sandbox"
        if exc.setting in _SETTING_FLAGS and exc.reason and exc.reason != text:
            # A keyword argument the CLI filled from a flag: named as the flag.
            return f"{_SETTING_FLAGS[exc.setting]}: {exc.reason}"
        return text
    if isinstance(exc, APIConnectionError):
        where = exc.url or (st.tried_base_url if st is not None else None)
        return f"{text}; base URL tried: {where}" if where else text
    if isinstance(exc, PermissionDeniedError):
        return f"{text}; the application may lack the qontak-chat scope, or {AUTH_HINT}"
    if isinstance(exc, AuthenticationError):
        return f"{text}; {AUTH_HINT}"
    if isinstance(exc, APIStatusError | APIResponseValidationError) and isinstance(exc.body, str):
        # Not JSON at all (the SDK quotes a page as its type and title): most often a wrong
        # base URL or a proxy in between, not Qontak.
        return f"{text}; not Qontak's JSON: check --base-url / {ENV_BASE_URL} (`qontak doctor`)"
    return text


def error_details(exc: BaseException, message: str, code: ExitCode) -> dict[str, Any]:
    """The ``{"error": …}`` object ``--json`` prints for ``exc``: its class, the line shown
    on stderr and the exit code, plus what a script needs to act on it (never a secret).

    An HTTP error (and a 2xx the API does not document) adds ``status_code`` and
    ``request_id``; a validation error ``field`` and ``code``; a configuration error
    ``setting``. ``DeliveryUnknownError`` adds ``to_number``, ``message_template_id``,
    ``sent_at`` (UTC, ISO 8601), ``status_code`` and ``request_id``: enough to reconcile an
    exit 5 with ``qontak broadcasts --since SENT_AT`` before sending again.
    """
    details: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": message,
        "exit_code": int(code),
    }
    if isinstance(exc, DeliveryUnknownError):
        # Imported here: only this error needs it, and most commands never load campaigns.
        from qontak.campaigns import iso_utc

        details.update(
            to_number=exc.to_number,
            message_template_id=exc.message_template_id,
            sent_at=iso_utc(exc.sent_at),
            status_code=exc.status_code,
            request_id=exc.request_id,
        )
    elif isinstance(exc, APIStatusError | APIResponseValidationError):
        details.update(status_code=exc.status_code, request_id=exc.request_id)
        if isinstance(exc, RateLimitError):
            details["retry_after"] = exc.retry_after
    elif isinstance(exc, ValidationError):
        details.update(field=exc.field, code=exc.code)
    elif isinstance(exc, ConfigurationError):
        details["setting"] = exc.setting or None
    return details


def delivery_failure(row: BroadcastLogEntry) -> dict[str, Any]:
    """The ``{"type", "message", "exit_code", …}`` error object of a failed delivery (what
    ``send --wait`` prints on stderr, and under ``--json`` in its document's ``"error"``)."""
    reason = row.whatsapp_error_message or "unknown error"
    if row.error_code is not None:
        reason = f"{row.error_code}: {reason}"
    return {
        "type": "DeliveryFailed",
        "message": f"delivery failed: {reason}",
        "exit_code": int(ExitCode.API_ERROR),
        "to_number": row.contact_phone_number,
        "error_code": row.error_code,
    }


def enter_command(ctx: typer.Context, **options: Any) -> None:
    """Start a command: make the run's :class:`State` (kept on the root context) current,
    merge the global ``options`` given after the command's name into it, and start the
    command's output."""
    st = _root_state(ctx)
    _current[:] = [st]
    start_output()
    st.merge(**options)


def command(func: F) -> F:
    """Wrap a command: run it, and turn any error into one line on stderr plus the
    documented exit code. (The global options after the command name are taken by the
    command class, see :func:`take_global_options`.)"""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        st = state()
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except KeyboardInterrupt:
            error_line("interrupted")
            raise typer.Exit(130) from None
        except Exception as caught:
            if st.debug:
                traceback.print_exc()
            exc = _only_error(caught)
            message = describe_error(exc, st)
            code = exit_code_for(exc)
            error_line(message)
            if st.json:
                error_json(error_details(exc, message, code))
            raise typer.Exit(int(code)) from None

    return wrapper  # type: ignore[return-value]


def _only_error(exc: Exception) -> Exception:
    """The one error inside a task group's exception group (the campaign runner's), so the
    user reads it and gets its exit code rather than "unhandled errors in a TaskGroup"."""
    inner = getattr(exc, "exceptions", None)
    while isinstance(inner, tuple) and len(inner) == 1 and isinstance(inner[0], Exception):
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return exc
