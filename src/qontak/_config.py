"""Credentials and settings: from arguments, then environment variables, then a ``.env`` file.

Precedence is argument > environment > ``.env``. Secrets are held in :class:`Secret`, whose
``repr``/``str`` never reveal the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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


class Secret:
    """A string that never shows itself in ``repr``, ``str``, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

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

    A missing file yields ``{}``. Values are never logged.
    """
    p = Path(path)
    if not p.is_file():
        return {}
    values: dict[str, str] = {}
    for raw in p.read_text(encoding="utf-8").splitlines():
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


def resolve_base_url(base_url: str | None = None, environment: str | None = None) -> str:
    """The API root including the ``/qontak/chat/v1`` prefix, without a trailing slash.

    A bare host (``https://api.mekari.com``) gets the prefix appended; a URL that already
    has a path is taken as it is.

    >>> resolve_base_url(environment="staging")
    'https://api.mekari.io/qontak/chat/v1'
    """
    if base_url is None:
        env = environment or "production"
        if env not in ENVIRONMENTS:
            names = ", ".join(ENVIRONMENTS)
            raise ConfigurationError(f"environment: unknown environment {env!r} (use {names})")
        base_url = ENVIRONMENTS[env]
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"base_url: {base_url!r} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise ConfigurationError("base_url: must not have a query or fragment")
    path = parts.path.rstrip("/")
    if not path:
        path = API_PREFIX
    return f"{parts.scheme}://{parts.netloc}{path}"


@dataclass(frozen=True)
class Settings:
    """Resolved connection settings. ``repr`` is safe to log."""

    client_id: str
    client_secret: Secret = field(repr=True)
    base_url: str


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

    Raises :class:`ConfigurationError` naming the missing variable.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    dotenv = load_dotenv_values(env_file) if env_file is not None else {}

    def pick(arg: str | None, name: str) -> str | None:
        if arg is not None:
            return arg
        value = environ.get(name)
        if value is None:
            value = dotenv.get(name)
        return value or None

    cid = pick(client_id, ENV_CLIENT_ID)
    secret = pick(client_secret, ENV_CLIENT_SECRET)
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
    url = resolve_base_url(pick(base_url, ENV_BASE_URL), environment or pick(None, ENV_ENVIRONMENT))
    return Settings(client_id=cid, client_secret=Secret(secret), base_url=url)


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
