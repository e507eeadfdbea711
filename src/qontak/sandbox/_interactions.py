"""Webhook registration (``PUT``/``GET /message_interactions``) and retrying failed callbacks.

Registration is what Qontak documents (spec §5): the body ``{"receive_message_from_agent",
"receive_message_from_customer", "status_message", "url"}`` (booleans and an absolute http(s)
URL), and the answer echoes the per-event configuration in Qontak's envelope::

    {"status": "success", "data": {"status_message": {"enabled": true, "webhooks":
        [{"id": "…", "event": "message_interaction", "url": "…"}]}, …}}

The settings are kept in the store's ``meta`` (a file database keeps them across restarts). Once
registered, status changes go to the registered URL when ``status_message`` is on (and nowhere
when it is off); with no registration, to ``config.webhook_url``. Registering while the server
runs starts the webhook poller.

Retries: a provider does not give up on a receiver at its first failure, nor hammer it. A status
whose POST fails (no connection, or no 2xx) is queued **per message** and tried again after
``initial``, ``initial·factor``, … seconds, at most ``cap`` apart (sandbox clock, so a fake clock
drives it), and dropped after ``max_attempts`` tries. A message with a queued status sends its
later statuses behind it (``read`` never overtakes ``delivered``); other messages go on. The
queue lives in memory: the poller's high-water mark is past what it holds (and the change log
no longer keeps it), so what is still queued when the sandbox stops is not posted after a
restart. At most :data:`MAX_QUEUED` statuses wait in memory: at that cap the poller takes
no new changes until the queue drains, and they wait in the store's change log instead.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..resources.webhooks import REGISTRATION_PATH
from ._api import error_response, success
from ._faults import API_PREFIX
from ._json import BodyTooLarge, InvalidJson, parse_json, read_body

if TYPE_CHECKING:
    from . import Sandbox
    from ._store import Store

__all__ = [
    "EVENTS",
    "MAX_QUEUED",
    "RetryPolicy",
    "RetryQueue",
    "interaction_routes",
    "registered_settings",
    "status_url",
]

_log = logging.getLogger(__name__)

#: The callbacks a registration switches on or off, in Qontak's body order.
EVENTS = ("receive_message_from_agent", "receive_message_from_customer", "status_message")
_META_KEY = "message_interactions"
_MAX_BODY = 16 * 1024


# -- registration --------------------------------------------------------------------------
def registered_settings(store: Store) -> dict[str, Any] | None:
    """The last registration (``{flag: bool, …, "url": str}``), or None when never registered."""
    raw = store.get_meta(_META_KEY)
    if raw is None:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


def status_url(sandbox: Sandbox) -> str | None:
    """Where status changes go now: the registered URL (if ``status_message`` is on), else,
    with no registration at all, ``config.webhook_url``."""
    settings = registered_settings(sandbox.store)
    if settings is None:
        return sandbox.config.webhook_url
    url = settings.get("url")
    return url if settings.get("status_message") and isinstance(url, str) else None


def _check(payload: Any) -> dict[str, Any] | str:
    """The settings to keep, or the one-line reason the body is refused."""
    if not isinstance(payload, Mapping):
        return "body must be a JSON object"
    settings: dict[str, Any] = {}
    for name in EVENTS:
        value = payload.get(name, False)
        if not isinstance(value, bool):
            return f"{name} must be true or false"
        settings[name] = value
    url = payload.get("url")
    if not isinstance(url, str) or not url:
        return "url is required"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "url must be an absolute http(s) URL"
    if len(url) > 2048 or any(ord(c) < 33 for c in url):
        return "url must be at most 2048 printable characters"
    settings["url"] = url
    return settings


def _echo(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Qontak's answer: per event, whether it is on and the webhooks it posts to."""
    out: dict[str, Any] = {}
    url = settings.get("url") if settings else None
    for name in EVENTS:
        enabled = bool(settings and settings.get(name))
        hooks = []
        if enabled and isinstance(url, str):
            hook_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}:{url}"))
            hooks.append({"id": hook_id, "event": "message_interaction", "url": url})
        out[name] = {"enabled": enabled, "webhooks": hooks}
    return out


def interaction_routes(sandbox: Sandbox) -> list[Route]:
    """``PUT`` and ``GET`` of the registration path (behind the gateway like every API route)."""

    async def put(request: Request) -> Response:
        try:
            raw = await read_body(request, _MAX_BODY)
        except BodyTooLarge:
            return error_response(413, ["Request Entity Too Large"])
        try:
            payload = parse_json(raw)
        except InvalidJson:
            return error_response(400, ["Invalid JSON payload"])
        checked = _check(payload)
        if isinstance(checked, str):
            return error_response(422, [checked])
        sandbox.store.set_meta(_META_KEY, json.dumps(checked))
        # A URL registered while serving takes effect now, as with Qontak.
        if sandbox.webhooks.serving:
            sandbox.webhooks.start()
        return success(_echo(checked))

    async def get(request: Request) -> Response:
        return success(_echo(registered_settings(sandbox.store)))

    path = API_PREFIX + REGISTRATION_PATH
    return [Route(path, put, methods=["PUT"]), Route(path, get, methods=["GET"])]


# -- retries -------------------------------------------------------------------------------
@dataclass
class RetryPolicy:
    """When to try a failed callback again: ``initial·factor^(n-1)`` seconds after the n-th
    failure, at most ``cap``; dropped after ``max_attempts`` failures."""

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    max_attempts: int = 20

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed attempts (1 or more)."""
        return float(min(self.cap, self.initial * self.factor ** max(0, failures - 1)))


@dataclass
class _Queued:
    status: str
    body: str


@dataclass
class _Message:
    items: deque[_Queued] = field(default_factory=deque)
    failures: int = 0
    next_at: float = 0.0


#: Statuses a :class:`RetryQueue` holds at most (a few MB of payloads).
MAX_QUEUED = 10_000


class RetryQueue:
    """Failed status callbacks, per message, each message with its own backoff.

    It holds at most ``max_size`` statuses: while a receiver is down every new status would
    join it, so without a cap it grows by one payload per change for as long as the outage
    lasts. At the cap the poller stops taking new changes (:attr:`full`) and leaves them in
    the store's change log, where its high-water mark finds them again once the queue
    drains; nothing is dropped for the cap.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        policy: RetryPolicy | None = None,
        max_size: int = MAX_QUEUED,
    ) -> None:
        if max_size < 1:
            # A queue that is always full would stop the webhook poller for good.
            raise ValueError("max_size must be at least 1")
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.max_size = max_size
        self.dropped = 0
        """Statuses given up after ``max_attempts`` failures."""
        self.retried = 0
        """Attempts made from the queue (successful or not)."""
        self._messages: dict[str, _Message] = {}
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return self._size

    @property
    def full(self) -> bool:
        """Whether the queue holds ``max_size`` statuses (take no new changes until it
        drains)."""
        with self._lock:
            return self._size >= self.max_size

    def holds(self, message_id: str) -> bool:
        """Whether the message has a status waiting (its later ones must queue behind it)."""
        with self._lock:
            return message_id in self._messages

    def defer(self, message_id: str, status: str, body: str, *, failed: bool) -> None:
        """Queue one status (once); ``failed`` when a POST of it just failed."""
        with self._lock:
            message = self._messages.setdefault(message_id, _Message())
            if any(q.status == status for q in message.items):
                return
            message.items.append(_Queued(status, body))
            self._size += 1
            if failed and len(message.items) == 1:
                message.failures = 1
                message.next_at = self.clock() + self.policy.delay(1)

    def clear(self) -> None:
        """Forget everything queued."""
        with self._lock:
            self._messages.clear()
            self._size = 0

    def flush(
        self,
        post: Callable[[str], bool],
        *,
        still_due: Callable[[str, str], bool],
        done: Callable[[str, str], object],
    ) -> int:
        """Try the messages whose backoff is over, oldest status first; returns how many
        were posted. ``still_due(message_id, status)`` False drops a status silently (a reset
        removed it); ``done`` records a status as posted (or given up)."""
        now = self.clock()
        with self._lock:
            ready = [mid for mid, m in self._messages.items() if m.next_at <= now]
        posted = 0
        for message_id in ready:
            while True:
                with self._lock:
                    message = self._messages.get(message_id)
                    if message is None or not message.items:
                        self._messages.pop(message_id, None)
                        break
                    head = message.items[0]
                if not still_due(message_id, head.status):
                    self._pop(message_id)
                    continue
                self.retried += 1
                if post(head.body):
                    done(message_id, head.status)
                    self._pop(message_id)
                    posted += 1
                    continue
                if self._failed(message_id):
                    _log.warning(
                        "webhook for message %s (%s) dropped after %d attempts",
                        message_id,
                        head.status,
                        self.policy.max_attempts,
                    )
                    done(message_id, head.status)
                    continue
                break
        return posted

    def _pop(self, message_id: str) -> None:
        with self._lock:
            message = self._messages.get(message_id)
            if message is None:
                return
            if message.items:
                message.items.popleft()
                self._size -= 1
            message.failures = 0
            message.next_at = 0.0
            if not message.items:
                del self._messages[message_id]

    def _failed(self, message_id: str) -> bool:
        """Count one more failure of the head; True when it is dropped for good."""
        with self._lock:
            message = self._messages[message_id]
            message.failures += 1
            if message.failures >= self.policy.max_attempts:
                self.dropped += 1
                message.items.popleft()
                self._size -= 1
                message.failures = 0
                message.next_at = 0.0
                if not message.items:
                    del self._messages[message_id]
                return True
            message.next_at = self.clock() + self.policy.delay(message.failures)
            return False
