"""The once-per-second ``Date`` cache gives formatdate's answer in any order of calls: a
clock stepping backwards (NTP), several threads sharing one client, negative epochs."""

from __future__ import annotations

import random
import threading
from email.utils import formatdate

from qontak import _auth


def test_a_clock_going_backwards_gets_its_own_date_back() -> None:
    start = 1_764_700_000.25
    # Forwards, back a second, back an hour, to the same second again, then far ahead:
    # every answer is the date of that very timestamp, never the last one cached.
    for timestamp in (start, start + 1, start - 1, start - 3600.5, start, start + 86_400, -0.5):
        assert _auth.format_date(timestamp) == formatdate(timestamp, usegmt=True)


def test_threads_sharing_the_cache_each_get_their_own_date() -> None:
    wrong: list[tuple[float, str]] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(2_000):
            # More distinct seconds than the cache holds, so threads evict each other's.
            timestamp = 1_764_700_000 + rng.randrange(40) + rng.random() * 0.999
            got = _auth.format_date(timestamp)
            if got != formatdate(timestamp, usegmt=True):
                wrong.append((timestamp, got))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
