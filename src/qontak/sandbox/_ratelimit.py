"""Per-client request limits in fixed windows, with the ``X-RateLimit-*`` headers.

Windows are aligned to the sandbox clock (minute ``floor(now / 60)``, second ``floor(now)``),
so a fake clock gives exact, repeatable counts. A request is counted in every window that
applies to it (all requests: overall minute + burst second; direct sends also the direct
minute) and only when it is let through: a 429 does not use up quota.

Headers on every authenticated response (none on a 401; :mod:`._gateway` says why):

- ``X-RateLimit-Limit``: size of the window reported (the route's per-minute limit: 60 for
  direct sends, 100 otherwise; on a 429 the window that refused the request, e.g. 10 for a
  burst).
- ``X-RateLimit-Remaining``: requests still allowed in that window.
- ``X-RateLimit-Reset``: **seconds** (an integer, rounded up, at least 1) until that window
  starts afresh. Not an epoch time.
- ``Retry-After`` (429 only): the same number of seconds.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from typing import Any

from .._ratelimit import parse_rate_limit_items
from ..errors import ConfigurationError
from ._config import RateLimitConfig

__all__ = ["Decision", "RateLimiter", "describe_config", "parse_config"]

# text key -> (RateLimitConfig field, the window the sandbox counts it in, its unit's name)
_FIELDS = {
    "send": ("direct_per_minute", 60.0, "min"),
    "all": ("overall_per_minute", 60.0, "min"),
    "burst": ("burst_per_second", 1.0, "s"),
}
_WINDOW_NAMES = {"min": "minute", "s": "second"}


def parse_config(text: str) -> RateLimitConfig:
    """The sandbox's limits from the client's syntax (``send=600/min,all=1000/min,burst=20/s``)
    or ``off``; limits not named keep their defaults. The sandbox counts in fixed windows, so
    ``send`` and ``all`` are per minute and ``burst`` per second. Raises ``ValueError`` with
    a one-line reason."""
    try:
        items = parse_rate_limit_items(text, setting="rate limits")
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None
    if items is None:
        return RateLimitConfig(enabled=False)
    changes: dict[str, Any] = {}
    for key, rule in items.items():
        name, window, unit = _FIELDS[key]
        if rule.per != window:
            raise ValueError(
                f"rate limits: the sandbox counts {key} per {_WINDOW_NAMES[unit]}; "
                f"write {key}=N/{unit}"
            )
        changes[name] = rule.requests
    return replace(RateLimitConfig(), **changes)


def describe_config(config: RateLimitConfig) -> str:
    """The text form of ``config``, accepted back by :func:`parse_config`."""
    if not config.enabled:
        return "off"
    return ",".join(
        f"{key}={getattr(config, name)}/{unit}" for key, (name, _, unit) in _FIELDS.items()
    )


@dataclass(frozen=True)
class _Window:
    name: str
    limit: int
    seconds: float


@dataclass(frozen=True)
class Decision:
    """Outcome of one check: allowed or not, and the headers to send."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers (plus ``Retry-After`` when refused)."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class RateLimiter:
    """Counts requests per client in fixed windows; thread-safe."""

    def __init__(self, config: RateLimitConfig) -> None:
        self._lock = threading.Lock()
        # (client, window name, window index) -> (requests counted, window end time)
        self._counts: dict[tuple[str, str, int], tuple[int, float]] = {}
        self.config = config

    def reset(self) -> None:
        """Forget every count (used by ``Sandbox.reset``)."""
        with self._lock:
            self._counts.clear()

    def _windows(self, is_send: bool) -> list[_Window]:
        cfg = self.config
        windows = [
            _Window("overall", cfg.overall_per_minute, 60.0),
            _Window("burst", cfg.burst_per_second, 1.0),
        ]
        if is_send:
            # The reported window comes first: for a send it is the documented 60/min.
            windows.insert(0, _Window("direct", cfg.direct_per_minute, 60.0))
        return windows

    def check(self, client_id: str, *, is_send: bool, now: float) -> Decision:
        """Count one request if every window has room; otherwise refuse it."""
        windows = self._windows(is_send)
        with self._lock:
            # Drop windows that have ended, so the table stays small on long runs.
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            states = []
            for window in windows:
                index = int(now // window.seconds)
                key = (client_id, window.name, index)
                used = self._counts.get(key, (0, 0.0))[0]
                end = (index + 1) * window.seconds
                reset = max(1, math.ceil(end - now))
                states.append((window, key, used, reset, end))
            if not self.config.enabled:
                window, _, used, reset, _ = states[0]
                return Decision(True, window.limit, window.limit, reset)
            for window, _, used, reset, _ in states:
                if used >= window.limit:
                    return Decision(False, window.limit, 0, reset)
            for _, key, used, _, end in states:
                self._counts[key] = (used + 1, end)
            window, _, used, reset, _ = states[0]
            return Decision(True, window.limit, max(0, window.limit - used - 1), reset)
