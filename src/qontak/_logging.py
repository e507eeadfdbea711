"""The ``qontak`` logger: ``QONTAK_LOG=debug|info`` switches it on; credentials are redacted.

Every record that passes through a handler installed here goes through
:class:`RedactingFilter`, which removes ``Authorization`` values and any registered secret.
Phone numbers are masked (``6281******890``) at INFO and above; DEBUG shows them in full to
help debugging, but never shows secrets.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["RedactingFilter", "logger", "mask_phone", "redact", "register_secret", "setup_logging"]

logger = logging.getLogger("qontak")

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_AUTH_RE = re.compile(r'(signature=")[^"]*(")|(hmac\s+username="[^"]*")', re.IGNORECASE)
_SIG_RE = re.compile(r'signature="[^"]*"', re.IGNORECASE)
_PHONE_RE = re.compile(r"(?<!\d)(\+?\d{4})(\d{4,9})(\d{3})(?!\d)")


def register_secret(secret: str) -> None:
    """Make ``secret`` redacted from every log record from now on."""
    if secret and len(secret) >= 4:
        with _LOCK:
            _SECRETS.add(secret)


def mask_phone(number: str) -> str:
    """Mask the middle of a phone number: ``6281234567890`` -> ``6281******890``."""
    return _PHONE_RE.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), number)


def redact(text: str) -> str:
    """Remove signatures and registered secrets from ``text``."""
    text = _SIG_RE.sub('signature="[REDACTED]"', text)
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "[REDACTED]")
    return text


class RedactingFilter(logging.Filter):
    """Rewrites records so that no secret and (below DEBUG) no full phone number leaks."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(record.getMessage())
        if record.levelno > logging.DEBUG:
            message = mask_phone(message)
        record.msg = message
        record.args = None
        return True


def setup_logging(level: str | None = None) -> None:
    """Install a stderr handler on the ``qontak`` logger when ``QONTAK_LOG`` (or ``level``)
    is set. Idempotent."""
    name = (level or os.environ.get("QONTAK_LOG") or "").strip().upper()
    if not name:
        return
    numeric = getattr(logging, name, None)
    if not isinstance(numeric, int):
        return
    logger.setLevel(numeric)
    if not any(getattr(h, "_qontak", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        handler._qontak = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


# Filter at the logger too, so records are clean for handlers users attach themselves.
logger.addFilter(RedactingFilter())
# A library stays silent unless asked: without this, Python's last-resort handler would print
# our WARNING records to stderr in programs that never configured logging.
logger.addHandler(logging.NullHandler())


def log_kv(level: int, event: str, **fields: Any) -> None:
    """Log ``event key=value …`` on the ``qontak`` logger if ``level`` is enabled."""
    if logger.isEnabledFor(level):
        parts = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        logger.log(level, "%s %s", event, parts)


def redact_url(url: str) -> str:
    """``url`` fit to print: the password (in the user part or the query) becomes ``***``.

    >>> redact_url("postgresql://ops:s3cret@db.example/qontak?sslmode=require&password=x")
    'postgresql://ops:***@db.example/qontak?sslmode=require&password=%2A%2A%2A'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hostinfo}"
    query = urlencode(
        [
            (k, "***" if k.lower() == "password" else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="/",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
