"""Mekari HMAC-SHA256 request signing (pure functions).

The gateway verifies ``Authorization: hmac username=…, algorithm="hmac-sha256",
headers="date request-line", signature=…`` over the two-line string::

    date: <Date header value>
    <METHOD> <path?query> HTTP/1.1

Sign exactly the path and query bytes that go on the wire, and sign every attempt
afresh: the ``Date`` header is part of the signature.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import math
from email.utils import formatdate

__all__ = ["authorization_header", "format_date", "sign", "signature_headers", "string_to_sign"]


def format_date(timestamp: float) -> str:
    """Return ``timestamp`` (epoch seconds) as an RFC 7231 IMF-fixdate, e.g.
    ``Wed, 10 Nov 2021 07:24:29 GMT``."""
    # Formatting a date costs as much as the HMAC, and every request in the same second
    # carries the same one. ``formatdate`` rounds to the microsecond before it drops the
    # fraction, so only the last half-microsecond of a second may show the next one: those
    # (and anything odd) go to ``formatdate`` itself.
    if isinstance(timestamp, int | float) and math.isfinite(timestamp):
        second = math.floor(timestamp)
        if timestamp - second < 0.999999:
            return _second_date(second)
    return formatdate(timestamp, usegmt=True)


@functools.lru_cache(maxsize=8)
def _second_date(second: int) -> str:
    return formatdate(second, usegmt=True)


def string_to_sign(method: str, path_with_query: str, date: str) -> str:
    """The exact text Mekari signs: ``date: …`` and the request line, no trailing newline."""
    return f"date: {date}\n{method.upper()} {path_with_query} HTTP/1.1"


def sign(method: str, path_with_query: str, date: str, secret: str) -> str:
    """Base64 HMAC-SHA256 signature of a request.

    >>> sign("POST", "/v2/klikpajak/v1/efaktur/out?auto_approval=false",
    ...      "Wed, 10 Nov 2021 07:24:29 GMT", "YOUR_MEKARI_API_CLIENT_SECRET")
    '6+Ah/UTmbqd+DDqlh6zYZ0HuCwVhtElYDOoucRPCaFg='
    """
    message = string_to_sign(method, path_with_query, date).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def authorization_header(client_id: str, signature: str) -> str:
    """The ``Authorization`` value in the gateway's exact layout."""
    return (
        f'hmac username="{client_id}", algorithm="hmac-sha256", '
        f'headers="date request-line", signature="{signature}"'
    )


def signature_headers(
    method: str, path_with_query: str, client_id: str, secret: str, timestamp: float
) -> dict[str, str]:
    """``Date`` and ``Authorization`` headers for one attempt of one request."""
    date = format_date(timestamp)
    signature = sign(method, path_with_query, date, secret)
    return {"Date": date, "Authorization": authorization_header(client_id, signature)}
