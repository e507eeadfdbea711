"""How campaign times are written for people and programs: UTC, ISO 8601, whole seconds."""

from __future__ import annotations

import math
from datetime import datetime, timezone

__all__ = ["iso_utc"]


def iso_utc(epoch: float | None) -> str | None:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (None stays None).

    Rounded down to the second, so a time printed here and given back as a lower bound
    (``qontak broadcasts --since``) never misses the moment it names.

    >>> iso_utc(1767225600.999)
    '2026-01-01T00:00:00Z'
    >>> iso_utc(None) is None
    True
    """
    if epoch is None:
        return None
    return datetime.fromtimestamp(math.floor(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
