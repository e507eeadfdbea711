"""The :class:`Sandbox` object: configuration, SQLite state, clock and the ASGI app together."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.types import ASGIApp

from ._admin import host_name
from ._api import broadcast_record, new_message
from ._app import build_app
from ._config import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    RateLimitConfig,
    SandboxConfig,
)
from ._delivery import iso
from ._faults import FaultInjector, quiet_dropped_connections
from ._ratelimit import RateLimiter
from ._server import ServerLimits, binds_loopback_only, uvicorn_config
from ._store import Store
from ._uploads import UploadStorage
from ._validation import ValidSend
from ._views import broadcast_view, ground_truth
from ._webhooks import WebhookDispatcher

__all__ = ["DEFAULT_ORGANIZATION_ID", "Sandbox", "remote_config"]

#: Organization of the built-in seed (every object the sandbox serves belongs to it).
DEFAULT_ORGANIZATION_ID = "7c1f6d0e-5a1b-4c53-9a1e-5a4db0c0ffee"

_TEMPLATE_DEFAULTS: dict[str, Any] = {
    "header": None,
    "footer": None,
    "buttons": [],
    "status": "APPROVED",
    "category": "MARKETING",
    "quality_rating": None,
    "quality_rating_text": "Neutral",
    "type": "campaign",
}
_TEMPLATE_KEYS = (
    "id",
    "organization_id",
    "name",
    "language",
    "header",
    "body",
    "footer",
    "buttons",
    "status",
    "category",
    "quality_rating",
    "quality_rating_text",
    "type",
)


def _read_seed(source: str | Path) -> dict[str, Any]:
    path = Path(source)
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a seed file holds a mapping with credentials/channels/templates")
    return data


def remote_config(
    config: SandboxConfig, credentials: tuple[str, str] | None = None
) -> SandboxConfig:
    """``config`` made fit to serve beyond loopback: a fresh random admin token, and fresh
    random credentials unless ``credentials`` gives the caller's own (never the default
    pair, which everyone knows). Print the result's secrets once: nothing else shows them.
    """
    if credentials is None:
        credentials = (f"sandbox-{secrets.token_hex(4)}", secrets.token_urlsafe(32))
    elif credentials[1] == SANDBOX_CLIENT_SECRET or not all(credentials):
        raise ValueError("serving beyond loopback needs a client secret of your own")
    return replace(config, credentials=credentials, admin_token=secrets.token_urlsafe(32))


class Sandbox:
    """A local Qontak API server: state, clock and the ASGI app (:attr:`app`).

    >>> sandbox = Sandbox()                       # in-memory, seeded, real clock
    >>> with sandbox.run_in_thread() as base_url: # a real uvicorn on a free port
    ...     base_url.startswith("http://127.0.0.1:")  # base_url + "/qontak/chat/v1"
    True

    Or in process, with no socket: ``httpx.Client(transport=httpx.ASGITransport(sandbox.app))``
    (async) or ``starlette.testclient.TestClient(sandbox.app)`` (sync).
    """

    def __init__(self, config: SandboxConfig | None = None, **changes: Any) -> None:
        config = config or SandboxConfig()
        if changes:
            config = replace(config, **changes)
        if config.admin_token is not None:
            if len(config.admin_token) < 16:
                raise ValueError("admin_token must be at least 16 characters")
            if config.credentials is None or config.credentials[1] == SANDBOX_CLIENT_SECRET:
                raise ValueError("with an admin token, credentials must not be the default pair")
        self.config = config
        self._offset = 0.0
        self._lock = threading.Lock()
        self.admin_hosts: set[str] = set()
        """Names besides loopback ones the admin routes answer to (see :mod:`._admin`)."""
        for name in config.allowed_hosts:
            self.allow_host(name)
        if config.public_url:
            self.allow_host(urlsplit(config.public_url).netloc)
        self.store = Store(config.db, max_events=config.max_events)
        self.uploads = UploadStorage(
            self.store,
            folder=config.upload_dir,
            db=config.db,
            quota=config.max_upload_total_bytes,
        )
        """Where uploaded files are kept (see :mod:`._uploads`)."""
        self.limiter = RateLimiter(config.rate_limits)
        faults = config.faults if config.faults is not None else FaultConfig.from_env()
        self.faults = FaultInjector(faults)
        self.webhooks = WebhookDispatcher(self)
        self.requests: Counter[tuple[str, str]] = Counter()
        """API requests received, by ``(method, path)`` (see :meth:`request_count`)."""
        self._load_configured_seeds()
        starlette_app, stack = build_app(self)
        self.starlette: Starlette = starlette_app
        self.app: ASGIApp = stack
        """The ASGI app to serve or to mount in an in-process transport."""

    # -- time -----------------------------------------------------------------------------
    def now(self) -> float:
        """The sandbox clock: ``config.clock()`` plus any :meth:`advance`."""
        return self.config.clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox clock forward (delivery statuses, rate-limit windows, HMAC window).

        Beyond 300 s, clients signing with the real time fall outside the HMAC window.
        """
        with self._lock:
            self._offset += seconds

    # -- configuration --------------------------------------------------------------------
    @property
    def organization_id(self) -> str:
        """The organization every served object belongs to."""
        return self.store.get_meta("organization_id") or DEFAULT_ORGANIZATION_ID

    @property
    def remote(self) -> bool:
        """Whether this sandbox may serve beyond loopback (it has an admin token)."""
        return self.config.admin_token is not None

    def secret_for(self, client_id: str) -> str | None:
        """The secret the gateway checks a client's signature with (None: unknown client).

        Serving beyond loopback, a pair with the well-known default secret is unknown, even
        one a ``--db`` file kept from an earlier run on loopback.
        """
        secret = self.store.secret_for(client_id)
        if self.remote and secret == SANDBOX_CLIENT_SECRET:
            return None
        return secret

    def _load_configured_seeds(self) -> None:
        own = self.config.credentials
        if own is None:
            # The default pair always works, so `qontak sandbox` needs no setup at all.
            self.add_credentials(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, name="Sandbox API")
        else:
            self.add_credentials(own[0], own[1], name="Sandbox API")
        if self.config.seed:
            seed = resources.files("qontak.sandbox").joinpath("seed.json").read_text("utf-8")
            data = json.loads(seed)
            if own is not None:
                data.pop("credentials", None)  # the seed's pair is the well-known default
            self.load_seed(data)
        for path in self.config.seed_files:
            self.load_seed(path)

    def load_seed(self, source: str | Path | Mapping[str, Any]) -> None:
        """Add credentials, channels and templates from a YAML/JSON file or a mapping.

        Shape: ``{"organization_id": …, "credentials": [{"client_id", "client_secret",
        "name"?, "email"?}], "channels": [<channel>], "templates": [<template>]}``; every
        key is optional and objects with an existing id replace the stored one.
        """
        data = dict(source) if isinstance(source, Mapping) else _read_seed(source)
        if data.get("organization_id"):
            self.store.set_meta("organization_id", str(data["organization_id"]))
        for cred in data.get("credentials") or []:
            self.add_credentials(
                cred["client_id"],
                cred["client_secret"],
                name=cred.get("name"),
                email=cred.get("email"),
            )
        for channel in data.get("channels") or []:
            self.add_channel(channel)
        for template in data.get("templates") or []:
            self.add_template(template)

    def add_credentials(
        self,
        client_id: str,
        client_secret: str,
        *,
        name: str | None = None,
        email: str | None = None,
    ) -> None:
        """Accept another HMAC credential pair (replaces the secret of a known id).

        A sandbox serving beyond loopback refuses the well-known default secret.
        """
        if self.remote and client_secret == SANDBOX_CLIENT_SECRET:
            raise ValueError("serving beyond loopback, the default client secret is refused")
        self.store.put_credentials(
            client_id, client_secret, name or client_id, email or f"{client_id}@sandbox.local"
        )

    def add_channel(
        self, channel: Mapping[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Add (or replace, by id) a channel integration; missing fields get defaults.

        Returns the stored object, e.g. ``sandbox.add_channel(target_channel="wa")["id"]``.
        """
        data = {**(channel or {}), **fields}
        settings = {
            "phone_number_id": "100000000000000",
            "account_name": "Qontak Sandbox",
            "phone_number": "+6281234500000",
            **(data.get("settings") or {}),
        }
        stored = {
            "id": str(data.get("id") or uuid.uuid4()),
            "target_channel": data.get("target_channel", "wa_cloud"),
            "webhook": data.get("webhook", settings.get("phone_number_id", "")),
            "settings": settings,
            "organization_id": data.get("organization_id") or self.organization_id,
            "created_at": data.get("created_at") or iso(self.now()),
            "is_active": bool(data.get("is_active", True)),
        }
        self.store.put_object("channels", stored)
        return stored

    def add_template(
        self, template: Mapping[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Add (or replace, by id) a WhatsApp template; ``name``, ``language`` and ``body``
        are required, everything else has a default (APPROVED, MARKETING, no header…).

        Returns the stored object in the API's template shape.
        """
        data = {**_TEMPLATE_DEFAULTS, **(template or {}), **fields}
        missing = [k for k in ("name", "language", "body") if not data.get(k)]
        if missing:
            raise ValueError(f"template needs {', '.join(missing)}")
        data.setdefault("id", None)
        data["id"] = str(data["id"] or uuid.uuid4())
        data["organization_id"] = data.get("organization_id") or self.organization_id
        if data["status"] != "APPROVED" and "quality_rating_text" not in (template or {}):
            data["quality_rating_text"] = None
        stored = {key: data.get(key) for key in _TEMPLATE_KEYS}
        self.store.put_object("templates", stored)
        return stored

    def templates(self) -> list[dict[str, Any]]:
        """Every template, as ``GET /templates/whatsapp`` serves them."""
        return self.store.list_objects("templates")

    def channels(self) -> list[dict[str, Any]]:
        """Every channel integration, as ``GET /integrations`` serves them."""
        return self.store.list_objects("channels")

    def set_faults(self, faults: FaultConfig | str | None) -> None:
        """Switch fault injection (a config, a ``"seed=1,…"`` spec, or None for off)."""
        if faults is None:
            faults = FaultConfig()
        elif isinstance(faults, str):
            faults = FaultConfig.parse(faults)
        self.faults.configure(faults)

    def set_rate_limits(self, limits: RateLimitConfig) -> None:
        """Switch rate limits (``RateLimitConfig(enabled=False)`` turns them off)."""
        self.limiter.config = limits
        self.limiter.reset()

    # -- traffic --------------------------------------------------------------------------
    def record_send(
        self, valid: ValidSend, client_id: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Store an accepted send; returns the broadcast object for the 201 answer."""
        now = self.now()
        broadcast_id = str(uuid.uuid4())
        message = new_message(valid, broadcast_id, now)
        broadcast = broadcast_record(
            valid,
            broadcast_id=broadcast_id,
            payload=payload,
            organization_id=self.organization_id,
            sender=self.store.sender(client_id),
            now=now,
        )
        self.store.add_send(broadcast=broadcast, client_id=client_id, message=message)
        return broadcast_view(broadcast, [message], now, self.config.delivery_delays, detail=False)

    def broadcast_view(self, stored: dict[str, Any], *, detail: bool) -> dict[str, Any]:
        """A stored broadcast with its current ``message_status_count``."""
        rows = self.store.messages(stored["id"])
        return broadcast_view(stored, rows, self.now(), self.config.delivery_delays, detail=detail)

    def messages(self) -> list[dict[str, Any]]:
        """Ground truth: every accepted message, oldest first (``GET /_sandbox/messages``
        serves the same in pages)."""
        now = self.now()
        delays = self.config.delivery_delays
        return [ground_truth(row, now, delays) for row in self.store.messages()]

    def reset(self, *, full: bool = False) -> None:
        """Forget all traffic, rate-limit counts and the fault sequence (restarted from its
        seed). ``full=True`` also drops added credentials/channels/templates and reloads the
        configured seed."""
        self.store.clear_traffic()
        self.uploads.clear(keep=self.store.upload_ids())
        self.limiter.reset()
        self.faults.reset()
        if full:
            self.store.clear_all()
            self._load_configured_seeds()

    def request_count(self, method: str | None = None, *, path_suffix: str = "") -> int:
        """How many API requests came in (of ``method``, on paths ending ``path_suffix``):
        ``request_count("GET", path_suffix="/whatsapp/log")`` is how many logs were polled."""
        return sum(
            n
            for (m, p), n in list(self.requests.items())
            if (method is None or m == method) and p.endswith(path_suffix)
        )

    # -- webhooks -------------------------------------------------------------------------
    def start_webhooks(self) -> None:
        """Start posting status changes to ``config.webhook_url`` (no-op without one)."""
        self.webhooks.start()

    def stop_webhooks(self) -> None:
        """Stop the webhook poller."""
        self.webhooks.stop()

    # -- serving --------------------------------------------------------------------------
    def allow_host(self, host: str) -> None:
        """Let the admin routes answer requests whose ``Host`` names ``host``."""
        if host.count(":") > 1 and not host.startswith("["):
            host = f"[{host}]"  # a bare IPv6 address, as a Host header would carry it
        name = host_name(host)
        if name:
            self.admin_hosts.add(name)

    def check_bind(self, host: str) -> None:
        """ValueError unless serving on ``host`` is safe: loopback only, or this sandbox has
        an admin token and its own credentials (see :func:`remote_config`). A loopback
        ``host`` given by name (``myhost`` resolving to 127.0.1.1) becomes an admin name."""
        if not self.remote and not binds_loopback_only(host):
            raise ValueError(
                f"{host!r} is not a loopback address: the sandbox's admin routes have no "
                "authentication and its credentials are public; serve beyond loopback only "
                "with remote_config() (qontak sandbox --allow-remote)"
            )
        if not self.remote:
            self.allow_host(host)

    @contextlib.contextmanager
    def run_in_thread(
        self, host: str = "127.0.0.1", port: int = 0, *, limits: ServerLimits | None = None
    ) -> Iterator[str]:
        """Serve with uvicorn in a background thread; yields the base URL
        (``http://127.0.0.1:<port>``, a free port by default) and stops on exit.

        ``limits`` sets the server's connection limits (:class:`ServerLimits`).
        """
        self.check_bind(host)
        config = uvicorn_config(self.app, limits, host=host, port=port)
        server = uvicorn.Server(config)
        quiet_dropped_connections()
        thread = threading.Thread(target=server.run, name="qontak-sandbox", daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the sandbox server did not start")
                time.sleep(0.005)  # waiting for a real socket to open, not for the clock
            bound = server.servers[0].sockets[0].getsockname()
            yield f"http://{host}:{bound[1]}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)

    def close(self) -> None:
        """Stop webhooks, close the database, remove a temporary upload folder."""
        self.stop_webhooks()
        self.store.close()
        self.uploads.close()
