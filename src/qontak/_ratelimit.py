"""Client-side rate limiting, shared by every thread and task that uses one client.

Each :class:`Rule` means "at most ``requests`` requests in any window of ``per`` seconds" and
is enforced with a sliding log of the moments requests were let through, so neither a
fixed-window nor a sliding-window server sees more than its limit from us.

Two things keep us under the server's limit in practice, not just on paper:

- A slot is taken at the moment the request goes, never planned ahead. A caller that must
  wait sleeps, looks again and only then takes a slot (atomically, under one lock). A stall
  (a blocked event loop, a paused process) therefore cannot make late callers fire together:
  each one is counted when it really goes. Callers of one scope queue first come, first
  served, so a newcomer never overtakes a caller that is already waiting.
- A request counts from the moment its slot is taken until its answer is back, and from
  its answer on like any other grant (:meth:`RateLimiter.complete`). The server counts it
  when it arrives, at an unknown moment in between: a request stuck in a stalled event loop,
  a cold connection or a busy server's backlog arrives late, and counted from its grant alone
  it would let the next ones into the same server window. Counted as "now" while in flight and
  from its answer afterwards, no server window, sliding or fixed, can see more than the limit
  from us, whatever the delays (a request in flight longer than :data:`IN_FLIGHT_SECONDS`
  or the longest window, its answer never reported, is let go then).
- Every window is :data:`SAFETY_MARGIN` longer than the server's (2%, at least
  :data:`SAFETY_MARGIN_MIN_SECONDS`: 100 ms on a one-second burst window, 1.2 s on a
  minute), which absorbs network jitter and a clock read a little early.

The server has the last word: ``X-RateLimit-Remaining: 0`` with ``X-RateLimit-Reset`` and any
429 pause the scope until the time it names.

Limits can be written as text (``QONTAK_RATE_LIMITS``, ``--rate-limits``), parsed by
:func:`parse_rate_limits`::

    send=600/min,all=1000/min,burst=20/s      # or "off"
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import os
import re
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .errors import ConfigurationError, ValidationError

__all__ = [
    "DEFAULT_LIMITS",
    "IN_FLIGHT_SECONDS",
    "SAFETY_MARGIN",
    "SCOPE_ALL",
    "SCOPE_SEND",
    "RateLimiter",
    "Rule",
    "parse_rate_limit_items",
    "parse_rate_limits",
    "parse_reset",
    "parse_retry_after",
]

SCOPE_ALL = "all"
SCOPE_SEND = "send"

#: How much longer than the server's each window is kept (a fraction of the window), so
#: that jitter between taking a slot and the server counting the request never tips a
#: window over the limit. The one place this margin is decided.
SAFETY_MARGIN = 0.02
#: ...and at least this many seconds longer (when there is a margin at all): on a one-second
#: burst window 2% is 20 ms, less than a busy host's scheduling jitter, and a fixed-window
#: server then sees 21 in its second. Costs nothing in steady state: bursts are not the
#: binding limit over a minute.
SAFETY_MARGIN_MIN_SECONDS = 0.1
#: A request counts as in flight (as if answered at every moment) for at most this long, or
#: the longest window when that is longer: its answer may never be reported (the process
#: died, an exception came before it went). Requests take seconds (the client's default
#: timeout is 30 s); a lost one costs one slot for this long.
IN_FLIGHT_SECONDS = 60.0

# A queued caller that is not first in line looks again this soon when its turn is due.
_RECHECK_SECONDS = 0.005

# Values above this are absolute epoch times, below it a number of seconds to wait. Qontak
# does not document the unit of X-RateLimit-Reset, so both are accepted (in one place).
_EPOCH_THRESHOLD = 1_000_000_000


@dataclass(frozen=True)
class Rule:
    """At most ``requests`` requests in any window of ``per`` seconds."""

    requests: int
    per: float

    def __post_init__(self) -> None:
        if (
            isinstance(self.requests, bool)
            or not isinstance(self.requests, int)
            or isinstance(self.per, bool)
            or not isinstance(self.per, int | float)
            or self.requests < 1
            or not math.isfinite(self.per)
            or self.per <= 0
        ):
            # ValidationError is a ValueError too: callers catching that keep working.
            raise ValidationError(
                "rule",
                "a rate-limit rule needs a whole number of requests >= 1 and finite per > 0",
                code="invalid",
            )


#: Documented defaults: 60 direct sends a minute (Qontak's OpenAPI note) and 100 requests a
#: minute with bursts of at most 10 a second overall (the Node client's README).
DEFAULT_SEND = Rule(60, 60.0)
DEFAULT_ALL = Rule(100, 60.0)
DEFAULT_BURST = Rule(10, 1.0)
DEFAULT_LIMITS: Mapping[str, tuple[Rule, ...]] = {
    SCOPE_SEND: (DEFAULT_SEND,),
    SCOPE_ALL: (DEFAULT_ALL, DEFAULT_BURST),
}


class _Window:
    """The requests one rule counts: answered ones at their answer (``grants``, oldest first)
    and those still in flight at their grant (``flying``, oldest first)."""

    __slots__ = ("flying", "grants", "rule", "span")

    def __init__(self, rule: Rule, margin: float) -> None:
        self.rule = rule
        extra = max(rule.per * margin, SAFETY_MARGIN_MIN_SECONDS) if margin > 0 else 0.0
        self.span = rule.per + extra
        self.grants: deque[float] = deque()
        self.flying: deque[float] = deque()

    def earliest(self, now: float, lifetime: float) -> float:
        """The first moment, not before ``now``, at which one more request keeps the rule
        (requests still in flight count as answered now; those in flight longer than
        ``lifetime`` are let go)."""
        # Grants older than a window before ``now`` can no longer count against anything.
        while self.grants and self.grants[0] <= now - self.span:
            self.grants.popleft()
        while self.flying and self.flying[0] <= now - lifetime:
            self.flying.popleft()
        n, flying = self.rule.requests, len(self.flying)
        if len(self.grants) + flying < n:
            return now
        if flying >= n:
            # Each will count from its answer, not earlier than now.
            return now + self.span
        return max(now, self.grants[flying - n] + self.span)

    def tail(self, now: float) -> list[float]:
        """The last ``requests`` grants, those in flight as if answered ``now``: all that
        matters for the next ones."""
        n = self.rule.requests
        answered = itertools.islice(self.grants, max(0, len(self.grants) - n), None)
        return [*answered, *(now for _ in self.flying)][-n:]

    def settle(self, granted: float, now: float) -> None:
        """The request granted at ``granted`` was answered at ``now``."""
        if self.flying and self.flying[-1] == granted:
            self.flying.pop()
        else:
            try:
                del self.flying[self.flying.index(granted)]
            except ValueError:  # not in flight: a reserve()d slot, or one let go
                with contextlib.suppress(ValueError):
                    del self.grants[self.grants.index(granted)]
        bisect.insort(self.grants, now)


class RateLimiter:
    """Sliding-log limiter over named scopes (``"all"`` applies to every request).

    ``margin`` widens every window by that fraction (default :data:`SAFETY_MARGIN`, at
    least :data:`SAFETY_MARGIN_MIN_SECONDS`).

    >>> limiter = RateLimiter({"all": (Rule(2, 1.0),)})
    >>> [limiter.reserve(now=0.0) for _ in range(3)]  # two go, the third must wait
    [0.0, 0.0, 1.1]
    """

    def __init__(
        self, limits: Mapping[str, Iterable[Rule]] | None = None, *, margin: float = SAFETY_MARGIN
    ) -> None:
        if (
            isinstance(margin, bool)
            or not isinstance(margin, int | float)
            or not 0.0 <= margin < 1.0
        ):
            raise ValueError("margin must be a fraction from 0 (included) to 1")
        source = DEFAULT_LIMITS if limits is None else limits
        self.margin = float(margin)
        self._windows = {
            scope: [_Window(r, self.margin) for r in rules] for scope, rules in source.items()
        }
        # The longest window, and how long a request in flight counts at most (its answer
        # may never be reported: a crash, an exception before it went).
        self._horizon = max((w.span for ws in self._windows.values() for w in ws), default=1.0)
        self._flight_lifetime = max(self._horizon, IN_FLIGHT_SECONDS)
        self._paused_until: dict[str, float] = {}
        self._queues: dict[str, deque[object]] = {}
        self._last = -math.inf
        self._lock = threading.Lock()
        _LIMITERS.add(self)

    @property
    def rules(self) -> dict[str, tuple[Rule, ...]]:
        """The configured rules by scope."""
        return {s: tuple(w.rule for w in ws) for s, ws in self._windows.items()}

    # -- under the lock ----------------------------------------------------------------------
    def _windows_of(self, scope: str) -> list[_Window]:
        scopes = (SCOPE_ALL,) if scope == SCOPE_ALL else (SCOPE_ALL, scope)
        return [w for sc in scopes for w in self._windows.get(sc, ())]

    def _pause_of(self, scope: str, now: float) -> float:
        return max(self._paused_until.get(SCOPE_ALL, now), self._paused_until.get(scope, now))

    def _try_take(self, scope: str, now: float, *, flying: bool = True) -> float:
        """Take a slot at ``now`` and return 0, or return how long until one may be free.
        The slot is in flight until :meth:`complete` (``flying``), or answered at once."""
        # Clocks read by several threads may arrive a hair out of order: never log a grant
        # earlier than the last one (later is the safe direction).
        now = max(now, self._last)
        windows = self._windows_of(scope)
        at = max(
            [self._pause_of(scope, now)] + [w.earliest(now, self._flight_lifetime) for w in windows]
        )
        if at > now:
            return at - now
        for window in windows:
            (window.flying if flying else window.grants).append(now)
        self._last = now
        return 0.0

    def _planned(self, scope: str, now: float, position: int) -> float:
        """When the caller at ``position`` in the queue may go, if those ahead go on time."""
        tails = [(w, w.tail(now)) for w in self._windows_of(scope)]
        at = max(now, self._pause_of(scope, now))
        for _ in range(position + 1):
            for window, tail in tails:
                n = window.rule.requests
                if len(tail) >= n:
                    at = max(at, tail[-n] + window.span)
            for _, tail in tails:
                tail.append(at)
        return at

    def _turn(self, scope: str, ticket: object, now: float) -> float:
        """For a queued caller: take the slot (0) if it is first and one is free, else the
        seconds to sleep before looking again."""
        queue = self._queues[scope]
        if queue[0] is ticket:
            wait = self._try_take(scope, now)
            if wait == 0.0:
                queue.popleft()
                if not queue:
                    del self._queues[scope]
            return wait
        planned = self._planned(scope, now, queue.index(ticket))
        return max(planned - now, _RECHECK_SECONDS)

    def _enter(self, scope: str, ticket: object, now: float) -> float:
        if scope not in self._queues:
            wait = self._try_take(scope, now)
            if wait == 0.0:
                return 0.0
        self._queues.setdefault(scope, deque()).append(ticket)
        return self._turn(scope, ticket, now)

    def _leave(self, scope: str, ticket: object) -> None:
        queue = self._queues.get(scope)
        if queue is not None and ticket in queue:
            queue.remove(ticket)
            if not queue:
                del self._queues[scope]

    # -- public ------------------------------------------------------------------------------
    def reserve(self, scope: str = SCOPE_ALL, *, now: float) -> float:
        """Take one slot in ``scope`` (and ``"all"``) at ``now`` if one is free and nobody
        waits ahead; return 0.0. Otherwise take nothing and return the seconds until one
        may be free (call again then): the non-blocking form of :meth:`acquire`. The slot
        counts from ``now`` (call :meth:`complete` with ``now`` as ``granted`` to move it to
        the answer)."""
        with self._lock:
            queue = self._queues.get(scope)
            if queue:
                return max(self._planned(scope, now, len(queue)) - now, _RECHECK_SECONDS)
            return self._try_take(scope, now, flying=False)

    def acquire(
        self, scope: str = SCOPE_ALL, *, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> float:
        """Wait (with ``sleep``) for a slot in ``scope``, first come first served, and take it
        at the moment it is free; returns that moment on ``clock``. The request counts as
        in flight (as if answered at every moment) until :meth:`complete` gets that moment
        back."""
        ticket = object()
        with self._lock:
            wait = self._enter(scope, ticket, clock())
            granted = self._last
        taken = False
        try:
            while wait > 0.0:
                sleep(wait)
                with self._lock:
                    wait = self._turn(scope, ticket, clock())
                    granted = self._last
            taken = True
        finally:
            if not taken:
                with self._lock:
                    self._leave(scope, ticket)
        return granted

    async def acquire_async(
        self,
        scope: str = SCOPE_ALL,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> float:
        """The async form of :meth:`acquire` (a cancelled waiter leaves the queue)."""
        ticket = object()
        with self._lock:
            wait = self._enter(scope, ticket, clock())
            granted = self._last
        taken = False
        try:
            while wait > 0.0:
                await sleep(wait)
                with self._lock:
                    wait = self._turn(scope, ticket, clock())
                    granted = self._last
            taken = True
        finally:
            if not taken:
                with self._lock:
                    self._leave(scope, ticket)
        return granted

    def complete(self, scope: str, granted: float, now: float) -> None:
        """The request whose slot was taken at ``granted`` has its answer at ``now``.

        The server counted it somewhere in between, and a slow request (a cold connection,
        a busy server) can reach it long after its slot was taken: counting the slot from
        ``granted`` then lets the next ones land in the same server window. So the request
        counted as in flight until now, and from now on counts at ``now``, the latest moment
        the server can have counted it.
        """
        with self._lock:
            now = max(now, granted)
            for window in self._windows_of(scope):
                window.settle(granted, now)

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


# -- limits as text -------------------------------------------------------------------------

_UNITS = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
}  # fmt: skip
# Bounded digit runs: int() of a 5,000-digit count would raise its own ValueError.
_RATE = re.compile(r"^(\d{1,40})\s*/\s*(\d{1,40}(?:\.\d{1,9})?)?\s*([a-z]+)$", re.ASCII)
_OFF = ("off", "none", "false", "no", "0")
_KEYS = ("send", "all", "burst")


def _config_error(setting: str, reason: str) -> ConfigurationError:
    return ConfigurationError(f"{setting}: {reason}", setting=setting, reason=reason)


def _cut(text: str, limit: int = 40) -> str:
    """``text`` cut at ``limit`` characters for an error: a value of any size (an
    environment variable, a fuzzer's 70,000 characters) is never echoed back whole."""
    return text if len(text) <= limit else text[:limit] + "…"


def parse_rate_limit_items(text: str, *, setting: str = "rate_limits") -> dict[str, Rule] | None:
    """The limits named in ``"send=600/min,all=1000/min,burst=20/s"``, by key; ``None`` for
    ``"off"``. Keys: ``send`` (direct sends), ``all`` (every request), ``burst`` (every
    request, short window); a rate is ``N/unit`` or ``N/<k><unit>`` (``s``, ``min``, ``h``).

    Raises :class:`~qontak.ConfigurationError` naming ``setting`` for anything else.

    >>> parse_rate_limit_items("send=600/min, burst=20/s")
    {'send': Rule(requests=600, per=60.0), 'burst': Rule(requests=20, per=1.0)}
    """
    if not isinstance(text, str):
        raise _config_error(
            setting, f"expected text such as send=60/min, got {type(text).__name__}"
        )
    cleaned = text.strip().lower()
    if cleaned in _OFF:
        return None
    if not cleaned:
        raise _config_error(setting, "empty; write e.g. send=60/min,all=100/min,burst=10/s or off")
    items: dict[str, Rule] = {}
    for raw in cleaned.split(","):
        item = raw.strip()
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key:
            raise _config_error(setting, f"{_cut(item)!r} is not key=N/unit (e.g. send=60/min)")
        if key not in _KEYS:
            raise _config_error(
                setting, f"unknown limit {_cut(key)!r} (use {', '.join(_KEYS)} or off)"
            )
        if key in items:
            raise _config_error(setting, f"{key} is given twice")
        match = _RATE.match(value)
        unit = _UNITS.get(match.group(3)) if match else None
        if match is None or unit is None:
            raise _config_error(
                setting,
                f"{key}={_cut(value)} is not N/unit (e.g. {key}=60/min; units s, min, h)",
            )
        count = int(match.group(1))
        per = float(match.group(2) or 1.0) * unit
        if count < 1 or per <= 0 or count > 10**9 or per > 366 * 86400:
            raise _config_error(
                setting,
                f"{key}={_cut(value)}: needs at least 1 and at most 1,000,000,000 requests "
                "per period, and a period of more than 0 s and at most a year",
            )
        items[key] = Rule(count, per)
    return items


def parse_rate_limits(
    text: str, *, setting: str = "rate_limits"
) -> dict[str, tuple[Rule, ...]] | None:
    """The limiter's rules from text such as ``"send=600/min,all=1000/min,burst=20/s"``;
    ``None`` for ``"off"``. A limit not named keeps its documented default (send 60/min,
    all 100/min, burst 10/s), so raising one never lifts the others by accident.

    >>> parse_rate_limits("send=600/min,all=1000/min,burst=20/s")["all"]
    (Rule(requests=1000, per=60.0), Rule(requests=20, per=1.0))
    >>> parse_rate_limits("off") is None
    True
    """
    items = parse_rate_limit_items(text, setting=setting)
    if items is None:
        return None
    return {
        SCOPE_SEND: (items.get("send", DEFAULT_SEND),),
        SCOPE_ALL: (items.get("all", DEFAULT_ALL), items.get("burst", DEFAULT_BURST)),
    }


#: Every live limiter, for the fork hook below (weak: a limiter is never kept alive by it).
_LIMITERS: weakref.WeakSet[RateLimiter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A fork copies a lock held by another thread of the parent (a task mid-acquire) as held
    # forever, and the parent's waiters as queued forever: the child starts with neither.
    for limiter in list(_LIMITERS):
        limiter._lock = threading.Lock()
        limiter._queues = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
