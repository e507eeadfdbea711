"""Credentials and settings: from arguments, then environment variables, then a ``.env`` file.

Precedence is argument > environment > ``.env``. Secrets are held in :class:`Secret`, whose
``repr``/``str`` never reveal the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from ._checks import check_text, check_url, type_name
from .errors import ConfigurationError

__all__ = [
    "API_PREFIX",
    "ENVIRONMENTS",
    "Secret",
    "Settings",
    "load_dotenv_values",
    "resolve_base_url",
    "resolve_settings",
]

#: Every Qontak chat endpoint lives under this prefix on the Mekari gateway.
API_PREFIX = "/qontak/chat/v1"

#: Named environments. ``sandbox`` is the local server started by ``qontak sandbox``.
ENVIRONMENTS: Mapping[str, str] = {
    "production": "https://api.mekari.com",
    "staging": "https://api.mekari.io",
    "sandbox": "http://127.0.0.1:8765",
}

ENV_CLIENT_ID = "QONTAK_CLIENT_ID"
ENV_CLIENT_SECRET = "QONTAK_CLIENT_SECRET"
ENV_BASE_URL = "QONTAK_BASE_URL"
ENV_ENVIRONMENT = "QONTAK_ENV"


def _refuse_pickle() -> NoReturn:
    raise ConfigurationError(
        "client_secret: a Secret cannot be pickled; pass credentials to other processes "
        "through the QONTAK_CLIENT_ID/QONTAK_CLIENT_SECRET environment",
        setting="client_secret",
        reason="cannot be pickled",
    )


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs, tracebacks or pickles.

    Pickling is refused (``ConfigurationError``) rather than done with a redacted value: a
    redacted copy would unpickle into a client that fails later with a puzzling 401, while a
    refusal says at once that credentials do not travel in pickles (give a worker process the
    ``QONTAK_*`` environment instead). ``copy``/``deepcopy`` return the same object.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        _refuse_pickle()

    def __reduce__(self) -> NoReturn:
        _refuse_pickle()

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: object) -> Secret:
        return self

    def get(self) -> str:
        """The secret value itself. Only the signer should need it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def load_dotenv_values(path: str | os.PathLike[str] = ".env") -> dict[str, str]:
    """Parse a ``.env`` file (``KEY=value`` lines, ``#`` comments, optional quotes, ``export``).

    A missing file yields ``{}``; a file that is not UTF-8 text is a ``ConfigurationError``
    naming ``env_file``. Values are never logged.
    """
    if not isinstance(path, str | os.PathLike):
        raise ConfigurationError(
            f"env_file: expected a path or None, got {type_name(path)}",
            setting="env_file",
            reason="expected a path or None",
        )
    check_text("env_file", os.fspath(path), max_len=4096, multiline=False, setting=True)
    try:
        p = Path(path)
        if not p.is_file():
            return {}
        text = p.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: NUL in the path, or not UTF-8
        reason = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "cannot be read"
        raise ConfigurationError(
            f"env_file: {reason} ({type(exc).__name__})", setting="env_file", reason=reason
        ) from None
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def resolve_base_url(
    base_url: str | None = None,
    environment: str | None = None,
    *,
    setting: str = "base_url",
    environment_setting: str = "environment",
) -> str:
    """The API root including the ``/qontak/chat/v1`` prefix, without a trailing slash.

    A bare host (``https://api.mekari.com``) gets the prefix appended; a URL that already
    has a path is taken as it is. ``setting`` / ``environment_setting`` name where the
    values came from (``QONTAK_BASE_URL``…) in a :class:`ConfigurationError`; a URL with a
    user name or password is refused and never repeated.

    >>> resolve_base_url(environment="staging")
    'https://api.mekari.io/qontak/chat/v1'
    """
    if base_url is None:
        env = environment or "production"
        check_text(environment_setting, env, max_len=64, multiline=False, setting=True)
        if env not in ENVIRONMENTS:
            names = ", ".join(ENVIRONMENTS)
            raise ConfigurationError(
                f"{environment_setting}: unknown environment {env!r} (use {names})",
                setting=environment_setting,
                reason=f"unknown environment (use {names})",
            )
        base_url = ENVIRONMENTS[env]
    parts = urlsplit(check_url(setting, base_url, setting=True))
    path = parts.path.rstrip("/")
    if not path:
        path = API_PREFIX
    return f"{parts.scheme}://{parts.netloc}{path}"


@dataclass(frozen=True)
class Settings:
    """Resolved connection settings. ``repr`` is safe to log; pickling is refused (the
    secret)."""

    client_id: str
    client_secret: Secret = field(repr=True)
    base_url: str


#: The client id goes in the ``Authorization`` header as ``username="…"``: printable ASCII
#: without quotes or backslashes, or the header breaks (or httpx refuses it).
_CLIENT_ID = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


def _check_client_id(value: str, setting: str) -> str:
    check_text(setting, value, max_len=256, multiline=False, setting=True)
    if not _CLIENT_ID.match(value):
        raise ConfigurationError(
            f"{setting}: must be printable ASCII without spaces, quotes or backslashes",
            setting=setting,
            reason="must be printable ASCII without spaces, quotes or backslashes",
        )
    return value


def resolve_settings(
    client_id: str | None = None,
    client_secret: str | None = None,
    *,
    base_url: str | None = None,
    environment: str | None = None,
    env: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | None = ".env",
) -> Settings:
    """Resolve credentials and the base URL from arguments, the environment and ``.env``.

    Raises :class:`ConfigurationError` naming the missing or invalid argument or variable
    (``setting``), never its value.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    dotenv = load_dotenv_values(env_file) if env_file is not None else {}

    def pick(arg: object, arg_name: str, name: str) -> tuple[str | None, str]:
        """The value and where it came from (the argument or the variable's name)."""
        if arg is not None:
            # Arguments are checked for type here; an empty one falls through as missing.
            return check_text(arg_name, arg, max_len=4096, setting=True) or None, arg_name
        value = environ.get(name)
        if value is None:
            value = dotenv.get(name)
        return value or None, name

    cid, cid_from = pick(client_id, "client_id", ENV_CLIENT_ID)
    secret, secret_from = pick(client_secret, "client_secret", ENV_CLIENT_SECRET)
    if not cid:
        raise ConfigurationError(
            f"client_id: missing; pass client_id= or set {ENV_CLIENT_ID} (environment or .env)",
            setting="client_id",
            reason="missing",
        )
    if not secret:
        raise ConfigurationError(
            f"client_secret: missing; pass client_secret= or set {ENV_CLIENT_SECRET} "
            "(environment or .env)",
            setting="client_secret",
            reason="missing",
        )
    _check_client_id(cid, cid_from)
    # The secret is only hashed, so any text will do, but it must encode as UTF-8.
    check_text(secret_from, secret, max_len=4096, multiline=False, setting=True)
    url, url_from = pick(base_url, "base_url", ENV_BASE_URL)
    # An empty environment argument means "not given", as before: QONTAK_ENV still applies.
    env_name, env_from = pick(
        None if environment == "" else environment, "environment", ENV_ENVIRONMENT
    )
    resolved = resolve_base_url(url, env_name, setting=url_from, environment_setting=env_from)
    return Settings(client_id=cid, client_secret=Secret(secret), base_url=resolved)


#: Client-side rate limits as text (``send=600/min,all=1000/min,burst=20/s`` or ``off``).
ENV_RATE_LIMITS = "QONTAK_RATE_LIMITS"


def resolve_rate_limits_text(
    env: Mapping[str, str] | None = None, env_file: str | os.PathLike[str] | None = ".env"
) -> str | None:
    """``QONTAK_RATE_LIMITS`` from the environment, else ``.env``; ``None`` when unset."""
    environ: Mapping[str, str] = os.environ if env is None else env
    value = environ.get(ENV_RATE_LIMITS)
    if value is None and env_file is not None:
        value = load_dotenv_values(env_file).get(ENV_RATE_LIMITS)
    return value or None


#: Where the rate budget is kept: ``sqlite:///path`` or ``postgresql://…`` (``memory``: in
#: this process only, the default). Read by the clients; see ``SharedRateLimiter``.
ENV_RATE_LIMIT_STORE = "QONTAK_RATE_LIMIT_STORE"


def resolve_rate_limit_store(
    env: Mapping[str, str] | None = None, env_file: str | os.PathLike[str] | None = ".env"
) -> str | None:
    """``QONTAK_RATE_LIMIT_STORE`` from the environment, else ``.env``; ``None`` when unset
    or ``memory`` (the in-process limiter)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    value = environ.get(ENV_RATE_LIMIT_STORE)
    if value is None and env_file is not None:
        value = load_dotenv_values(env_file).get(ENV_RATE_LIMIT_STORE)
    value = (value or "").strip()
    return None if value.lower() in ("", "memory", "memory://") else value
