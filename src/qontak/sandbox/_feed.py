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
answers the stored messages in pages for scripts and tests (``{"data": […], "next": <cursor>}``,
see :mod:`._admin`).

Cost: the statuses due since the last read are logged through the due-time index, then one
indexed range read of at most ``limit`` messages: a poll with nothing new reads no message,
however many are stored.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from ._store import FeedEntry
from ._views import ground_truth

if TYPE_CHECKING:
    from . import Sandbox

__all__ = ["DEFAULT_FEED_LIMIT", "MAX_FEED_LIMIT", "inbox_feed"]

DEFAULT_FEED_LIMIT = 200
MAX_FEED_LIMIT = 1000

_PARTS = ("template", "parameters", "rendered")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _part(text: str) -> str:
    """Stored JSON text, passed through as it is unless it holds a NaN or an Infinity (a row
    from before sends were parsed strictly): those become null, so one old row cannot make
    every later poll unreadable."""
    if "NaN" in text or "Infinity" in text:
        return json.dumps(_finite(json.loads(text)), allow_nan=False)
    return text


def _entry(entry: FeedEntry, now: float, delays: tuple[float, float, float]) -> str:
    light = ground_truth(entry.message, now, delays)
    for key in _PARTS:
        del light[key]  # spliced in below from the stored text, in the same place
    # ASCII escapes: a lone surrogate in a stored name must not make the page unencodable.
    head = json.dumps(light, allow_nan=False, separators=(",", ":"))
    return (
        f'{head[:-1]},"template":{_part(entry.template_json)}'
        f',"parameters":{_part(entry.parameters_json)}'
        f',"rendered":{_part(entry.rendered_json)},"order":{entry.position}}}'
    )


def inbox_feed(sandbox: Sandbox, after: int, limit: int, feed_id: str | None) -> bytes:
    """The JSON body of one ``GET /_sandbox/messages?after=`` answer (blocking: run it in a
    thread)."""
    delays = sandbox.config.delivery_delays
    page = sandbox.store.feed(after, min(limit, MAX_FEED_LIMIT), sandbox.now(), delays, feed_id)
    rest = json.dumps(
        {"seq": page.next_after, "feed": page.feed_id, "reset": page.reset, "more": page.more},
        separators=(",", ":"),
    )
    items = ",".join(_entry(entry, page.now, delays) for entry in page.entries)
    return f'{{"data":[{items}],{rest[1:]}'.encode()
