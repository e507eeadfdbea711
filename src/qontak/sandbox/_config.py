"""Settings of one sandbox run: limits, delivery timing, faults, seed files.

Everything here is a plain frozen dataclass so a run can be described, printed and replayed.
Fault settings also have a one-line text form (for ``QONTAK_SANDBOX_FAULTS`` and the CLI)::

    seed=1,error_before=0.1,error_after=0.05,rate_limit=0.1,latency=0.2,drop_before=0.05,lost_response=0.05

Extra keys: ``latency_seconds`` (delay added by a latency fault, default 1.0),
``accept_late_seconds`` (how late an ``accept_late`` answer comes, default 35.0: past the
SDK's 30-second read timeout) and ``scope`` (``all``: every ``/qontak/chat/v1`` request,
the default; ``send``: only ``POST /broadcasts/whatsapp/direct``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ENV_FAULTS",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "Clock",
    "FaultConfig",
    "RateLimitConfig",
    "SandboxConfig",
]

#: Credentials every sandbox accepts unless told otherwise (they guard nothing: loopback only).
SANDBOX_CLIENT_ID = "sandbox-client-id"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret"

#: Environment variable holding a fault specification (see :meth:`FaultConfig.parse`).
ENV_FAULTS = "QONTAK_SANDBOX_FAULTS"

#: A clock returns the current time as epoch seconds. Injected so tests never sleep.
Clock = Callable[[], float]

_FAULT_FRACTIONS = (
    "error_before",
    "drop_before",
    "rate_limit",
    "error_after",
    "lost_response",
    "accept_late",
)


@dataclass(frozen=True)
class FaultConfig:
    """Which fraction of API requests misbehave, and how. All fractions default to 0 (off).

    Each ``/qontak/chat/v1`` request draws from ``random.Random(seed)`` in arrival order, so
    the same seed and the same request sequence give the same faults. At most one of the
    outcome faults hits a request; ``latency`` is drawn independently and may add to one.
    """

    seed: int = 0
    error_before: float = 0.0
    """Answer 503 without acting (nothing stored)."""
    error_after: float = 0.0
    """Act (a send is stored and delivered), then answer 500 instead of the real response."""
    rate_limit: float = 0.0
    """Answer 429 without acting, whatever the real limits say."""
    latency: float = 0.0
    """Wait ``latency_seconds`` before handling the request."""
    latency_seconds: float = 1.0
    drop_before: float = 0.0
    """Drop the connection without acting."""
    lost_response: float = 0.0
    """Act (a send is stored), then drop the connection: the client never sees the answer."""
    scope: Literal["all", "send"] = "all"
    accept_late: float = 0.0
    """Act (a send is stored), then hold the real answer back for ``accept_late_seconds``:
    a client with a shorter timeout gives up on a message that was accepted."""
    accept_late_seconds: float = 35.0

    def __post_init__(self) -> None:
        # Types first: the admin route builds this from client JSON, and a wrong type used
        # to surface later as a TypeError deep in random.Random or a comparison.
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an integer, not {self.seed!r}")
        for name in (*_FAULT_FRACTIONS, "latency", "latency_seconds", "accept_late_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, not {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, not {value!r}")
        for name in (*_FAULT_FRACTIONS, "latency"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault fraction {name}={value} must be between 0 and 1")
        total = sum(getattr(self, name) for name in _FAULT_FRACTIONS)
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault fractions add up to {total:.3f}, more than 1")
        if self.latency_seconds < 0:
            raise ValueError("latency_seconds must not be negative")
        if self.accept_late_seconds < 0:
            raise ValueError("accept_late_seconds must not be negative")
        if self.scope not in ("all", "send"):
            raise ValueError("scope must be 'all' or 'send'")

    @property
    def enabled(self) -> bool:
        """Whether any fault can happen at all."""
        return any(getattr(self, name) > 0 for name in (*_FAULT_FRACTIONS, "latency"))

    @classmethod
    def parse(cls, text: str) -> FaultConfig:
        """Build from ``"seed=1,error_before=0.1,…"`` (commas or spaces between items).

        An empty string or ``"off"`` gives no faults. Unknown keys raise ValueError so a typo
        never silently runs a clean test.
        """
        text = text.strip()
        if not text or text.lower() in ("off", "none", "0"):
            return cls()
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in text.replace(" ", ",").split(","):
            if not item:
                continue
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise ValueError(f"unknown fault setting {item!r}; known: {', '.join(known)}")
            raw = raw.strip()
            if key == "seed":
                values[key] = int(raw)
            elif key == "scope":
                values[key] = raw
            else:
                values[key] = float(raw)
        return cls(**values)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> FaultConfig:
        """Read :data:`ENV_FAULTS`; unset means no faults."""
        env = os.environ if environ is None else environ
        return cls.parse(env.get(ENV_FAULTS, ""))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as served by ``GET /_sandbox/faults``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        """The one-line text form, accepted back by :meth:`parse`."""
        return ",".join(f"{k}={v}" for k, v in self.to_dict().items())

    def with_updates(self, **changes: Any) -> FaultConfig:
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class RateLimitConfig:
    """Per-client request limits, counted in fixed windows of the sandbox clock.

    Defaults follow the docs: 60 direct sends a minute (Qontak's OpenAPI note) and 100
    requests a minute with bursts of at most 10 a second overall (the Node client's README).
    """

    enabled: bool = True
    direct_per_minute: int = 60
    overall_per_minute: int = 100
    burst_per_second: int = 10

    @classmethod
    def parse(cls, text: str) -> RateLimitConfig:
        """From ``"send=600/min,all=1000/min,burst=20/s"`` (the client's syntax) or ``"off"``;
        limits not named keep their defaults. ValueError with a one-line reason."""
        from ._ratelimit import parse_config

        return parse_config(text)

    def describe(self) -> str:
        """The text form, accepted back by :meth:`parse`."""
        from ._ratelimit import describe_config

        return describe_config(self)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything that shapes one sandbox run."""

    db: str | Path | None = None
    """SQLite file; None keeps all state in memory."""
    clock: Clock = time.time
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    faults: FaultConfig | None = None
    """None reads :data:`ENV_FAULTS` (no faults when unset); pass ``FaultConfig()`` to force off."""
    delivery_delays: tuple[float, float, float] = (0.5, 1.0, 2.0)
    """Seconds after acceptance at which a message becomes sent, delivered and read."""
    seed: bool = True
    """Load the built-in channel, templates and credentials."""
    seed_files: tuple[str | Path, ...] = ()
    """Extra YAML/JSON seed files loaded after the built-in seed."""
    public_url: str | None = None
    """Base URL put in upload links; None uses the URL the request came in on."""
    max_body_bytes: int = 1024 * 1024
    """JSON bodies above this size get 413."""
    max_upload_bytes: int = 100 * 1024 * 1024
    """Uploads above this size get 413 (WhatsApp's own document limit)."""
    webhook_url: str | None = None
    """Where to POST message status changes; None disables webhooks."""
    webhook_poll_seconds: float = 0.25
    upload_dir: str | Path | None = None
    """Folder for uploaded files; None: ``<db>.uploads`` beside the ``db`` file, or (in
    memory) a temporary folder removed when the sandbox closes."""
    max_upload_total_bytes: int = 1024 * 1024 * 1024
    """All stored uploads together; beyond it ``POST /file_uploader`` gets 413 until a reset."""
    credentials: tuple[str, str] | None = None
    """The client id and secret to accept instead of the well-known default pair."""
    admin_token: str | None = None
    """Required by the ``/_sandbox`` admin routes when set (serving beyond loopback)."""
    allowed_hosts: tuple[str, ...] = ()
    """Names accepted as ``Host`` on admin routes besides loopback ones (``--host``)."""
    max_events: int = 200_000
    """Status changes kept for the webhook poller (the newest); older ones are removed and
    counted (``sandbox.store.events_dropped``). Changes it has posted are removed anyway;
    while there is a webhook URL, none it has still to post is removed for this cap."""

    def __post_init__(self) -> None:
        delays = self.delivery_delays
        if len(delays) != 3 or any(d < 0 for d in delays) or list(delays) != sorted(delays):
            raise ValueError("delivery_delays must be three non-decreasing, non-negative numbers")
        if not isinstance(self.max_events, int) or self.max_events < 1:
            raise ValueError("max_events must be a whole number of at least 1")
