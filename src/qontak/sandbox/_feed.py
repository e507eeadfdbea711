"""The inbox's change feed: ``GET /_sandbox/messages?after=<seq>``.

Every change to a message (accepted, then each status the clock moves it to) takes the next
number of one increasing sequence (see :mod:`._store`). A reader keeps the number it was
last given and asks only for what changed since:

``GET /_sandbox/messages?after=<seq>[&feed=<id>][&limit=<n>]`` →
``{"data": [MESSAGE, …], "seq": <next after>, "feed": <id>, "reset": bool, "more": bool}``

- ``data``: each message whose latest change is numbered above ``after``, once, in the order
  of those changes, in the ground-truth shape of ``GET /_sandbox/messages`` plus ``order``
  (a number that sorts messages as they were accepted). A message that changed again is sent
  again, whole, with its new status.
- ``seq``: pass it as the next ``after``. Nothing is skipped and nothing repeats: every change
  numbered up to ``seq`` has been sent, and every later one will be.
- ``more``: there are more changes than ``limit`` (default 200, at most 1000): ask again now.
- ``feed`` and ``reset``: a reset (``POST /_sandbox/reset``) starts a new feed. A reader that
  sends the ``feed`` it was given (or an ``after`` beyond the newest change, e.g. after a
  restart on a new database) gets ``reset: true``: drop everything held and take this
  response as the beginning.

``after=0`` starts from the beginning (in pages of ``limit``). Without ``after`` the route
still answers ``{"data": [every message]}`` for scripts and tests.

Cost: the statuses due since the last read are logged through the due-time index, then one
indexed range read of at most ``limit`` messages: a poll with nothing new reads no message,
however many are stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._views import ground_truth

if TYPE_CHECKING:
    from . import Sandbox

__all__ = ["DEFAULT_FEED_LIMIT", "MAX_FEED_LIMIT", "inbox_feed"]

DEFAULT_FEED_LIMIT = 200
MAX_FEED_LIMIT = 1000


def inbox_feed(sandbox: Sandbox, after: int, limit: int, feed_id: str | None) -> dict[str, Any]:
    """The body of one ``GET /_sandbox/messages?after=`` answer (blocking: run it in a thread)."""
    delays = sandbox.config.delivery_delays
    page = sandbox.store.feed(after, min(limit, MAX_FEED_LIMIT), sandbox.now(), delays, feed_id)
    return {
        "data": [
            {**ground_truth(row, page.now, delays), "order": position}
            for position, row in page.entries
        ],
        "seq": page.next_after,
        "feed": page.feed_id,
        "reset": page.reset,
        "more": page.more,
    }
