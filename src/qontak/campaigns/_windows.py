"""Send windows (quiet hours) in each recipient's local time: pure functions, no clock.

A window ``08:00-21:00`` means "send only between 08:00 and 21:00 where the recipient is".
``21:00-08:00`` (end before start) is a window across midnight. Indonesia spans three zones
(WIB ``Asia/Jakarta`` UTC+7, WITA ``Asia/Makassar`` UTC+8, WIT ``Asia/Jayapura`` UTC+9) and
``phonenumbers`` maps many Indonesian *mobile* numbers to several of them (mobiles are not
tied to a region: ``62811…`` to WIB and WITA), so for such a number the window must hold in
every one of its zones: across WIB and WIT, 08:00–21:00 means 08:00 WIT (06:00 WIB) to
21:00 WIB. A ``timezone`` column overrides the guess; a number phonenumbers cannot place is
read as :data:`FALLBACK_ZONE`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_LONGEST_PREFIX

from ..errors import ValidationError

__all__ = [
    "FALLBACK_ZONE",
    "Window",
    "is_open",
    "next_open",
    "parse_window",
    "zones_for_number",
    "zones_key",
]

#: Used when phonenumbers cannot place a number: the default region's (Indonesia's) main zone.
FALLBACK_ZONE = "Asia/Jakarta"
_HHMM = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-4]):([0-5]\d)\s*$")
#: How far ahead :func:`next_open` looks before saying the window never opens.
_HORIZON_DAYS = 3


@dataclass(frozen=True)
class Window:
    """Local send hours: from ``start`` up to (not including) ``end``."""

    start: time
    end: time
    text: str

    def contains(self, local: time) -> bool:
        """Whether a local wall-clock time is inside the window."""
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # across midnight


def parse_window(text: str) -> Window:
    """``"08:00-21:00"`` → :class:`Window` (``24:00`` means the end of the day).

    >>> parse_window("08:00-21:00").contains(time(20, 59))
    True
    >>> parse_window("8-9")
    Traceback (most recent call last):
    ...
    qontak.errors.ValidationError: window: expected HH:MM-HH:MM (e.g. 08:00-21:00), got '8-9'
    """
    match = _HHMM.match(text or "")
    if not match:
        raise ValidationError(
            "window", f"expected HH:MM-HH:MM (e.g. 08:00-21:00), got {text!r}", code="invalid"
        )
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h2 == 24 and m2:
        raise ValidationError("window", f"{text!r}: the day ends at 24:00", code="invalid")
    start = time(h1, m1)
    end = time.max if h2 == 24 else time(h2, m2)
    if start == end:
        raise ValidationError("window", f"{text!r} is empty", code="invalid")
    return Window(start, end, f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}")


def zone(name: str) -> ZoneInfo:
    """A time zone by IANA name; ``ValidationError("timezone", …)`` when unknown."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            "timezone", f"{name!r} is not a time zone such as Asia/Jakarta", code="invalid"
        ) from None


def zones_for_number(number: str, override: str | None = None) -> tuple[str, ...]:
    """The zones a window must hold in for ``number`` (digits with country code).

    >>> zones_for_number("628111234567")
    ('Asia/Jakarta', 'Asia/Makassar')
    >>> zones_for_number("6281234567890", override="Asia/Makassar")
    ('Asia/Makassar',)
    """
    if override and override.strip():
        return (zone(override).key,)
    # phonenumbers decides by a prefix of at most TIMEZONE_LONGEST_PREFIX digits (and the
    # number type, which follows from the prefix and the length), so those are the cache key:
    # an import of a million rows parses each prefix once instead of every number.
    key = (number[:TIMEZONE_LONGEST_PREFIX], len(number))
    found = _ZONE_CACHE.get(key)
    if found is None:
        if len(_ZONE_CACHE) > 10_000:
            _ZONE_CACHE.clear()
        found = _ZONE_CACHE[key] = _zones_of(number)
    return found


_ZONE_CACHE: dict[tuple[str, int], tuple[str, ...]] = {}


def _zones_of(number: str) -> tuple[str, ...]:
    try:
        parsed = phonenumbers.parse("+" + number)
    except phonenumbers.NumberParseException:
        return (FALLBACK_ZONE,)
    found = [z for z in phone_timezone.time_zones_for_number(parsed) if z != "Etc/Unknown"]
    return tuple(sorted(set(found))) or (FALLBACK_ZONE,)


def zones_key(zones: Iterable[str]) -> str:
    """The stored form of a zone set: sorted names joined by ``|``."""
    return "|".join(sorted(set(zones)))


def is_open(window: Window | None, zones: str | Iterable[str], now: float) -> bool:
    """Whether ``window`` holds at epoch ``now`` in every one of ``zones`` (``None``: always).

    >>> w = parse_window("08:00-21:00")
    >>> noon_utc = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc).timestamp()
    >>> is_open(w, "Asia/Jakarta", noon_utc), is_open(w, "Asia/Jayapura", noon_utc)
    (True, False)
    """
    if window is None:
        return True
    names = zones.split("|") if isinstance(zones, str) else list(zones)
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    return all(window.contains(moment.astimezone(zone(n)).time()) for n in names)


def next_open(window: Window | None, zones: str | Iterable[str], now: float) -> float | None:
    """The first epoch time ``>= now`` at which the window holds in all ``zones``; ``None``
    when it never does (a window too narrow for zones hours apart).

    The intersection of the zones' open intervals starts either now or at some zone's own
    opening time, so only those instants need checking.
    """
    if window is None or is_open(window, zones, now):
        return now
    names = zones.split("|") if isinstance(zones, str) else list(zones)
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    candidates: list[float] = []
    for name in names:
        tz = zone(name)
        local = moment.astimezone(tz)
        for days in range(-1, _HORIZON_DAYS + 1):
            day = (local + timedelta(days=days)).date()
            opening = datetime.combine(day, window.start, tzinfo=tz).timestamp()
            if opening >= now:
                candidates.append(opening)
    for at in sorted(candidates):
        if is_open(window, names, at):
            return at
    return None
