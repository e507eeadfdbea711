"""The gateway's HMAC check, written from the server's side (it does not use the SDK's signer).

Mekari's gateway accepts a request when::

    Authorization: hmac username="<id>", algorithm="hmac-sha256",
                   headers="date request-line", signature="<base64>"

carries ``base64(HMAC-SHA256(secret, "date: <Date>\\n<METHOD> <path?query> HTTP/1.1"))`` for
a known ``<id>``, and the ``Date`` header is within :data:`MAX_SKEW_SECONDS` of the server
clock. The request line is rebuilt from the raw bytes the client sent (ASGI ``raw_path`` and
``query_string``), never from a decoded path, so a client that signs one encoding and sends
another is caught here as it would be in production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from email.utils import parsedate_to_datetime

__all__ = ["MAX_SKEW_SECONDS", "compute_signature", "request_target", "verify_request"]

#: A Date further than this from the server clock is rejected (Mekari KB: 300 s).
MAX_SKEW_SECONDS = 300.0

_PARAM = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
_SCHEME = re.compile(r"^\s*hmac\s+", re.IGNORECASE)


def compute_signature(secret: str, date: str, method: str, target: str) -> str:
    """Base64 HMAC-SHA256 of the two-line string the gateway signs."""
    message = f"date: {date}\n{method.upper()} {target} HTTP/1.1".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def request_target(raw_path: bytes, query_string: bytes) -> str:
    """The ``path?query`` part of the request line, exactly as received."""
    target = raw_path.decode("latin-1")
    if query_string:
        target += "?" + query_string.decode("latin-1")
    return target


def _parse_authorization(value: str) -> dict[str, str] | None:
    match = _SCHEME.match(value)
    if match is None:
        return None
    return {key.lower(): val for key, val in _PARAM.findall(value[match.end() :])}


def _parse_date(value: str) -> float | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        # RFC 7231 dates are always GMT; a date without a zone is not one.
        return None
    return parsed.timestamp()


def verify_request(
    *,
    method: str,
    target: str,
    authorization: str | None,
    date: str | None,
    secret_for: Callable[[str], str | None],
    now: float,
) -> str | None:
    """Return the client id if the request is signed correctly, else None.

    ``secret_for`` looks up a client's secret (None for an unknown client). Every failure
    gives the same None: the gateway answers them all with the same 401.
    """
    if not authorization or not date:
        return None
    params = _parse_authorization(authorization)
    if params is None:
        return None
    username = params.get("username")
    signature = params.get("signature")
    if not username or not signature:
        return None
    if params.get("algorithm", "").lower() != "hmac-sha256":
        return None
    if params.get("headers", "").lower().split() != ["date", "request-line"]:
        return None
    sent_at = _parse_date(date)
    if sent_at is None or abs(now - sent_at) > MAX_SKEW_SECONDS:
        return None
    secret = secret_for(username)
    if secret is None:
        return None
    expected = compute_signature(secret, date, method, target)
    # Constant time, so the response time does not leak how much of a guess was right.
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return None
    return username
