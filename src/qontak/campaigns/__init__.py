"""Campaigns: one template sent to many recipients, resumable, never twice, never lost.

The ledger (a SQLite file by default) is the single source of truth. Each row's state is
committed *before* its request (``sending``) and *after* it (``accepted`` / ``failed`` /
``unknown``), so a crash leaves only the rows in flight uncertain, and they become
``unknown``, never ``pending``: only :func:`reconcile` (proof from the API) or the caller's
explicit word sends such a row again.

>>> from qontak import AsyncQontak, campaigns
>>> store = campaigns.open_ledger("qontak-campaigns.db")  # doctest: +SKIP
>>> # or campaigns.open_ledger("postgresql://qontak@db.internal/qontak") for many workers
>>> created = campaigns.create(store, "customers.csv", template=tpl, channel=channel,
...                            mapping={"phone": "to_number", "nama": "1"})  # doctest: +SKIP
>>> result = await campaigns.run(client, store, created.campaign.id)  # doctest: +SKIP
>>> settled = await campaigns.reconcile(client, store, created.campaign.id)  # doctest: +SKIP
>>> campaigns.write_report(store, created.campaign.id, "report.html")  # doctest: +SKIP
"""

from __future__ import annotations

from ._create import CheckReport, Created, check, create
from ._demo import DemoOutcome, demo_campaign, write_demo_customers
from ._import import ImportSummary
from ._ledger import (
    TRANSITIONS,
    USER_PAUSE,
    Campaign,
    CampaignState,
    LedgerError,
    Reject,
    Row,
    RowState,
)
from ._mapping import parse_map_items, read_map_file
from ._open import default_target, is_url, ledger_exists, open_ledger, redact
from ._postgres import PostgresStore
from ._reconcile import ReconcileResult, reconcile
from ._report import escape_cell, write_report
from ._runner import RunOptions, RunResult, Stopper, run_campaign
from ._sources import read_records
from ._sqlite import DEFAULT_DB, ENV_DB, SQLiteStore, default_db_path
from ._store import LeasedStore, Store
from ._time import iso_utc
from ._tracking import (
    DEFAULT_POLL_AFTER,
    StatusReport,
    TrackingStore,
    TrackResult,
    WebhookResult,
    apply_webhook_events,
    due_for_polling,
    open_webhook_events,
    refresh_delivery,
    status,
    track_delivery,
)
from ._windows import Window, is_open, next_open, parse_window, zones_for_number
from ._worker import run_worker

run = run_campaign

__all__ = [
    "DEFAULT_DB",
    "DEFAULT_POLL_AFTER",
    "ENV_DB",
    "TRANSITIONS",
    "USER_PAUSE",
    "Campaign",
    "CampaignState",
    "CheckReport",
    "Created",
    "DemoOutcome",
    "ImportSummary",
    "LeasedStore",
    "LedgerError",
    "PostgresStore",
    "ReconcileResult",
    "Reject",
    "Row",
    "RowState",
    "RunOptions",
    "RunResult",
    "SQLiteStore",
    "StatusReport",
    "Stopper",
    "Store",
    "TrackResult",
    "TrackingStore",
    "WebhookResult",
    "Window",
    "apply_webhook_events",
    "check",
    "create",
    "default_db_path",
    "default_target",
    "demo_campaign",
    "due_for_polling",
    "escape_cell",
    "is_open",
    "is_url",
    "iso_utc",
    "ledger_exists",
    "next_open",
    "open_ledger",
    "open_webhook_events",
    "parse_map_items",
    "parse_window",
    "read_map_file",
    "read_records",
    "reconcile",
    "redact",
    "refresh_delivery",
    "run",
    "run_campaign",
    "run_worker",
    "status",
    "track_delivery",
    "write_demo_customers",
    "write_report",
    "zones_for_number",
]
