"""A local Qontak API server that behaves like ``https://api.mekari.com/qontak/chat/v1``.

It is the server's view, not our client's: it checks HMAC signatures and the clock window,
answers in Qontak's envelopes and error texts, enforces rate limits, moves each message
through pending → sent → delivered → read (or failed with a WhatsApp error), and can
misbehave on purpose (seeded faults). Everything it accepted is available as ground truth.

Quick use::

    from qontak.sandbox import Sandbox, serve

    serve()                                   # blocking, http://127.0.0.1:8765
    sandbox = Sandbox()                       # in process: sandbox.app is the ASGI app
    with sandbox.run_in_thread() as url: ...  # real uvicorn on a free port
    sandbox.messages()                        # ground truth
    sandbox.advance(5)                        # move the sandbox clock (statuses, limits)

In process without a socket: ``httpx.Client(transport=SyncASGITransport(sandbox.app))`` or
``httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app))``; :mod:`qontak.testing`
wraps both around a configured ``Qontak`` / ``AsyncQontak``.

Credentials: ``sandbox-client-id`` / ``sandbox-client-secret`` (:data:`SANDBOX_CLIENT_ID`,
:data:`SANDBOX_CLIENT_SECRET`). Base URL for clients: ``<url>/qontak/chat/v1``.

**Loopback only, unless asked.** Those credentials are public and the admin routes have no
authentication, so serving on a non-loopback address (``0.0.0.0``, a LAN address) is refused
unless the sandbox has an admin token and credentials of its own: :func:`remote_config`
(``serve(..., allow_remote=True)``, ``qontak sandbox --allow-remote``) makes both, fresh and
random. The server sheds slow clients (:class:`ServerLimits`, :mod:`._server`), and every
request body is read with a cap (uploads go to disk with a quota, :mod:`._uploads`).

**Seed** (``seed.json`` beside this file; ids are fixed). The ``id`` templates reuse the ids
of the Node client's README examples, so those examples run unchanged:

=================  ====  ======================================  ===================================
name               lang  id                                      kind
=================  ====  ======================================  ===================================
login_otp          id    60cccaa0-ccd9-4efd-bdfb-875859c4b50a    AUTHENTICATION, body {{1}}, URL
                                                                 button "Salin kode" …code={{1}}
login_otp          en    5a4db0c0-0001-4e00-8000-00000000e001    same, "Copy code"
order_update       id    d3e1083c-66ea-410b-b807-1d84182ffa82    text, body {{1}} {{2}}
order_update       en    5a4db0c0-0002-4e00-8000-00000000e002
promo_image        id    34d95207-0b48-4ce0-b589-2b7c1519d457    IMAGE header, no variables
promo_image        en    5a4db0c0-0003-4e00-8000-00000000e003
invoice_document   id    380d1355-0a65-4dc5-be82-308ee7619910    DOCUMENT header, no variables
invoice_document   en    5a4db0c0-0004-4e00-8000-00000000e004
product_video      id    70332b74-e9bd-4829-bb31-c46924e7d3ff    VIDEO header, {{1}} {{2}} {{3}},
                                                                 two QUICK_REPLY buttons
product_video      en    5a4db0c0-0005-4e00-8000-00000000e005
cta_url            id    a36ea83e-1b63-41e9-a91b-bad2390531e9    URL button https://qontak.com/{{1}}
cta_url            en    5a4db0c0-0006-4e00-8000-00000000e006
cta_phone          id    99aa44c1-6573-4a89-b0ca-f272b1b846b4    static PHONE_NUMBER button
cta_phone          en    5a4db0c0-0007-4e00-8000-00000000e007
welcome_message    id    5a4db0c0-0008-4d00-8000-00000000d008    text, no variables
welcome_message    en    5a4db0c0-0008-4e00-8000-00000000e008
pending_promo      id    5a4db0c0-0009-4d00-8000-00000000d009    PENDING
pending_promo      en    5a4db0c0-0009-4e00-8000-00000000e009    PENDING
rejected_promo     id    5a4db0c0-000a-4d00-8000-00000000d00a    REJECTED
rejected_promo     en    5a4db0c0-000a-4e00-8000-00000000e00a    REJECTED
=================  ====  ======================================  ===================================

One channel: ``56b60c3c-0123-46af-958b-32f3ad12ee37`` (``wa_cloud``, active, "Qontak
Sandbox", +6281234500000), also the id used by the Node README examples.

Where each behaviour is documented: signature check :mod:`._signature`; rate limits and
the ``X-RateLimit-Reset`` unit (seconds until reset) :mod:`._ratelimit`; pagination
(``offset`` = 1-based page index) :mod:`._pagination`; send validation and its error texts
:mod:`._validation`; what counts as a JSON body :mod:`._json`; delivery timing and the
**magic recipient numbers** :mod:`._delivery`; faults :mod:`._faults` and
:class:`FaultConfig`; admin routes, their cross-site checks and how uploads are served
:mod:`._admin`; webhooks :mod:`._webhooks`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import uvicorn

from ._config import (
    ENV_FAULTS,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    Clock,
    FaultConfig,
    RateLimitConfig,
    SandboxConfig,
)
from ._delivery import MAGIC_ERRORS, WhatsAppError
from ._faults import API_PREFIX, DroppedConnection, LateAnswer, quiet_dropped_connections
from ._sandbox import DEFAULT_ORGANIZATION_ID, Sandbox, remote_config
from ._server import ServerLimits, binds_loopback_only, uvicorn_config
from ._signature import compute_signature
from ._transport import SyncASGITransport

__all__ = [
    "API_PREFIX",
    "DEFAULT_ORGANIZATION_ID",
    "ENV_FAULTS",
    "MAGIC_ERRORS",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "Clock",
    "DroppedConnection",
    "FaultConfig",
    "LateAnswer",
    "RateLimitConfig",
    "Sandbox",
    "SandboxConfig",
    "ServerLimits",
    "SyncASGITransport",
    "WhatsAppError",
    "binds_loopback_only",
    "compute_signature",
    "remote_config",
    "serve",
    "uvicorn_config",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    db: str | Path | None = None,
    faults: FaultConfig | str | None = None,
    *,
    seed_files: tuple[str | Path, ...] = (),
    delivery_delays: tuple[float, float, float] | None = None,
    rate_limits: RateLimitConfig | None = None,
    webhook_url: str | None = None,
    public_url: str | None = None,
    log_level: str = "info",
    sandbox: Sandbox | None = None,
    allow_remote: bool = False,
    limits: ServerLimits | None = None,
) -> None:
    """Run the sandbox with uvicorn until interrupted (blocking).

    ``faults`` takes a :class:`FaultConfig` or its text form; None reads
    ``QONTAK_SANDBOX_FAULTS`` (no faults when unset). Pass ``sandbox`` to serve one you
    built yourself (the other settings are then ignored).

    A ``host`` that is not loopback raises ValueError, unless ``allow_remote`` is true: the
    sandbox then gets fresh random credentials and an admin token (printed once), or, for
    a ``sandbox`` you built, must already have them (:func:`remote_config`).
    """
    remote = allow_remote
    if not allow_remote and not binds_loopback_only(host):
        raise ValueError(f"{host!r} is not a loopback address; pass allow_remote=True")
    if sandbox is None:
        config = SandboxConfig(
            db=db,
            faults=FaultConfig.parse(faults) if isinstance(faults, str) else faults,
            seed_files=tuple(seed_files),
            rate_limits=rate_limits or RateLimitConfig(),
            webhook_url=webhook_url,
            public_url=public_url,
        )
        if delivery_delays is not None:
            config = replace(config, delivery_delays=delivery_delays)
        if remote:
            config = remote_config(config)
        sandbox = Sandbox(config)
        if remote:
            assert config.credentials is not None
            print(  # the only place these fresh secrets are ever shown
                f"Remote sandbox on {host}:{port}: client id {config.credentials[0]}, "
                f"client secret {config.credentials[1]}, admin token {config.admin_token}",
                flush=True,
            )
    sandbox.check_bind(host)
    quiet_dropped_connections()
    server_config = uvicorn_config(sandbox.app, limits, log_level=log_level, host=host, port=port)
    uvicorn.Server(server_config).run()
