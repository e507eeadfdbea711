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
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

__all__ = ["DEFAULT_RETRY", "Outcome", "RetryPolicy", "classify_status"]


class Outcome(Enum):
    """How one attempt ended, as far as retrying is concerned."""

    OK = "ok"
    NOT_SENT = "not_sent"  # connect error/timeout: the request never left
    NO_ANSWER = "no_answer"  # it may have arrived, but no usable response came back
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"


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
