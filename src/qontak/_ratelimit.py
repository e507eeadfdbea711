"""Client-side rate limiting, shared by every thread and task that uses one client.

Each :class:`Rule` means "at most ``requests`` grants in any window of ``per`` seconds" and
is enforced exactly with a sliding log of grant times, so neither a fixed-window nor a
sliding-window server ever sees more than its limit from us. A request reserves a slot and
is told how long to wait for it; the caller sleeps (``time.sleep`` or ``anyio.sleep``), so
the same object serves the sync and the async client.

The server has the last word: ``X-RateLimit-Remaining: 0`` with ``X-RateLimit-Reset`` and any
429 pause the scope until the time it names.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

__all__ = [
    "DEFAULT_LIMITS",
    "SCOPE_ALL",
    "SCOPE_SEND",
    "RateLimiter",
    "Rule",
    "parse_reset",
    "parse_retry_after",
]

SCOPE_ALL = "all"
SCOPE_SEND = "send"

# Values above this are absolute epoch times, below it a number of seconds to wait. Qontak
# does not document the unit of X-RateLimit-Reset, so both are accepted (in one place).
_EPOCH_THRESHOLD = 1_000_000_000


@dataclass(frozen=True)
class Rule:
    """At most ``requests`` requests in any window of ``per`` seconds."""

    requests: int
    per: float

    def __post_init__(self) -> None:
        if self.requests < 1 or self.per <= 0:
            raise ValueError("a rate-limit rule needs requests >= 1 and per > 0")


#: Documented defaults: 60 direct sends a minute (Qontak's OpenAPI note) and 100 requests a
#: minute with bursts of at most 10 a second overall (the Node client's README).
DEFAULT_LIMITS: Mapping[str, tuple[Rule, ...]] = {
    SCOPE_SEND: (Rule(60, 60.0),),
    SCOPE_ALL: (Rule(100, 60.0), Rule(10, 1.0)),
}


class _Window:
    """Grant times of one rule, in order (grants are handed out first come, first served)."""

    __slots__ = ("grants", "rule")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.grants: deque[float] = deque()

    def earliest(self, now: float) -> float:
        """The first time, not before the last grant, at which one more grant keeps the rule."""
        # Grants older than a window before ``now`` can no longer count against anything.
        while self.grants and self.grants[0] <= now - self.rule.per:
            self.grants.popleft()
        if not self.grants:
            return now
        at = max(now, self.grants[-1])
        if len(self.grants) >= self.rule.requests:
            at = max(at, self.grants[-self.rule.requests] + self.rule.per)
        return at


class RateLimiter:
    """Sliding-log limiter over named scopes (``"all"`` applies to every request).

    >>> limiter = RateLimiter({"all": (Rule(2, 1.0),)})
    >>> [limiter.reserve(now=0.0) for _ in range(3)]
    [0.0, 0.0, 1.0]
    """

    def __init__(self, limits: Mapping[str, Iterable[Rule]] | None = None) -> None:
        source = DEFAULT_LIMITS if limits is None else limits
        self._windows = {scope: [_Window(r) for r in rules] for scope, rules in source.items()}
        self._paused_until: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def rules(self) -> dict[str, tuple[Rule, ...]]:
        """The configured rules by scope."""
        return {s: tuple(w.rule for w in ws) for s, ws in self._windows.items()}

    def reserve(self, scope: str = SCOPE_ALL, *, now: float) -> float:
        """Reserve one request in ``scope`` (and ``"all"``); return seconds to wait first."""
        scopes = {SCOPE_ALL, scope}
        with self._lock:
            windows = [w for sc in scopes for w in self._windows.get(sc, ())]
            at = max(
                [now]
                + [self._paused_until.get(sc, now) for sc in scopes]
                + [w.earliest(now) for w in windows]
            )
            for window in windows:
                window.grants.append(at)
        return at - now

    def pause(self, scope: str, until: float) -> None:
        """Grant nothing in ``scope`` before ``until`` (epoch seconds on the limiter's clock)."""
        with self._lock:
            self._paused_until[scope] = max(self._paused_until.get(scope, 0.0), until)


def parse_reset(value: str | None, now: float) -> float | None:
    """Seconds to wait from an ``X-RateLimit-Reset`` value, in seconds or epoch form.

    >>> parse_reset("30", now=1_700_000_000.0)
    30.0
    >>> parse_reset("1700000010", now=1_700_000_000.0)
    10.0
    """
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number > _EPOCH_THRESHOLD * 1000:  # epoch milliseconds
        number = number / 1000.0
    if number > _EPOCH_THRESHOLD:
        return max(0.0, number - now)
    return max(0.0, number)


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait according to ``Retry-After`` (seconds or HTTP date) or
    ``X-RateLimit-Reset``; ``None`` when neither is usable."""
    lowered = {k.lower(): v for k, v in headers.items()}
    retry_after = lowered.get("retry-after")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(retry_after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    return parse_reset(lowered.get("x-ratelimit-reset"), now)
