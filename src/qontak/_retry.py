"""What to retry, and how long to wait: one policy for the sync and the async client.

Qontak has no idempotency key, so the rule is about what the server may have done:

============================  =====================  ===============================
what happened                 reads (GET) & uploads  direct send
============================  =====================  ===============================
could not connect             retry                  retry (nothing was sent)
429 Too Many Requests         retry after the wait   retry after the wait (refused)
read timeout / reset after    retry                  ``DeliveryUnknownError``
the request was written
5xx                           retry                  ``DeliveryUnknownError``
other 4xx                     raise                  raise
============================  =====================  ===============================

"Could not connect" is decided by :func:`classify_exception` alone, and only for failures
that provably happened before any byte of the request left; everything else a transport can
raise (every other ``httpx`` error, and the ``OSError``/``ssl``/``anyio`` errors a custom
transport may let through) may have reached the server. ``tests/sdk/test_send_rule.py``
pins the table for every ``httpx.HTTPError`` subclass, so a change here fails a test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

import anyio
import httpx

__all__ = [
    "DEFAULT_RETRY",
    "NOT_SENT_ERRORS",
    "Outcome",
    "RetryPolicy",
    "classify_exception",
    "classify_status",
    "is_transport_error",
]


class Outcome(Enum):
    """How one attempt ended, as far as retrying is concerned."""

    OK = "ok"
    NOT_SENT = "not_sent"  # connect error/timeout: the request never left
    NO_ANSWER = "no_answer"  # it may have arrived, but no usable response came back
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"


#: ``httpx`` errors raised before the request left: no connection was made (refused, DNS,
#: TLS handshake, connect timeout), none was free in the pool, the proxy refused the tunnel,
#: or httpx refused to write the request at all (bad scheme, a request h11 will not send; a
#: request cut short that way is incomplete, and a server does not act on half a request).
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)

# What a wrapped error must be for the httpx class around it to be believed. httpx's own
# transport wraps httpcore errors of the same names; httpx-aiohttp maps *every*
# ``aiohttp.ClientConnectionError`` (a server that hung up after reading the request, a read
# timeout) to ``httpx.ConnectTimeout``, so there the aiohttp class decides.
_HTTPCORE_NOT_SENT = frozenset(cls.__name__ for cls in NOT_SENT_ERRORS)
_AIOHTTP_NOT_SENT = frozenset(
    {
        "ClientConnectorError",  # refused, DNS, TLS handshake, proxy connect
        "ConnectionTimeoutError",  # connect or pool wait timed out
        "ClientHttpProxyError",  # the proxy refused CONNECT
        "ServerFingerprintMismatch",  # TLS pinning failed before the request
        "InvalidURL",
        "NonHttpUrlClientError",
    }
)

# Raw errors some transports let through (httpx's own maps them all to httpx errors).
_RAW_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes ssl.SSLError, TimeoutError, ConnectionError
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)
_TRANSPORT_MODULES = ("aiohttp", "httpcore", "h11", "h2")


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc``, raised while sending a request, is a failure of the connection (to
    classify) rather than a bug to let through."""
    if isinstance(exc, (httpx.HTTPError, *_RAW_TRANSPORT_ERRORS)):
        return True
    return type(exc).__module__.split(".", 1)[0] in _TRANSPORT_MODULES


def _wrapped_agrees(exc: BaseException) -> bool:
    """Whether the error a not-sent httpx error wraps (if any) says "before sending" too."""
    cause = exc.__cause__
    if cause is None:
        return True  # raised by httpx itself or by a transport that names the phase
    package = type(cause).__module__.split(".", 1)[0]
    names = {c.__name__ for c in type(cause).__mro__}
    if package == "httpcore":
        return bool(names & _HTTPCORE_NOT_SENT)
    if package == "aiohttp":
        return bool(names & _AIOHTTP_NOT_SENT)
    # A transport we do not know wrapped something we cannot judge: assume it was sent.
    return False


def classify_exception(exc: BaseException) -> Outcome:
    """How a transport failure ends an attempt: ``NOT_SENT`` (safe to send again) only when
    the request provably never left, ``NO_ANSWER`` (it may have been acted on) otherwise."""
    if isinstance(exc, NOT_SENT_ERRORS) and _wrapped_agrees(exc):
        return Outcome.NOT_SENT
    return Outcome.NO_ANSWER


def classify_status(status_code: int) -> Outcome:
    """Map an HTTP status to an :class:`Outcome`."""
    if status_code < 400:
        return Outcome.OK
    if status_code == 429:
        return Outcome.RATE_LIMITED
    if status_code >= 500 or status_code == 408:
        return Outcome.SERVER_ERROR
    return Outcome.CLIENT_ERROR


@dataclass(frozen=True)
class RetryPolicy:
    """Retry settings.

    ``max_retries`` extra attempts after the first (default 2); backoff is exponential from
    ``backoff_base`` seconds, capped at ``backoff_max``, with up to ``jitter`` (a fraction)
    of random spread. A server-named wait (``Retry-After``/``X-RateLimit-Reset``) is honoured
    when it is at most ``max_wait`` seconds; a longer one is raised to the caller instead.
    """

    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.25
    max_wait: float = 60.0

    def should_retry(self, outcome: Outcome, *, attempt: int, idempotent: bool) -> bool:
        """Whether attempt number ``attempt`` (0-based) that ended in ``outcome`` is retried."""
        if attempt >= self.max_retries:
            return False
        if outcome in (Outcome.NOT_SENT, Outcome.RATE_LIMITED):
            return True
        if outcome in (Outcome.NO_ANSWER, Outcome.SERVER_ERROR):
            return idempotent
        return False

    def delay(
        self, attempt: int, *, server_wait: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        if server_wait is not None:
            return max(0.0, server_wait)
        base = min(self.backoff_max, self.backoff_base * (2**attempt))
        spread = (rng or random).uniform(0.0, self.jitter) if self.jitter > 0 else 0.0
        return float(base * (1.0 + spread))


DEFAULT_RETRY = RetryPolicy()
