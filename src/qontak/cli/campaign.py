"""``qontak campaign …``: send one template to a file of customers, resumably.

Commands: ``check`` (validate a file, create nothing), ``run`` (import and send; the first
line of output is the campaign id, ``{"campaign_id": …}`` under ``--json``), ``resume``,
``worker`` (one of many senders on a PostgreSQL ledger),
``pause``, ``status [--watch]``, ``reconcile``, ``report --out FILE``, ``list``, ``show``.

The ledger is a SQLite file or a PostgreSQL database: ``--db PATH|postgresql://…``, else
``QONTAK_CAMPAIGN_DB``, else ``./qontak-campaigns.db``. Running the same ``run`` command
again continues the same campaign, unless it was paused with ``pause``: only ``resume``
lifts that (``run`` sends nothing and exits 1). Exit codes: 0 done, 1 paused (API error, template or
channel unusable, network), 2 invalid rows / bad arguments, 3 credentials rejected, 5 rows
whose outcome is unknown (run ``reconcile``), 130 stopped by Ctrl-C / SIGTERM (``resume``
continues).

``--json`` output: ``run`` and ``resume`` print JSON lines (``{"campaign_id"}``, then
events ``{"event": "started"|"progress"|"waiting"|"paused"|"recovered"|"finished", …}``);
the other commands print one JSON document.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import anyio
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import AsyncQontak, Qontak, campaigns
from ._app import QontakSubGroup
from ._output import console, print_json, warn_line
from ._state import State, command, fail, state
from .channels import pick_channel
from .exit_codes import ExitCode
from .templates import resolve_template

__all__ = ["register"]

#: Environment variable: where workers share the rate budget (``--rate-limit-store`` wins).
ENV_RATE_LIMIT_STORE = "QONTAK_RATE_LIMIT_STORE"

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="PATH|URL",
        help="Ledger: a SQLite file, or postgresql://user@host/db for several workers "
        "(default: QONTAK_CAMPAIGN_DB, else ./qontak-campaigns.db).",
    ),
]
RateOpt = Annotated[
    str | None,
    typer.Option(
        "--rate-limits",
        help="Client rate limits, e.g. send=600/min,all=1000/min,burst=20/s, or off "
        "(default: the global --rate-limits, QONTAK_RATE_LIMITS, else Qontak's documented "
        "limits).",
    ),
]
TemplateOpt = Annotated[str, typer.Option("--template", "-t", help="Template name or id.")]
LanguageOpt = Annotated[
    str | None, typer.Option("--language", "-l", help="Template language (when several).")
]
ChannelOpt = Annotated[
    str | None,
    typer.Option("--channel", help="Channel id or phone number (default: the only one)."),
]
MapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        "-m",
        metavar="COL=FIELD",
        help="Map a column: to_number, to_name, timezone, 1, 2…, header, button.N (repeatable).",
    ),
]
MapFileOpt = Annotated[
    Path | None, typer.Option("--map-file", help="A file of COLUMN=FIELD lines (or JSON).")
]
WindowOpt = Annotated[
    str | None,
    typer.Option(
        "--window", metavar="HH:MM-HH:MM", help="Send only then, in each recipient's local time."
    ),
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", "-c", help="Requests in flight at once.")
]
FileArg = Annotated[Path, typer.Argument(metavar="FILE", help="Customers: .csv, .jsonl or .xlsx.")]
IdArg = Annotated[
    str, typer.Argument(metavar="CAMPAIGN_ID", help="Campaign id (see 'qontak campaign list').")
]


# -- helpers ------------------------------------------------------------------------------


def _sync_client(st: State, rate_limits: str | None) -> Qontak:
    return st.client(rate_limits=rate_limits)


def _async_client(st: State, rate_limits: str | None) -> AsyncQontak:
    return st.async_client(rate_limits=rate_limits)


def _worker_client(st: State, rate_limits: str | None, limiter_url: str | None) -> AsyncQontak:
    """The client of a worker: its rate budget shared with every other worker through
    ``limiter_url`` (all workers' sends together stay within the account's limit)."""
    from qontak import SharedRateLimiter, parse_rate_limits

    text = rate_limits or st.rate_limits or os.environ.get("QONTAK_RATE_LIMITS")
    off = text is not None and not parse_rate_limits(text, setting="--rate-limits")
    if not limiter_url or off:
        return st.async_client(rate_limits=rate_limits)  # no store given, or limits off
    return st.async_client(rate_limits=rate_limits, rate_limiter=SharedRateLimiter(limiter_url))


def _store(db: str | None) -> campaigns.Store:
    return campaigns.open_ledger(db)


def _campaign(store: campaigns.Store, campaign_id: str) -> campaigns.Campaign:
    found = store.get_campaign(campaign_id)
    if found is None:
        fail(f"no campaign {campaign_id!r} in {getattr(store, 'path', 'the ledger')}")
    return found


def _mapping(items: list[str] | None, map_file: Path | None) -> dict[str, str]:
    mapping = campaigns.read_map_file(map_file) if map_file is not None else {}
    mapping.update(campaigns.parse_map_items(items or []))
    return mapping


def _start_at(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--start-at: expected an ISO 8601 time such as 2026-01-05T08:00+07:00, got {text!r}")
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as the operator wrote it
    return moment.timestamp()


def _jsonl(data: Any) -> None:
    import json

    typer.echo(json.dumps(data, ensure_ascii=False))


def _rejects_table(rejects: list[campaigns.Reject], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for name in ("line", "field", "reason", "number"):
        table.add_column(name, overflow="fold")
    for r in rejects:
        table.add_row(str(r.line), r.field, r.reason, r.to_number or "")
    return table


def _counts_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v or k in ("accepted", "pending"))


@contextmanager
def _signals(stopper: campaigns.Stopper) -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to stop after the requests in flight; a second one stops
    at once (rows in flight then become ``unknown`` on the next run)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stopper.stopped:
            raise KeyboardInterrupt
        stopper.stop("interrupted" if signum == signal.SIGINT else "terminated")
        warn_line("stopping after the requests in flight (again to stop at once)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Progress:
    """A rich progress bar on stderr, or JSON-lines events on stdout."""

    def __init__(self, as_json: bool, total: int) -> None:
        self.as_json = as_json
        self.bar: Progress | None = None
        self.task: Any = None
        self.total = total

    def __enter__(self) -> _Progress:
        if not self.as_json:
            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=console(stderr=True),
                transient=False,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("sending", total=self.total, detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)

    def __call__(self, event: dict[str, Any]) -> None:
        if self.as_json:
            _jsonl(event)
            return
        assert self.bar is not None
        kind = event["event"]
        if kind == "progress":
            c = event["counts"]
            done = c["accepted"] + c["failed"] + c["unknown"] + c["skipped"]
            eta = event.get("eta_seconds")
            detail = (
                f"[green]accepted {c['accepted']}[/] [red]failed {c['failed']}[/] "
                f"[yellow]unknown {c['unknown']}[/] waiting {c['pending']} "
                f"· {event['rate']:.1f}/s" + (f" · ETA {eta:.0f}s" if eta else "")
            )
            self.bar.update(self.task, completed=done, detail=detail)
        elif kind == "waiting":
            self.bar.console.print(
                f"waiting for the {event['reason'].replace('_', ' ')}: sending resumes at "
                f"{event['until']}"
            )
        elif kind == "paused":
            self.bar.console.print(f"[yellow]paused:[/] {event['reason']}")
        elif kind == "recovered":
            self.bar.console.print(
                f"[yellow]{event['unknown']} rows were in flight when the last run stopped: "
                "now unknown (run reconcile)[/]"
            )


def _paused_by_user(campaign: campaigns.Campaign) -> bool:
    return (
        campaign.state is campaigns.CampaignState.PAUSED
        and campaign.pause_code == campaigns.USER_PAUSE
    )


def _exit_for(result: campaigns.RunResult) -> ExitCode | int:
    if result.stopped and result.counts["pending"]:
        return 130
    if result.state is campaigns.CampaignState.PAUSED:
        return ExitCode.AUTH if result.pause_code == "auth" else ExitCode.API_ERROR
    if result.counts["unknown"]:
        return ExitCode.OUTCOME_UNKNOWN
    return ExitCode.OK


def _run(
    st: State,
    store: campaigns.Store,
    cid: str,
    concurrency: int,
    rate_limits: str | None,
    *,
    lift_user_pause: bool = False,
) -> int:
    stopper = campaigns.Stopper()
    counts = store.counts(cid)
    total = sum(counts.values())

    async def go() -> campaigns.RunResult:
        async with _async_client(st, rate_limits) as client:
            with _Progress(st.json, total) as progress:
                options = campaigns.RunOptions(
                    concurrency=concurrency,
                    stopper=stopper,
                    on_event=progress,
                    lift_user_pause=lift_user_pause,
                )
                return await campaigns.run(client, store, cid, options)

    with _signals(stopper):
        result = anyio.run(go)
    code = _exit_for(result)
    if not st.json:
        out = console()
        out.print(f"campaign {cid}: {result.state.value} · {_counts_line(result.counts)}")
        if result.pause_reason:
            out.print(f"[yellow]{result.pause_reason}[/]")
        if result.counts["unknown"]:
            out.print(
                f"{result.counts['unknown']} rows may or may not have been accepted: "
                f"run 'qontak campaign reconcile {cid}' before sending them again"
            )
        if code == 130 or result.state is campaigns.CampaignState.PAUSED:
            out.print(f"continue with: qontak campaign resume {cid}")
    return int(code)


# -- commands -----------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    """Add ``campaign`` and its subcommands to ``app``."""
    group = typer.Typer(
        cls=QontakSubGroup,
        help="Send one template to a file of customers: resumable, never twice, never lost.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="campaign")

    def prepare(
        client: Qontak, template_ref: str, language: str | None, channel_ref: str | None
    ) -> tuple[Any, Any]:
        template = resolve_template(client, template_ref, language)
        channel = pick_channel(list(client.channels.list()), channel_ref)
        return template, channel

    @group.command("check")
    @command
    def check(
        file: FileArg,
        template: TemplateOpt,
        language: LanguageOpt = None,
        channel: ChannelOpt = None,
        map_items: MapOpt = None,
        map_file: MapFileOpt = None,
        window: WindowOpt = None,
        db: DbOpt = None,
        limit: Annotated[int, typer.Option("--limit", help="Bad rows to list at most.")] = 50,
    ) -> None:
        """Validate FILE against the template and print every bad row; creates nothing.

        JSON: {"rows", "invalid", "duplicates", "opted_out", "ok", "mapping", "rejects":
        [{"line", "field", "reason", "code", "to_number"}]}. Exit 2 when a row is invalid.
        """
        st = state()
        mapping = _mapping(map_items, map_file)
        with _sync_client(st, None) as client:
            tpl, ch = prepare(client, template, language, channel)
        # Opt-outs come from the ledger when there is one; checking never creates one.
        store = _store(db) if campaigns.ledger_exists(db) else None
        try:
            report = campaigns.check(
                file,
                template=tpl,
                channel=ch,
                mapping=mapping,
                window=window,
                region=client.default_region,
                optouts=store,
                limit=max(limit, 0),
            )
        finally:
            if store is not None:
                store.close()
        if st.json:
            print_json(report.to_dict())
        else:
            out = console()
            s = report.summary
            out.print(
                f"{file}: {s.rows} rows ready, {s.invalid} invalid, {s.duplicates} duplicates, "
                f"{s.opted_out} opted out"
            )
            if report.rejects:
                out.print(_rejects_table(report.rejects, "Rows that will not be sent"))
            shown = len(report.rejects)
            if shown < s.problems + s.duplicates + s.opted_out:
                out.print(f"(first {shown} shown; --limit N for more, --json for all fields)")
        if not report.ok:
            raise typer.Exit(int(ExitCode.USAGE))

    @group.command("run")
    @command
    def run(
        file: FileArg,
        template: TemplateOpt,
        language: LanguageOpt = None,
        channel: ChannelOpt = None,
        map_items: MapOpt = None,
        map_file: MapFileOpt = None,
        db: DbOpt = None,
        skip_invalid: Annotated[
            bool, typer.Option("--skip-invalid", help="Send the valid rows even if some are bad.")
        ] = False,
        start_at: Annotated[
            str | None, typer.Option("--start-at", help="Do not send before this ISO 8601 time.")
        ] = None,
        window: WindowOpt = None,
        concurrency: ConcurrencyOpt = 4,
        name: Annotated[str | None, typer.Option("--name", help="A name for the campaign.")] = None,
        rate_limits: RateOpt = None,
    ) -> None:
        """Import FILE and send the template to every valid row (or continue the campaign
        made from the same file and options).

        The first line of output is the campaign id ({"campaign_id": …} under --json).
        """
        st = state()
        if concurrency < 1:
            fail(f"--concurrency must be 1 or more, got {concurrency}")
        mapping = _mapping(map_items, map_file)
        begin = _start_at(start_at)
        if window:
            campaigns.parse_window(window)
        store = _store(db)
        try:
            with _sync_client(st, rate_limits) as client:
                tpl, ch = prepare(client, template, language, channel)

                def upload(path: Path) -> str:
                    return client.file_uploader.upload(path).url

                created = campaigns.create(
                    store,
                    file,
                    template=tpl,
                    channel=ch,
                    mapping=mapping,
                    name=name,
                    window=window,
                    start_at=begin,
                    region=client.default_region,
                    skip_invalid=skip_invalid,
                    uploader=upload,
                )
            cid = created.campaign.id
            if st.json:
                _jsonl({"campaign_id": cid})
            else:
                typer.echo(f"campaign {cid}")
                s = created.summary
                verb = "continuing" if created.existing else "imported"
                console().print(
                    f"{verb}: {s.rows} rows, {s.invalid} invalid, {s.duplicates} duplicates, "
                    f"{s.opted_out} opted out"
                )
            if created.campaign.state is campaigns.CampaignState.BLOCKED:
                bad = [
                    r for r in store.iter_rejects(cid) if r.code not in ("duplicate", "opted_out")
                ][:20]
                if st.json:
                    _jsonl(
                        {
                            "event": "blocked",
                            "campaign_id": cid,
                            "reason": created.campaign.pause_reason,
                            "rejects": [r.to_dict() for r in bad],
                        }
                    )
                else:
                    console().print(_rejects_table(bad, "Invalid rows (first 20)"))
                fail(
                    f"{created.summary.invalid} invalid rows; nothing sent. Fix the file, or "
                    "add --skip-invalid to send the valid rows",
                    ExitCode.USAGE,
                )
            if _paused_by_user(created.campaign):
                # A person's pause holds until a person lifts it: running the same command
                # again (a cron job, a retry loop) must not undo it.
                if st.json:
                    _jsonl(
                        {
                            "event": "paused",
                            "campaign_id": cid,
                            "reason": created.campaign.pause_reason,
                            "code": created.campaign.pause_code,
                        }
                    )
                fail(
                    f"campaign {cid} is paused by the user; nothing sent. Continue it with: "
                    f"qontak campaign resume {cid}",
                    ExitCode.API_ERROR,
                    kind="CampaignPaused",
                )
            raise typer.Exit(_run(st, store, cid, concurrency, rate_limits))
        finally:
            store.close()

    @group.command("resume")
    @command
    def resume(
        campaign_id: IdArg,
        db: DbOpt = None,
        concurrency: ConcurrencyOpt = 4,
        skip_invalid: Annotated[
            bool, typer.Option("--skip-invalid", help="Send the valid rows of a blocked campaign.")
        ] = False,
        rate_limits: RateOpt = None,
    ) -> None:
        """Continue a campaign that stopped, paused or crashed (rows that were in flight
        become unknown: see reconcile)."""
        st = state()
        store = _store(db)
        try:
            found = _campaign(store, campaign_id)
            if found.state is campaigns.CampaignState.BLOCKED:
                if not skip_invalid:
                    fail(f"{found.pause_reason}; add --skip-invalid to send the valid rows")
                store.update_campaign(campaign_id, state=campaigns.CampaignState.READY)
            if st.json:
                _jsonl({"campaign_id": campaign_id})
            raise typer.Exit(
                _run(st, store, campaign_id, concurrency, rate_limits, lift_user_pause=True)
            )
        finally:
            store.close()

    @group.command("worker")
    @command
    def worker(
        db: DbOpt = None,
        campaign_id: Annotated[
            str | None,
            typer.Option("--campaign", help="Work on this campaign only (resumes it if paused)."),
        ] = None,
        concurrency: ConcurrencyOpt = 4,
        lease: Annotated[
            float,
            typer.Option(
                "--lease",
                help="Seconds a claimed row stays this worker's without a heartbeat "
                "(PostgreSQL ledger).",
            ),
        ] = 30.0,
        rate_limit_store: Annotated[
            str | None,
            typer.Option(
                "--rate-limit-store",
                envvar=ENV_RATE_LIMIT_STORE,
                help="Where the workers share the account's rate budget (default: the "
                "--db database when it is PostgreSQL).",
            ),
        ] = None,
        rate_limits: RateOpt = None,
    ) -> None:
        """Send as one of many workers: start any number, on any number of machines, on
        one PostgreSQL ledger (--db postgresql://user@host/db).

        Rows are claimed (one per request in flight) with FOR UPDATE SKIP LOCKED under a
        lease this worker's heartbeat renews; rows of a worker that dies become unknown when
        their lease expires (run reconcile). Pause, status and report work from any host
        meanwhile. On a SQLite ledger only one worker sends a campaign at a time. Without
        --campaign, every ready or running campaign with rows to send, one after the other.
        Exit codes as 'run'.
        """
        st = state()
        if concurrency < 1:
            fail(f"--concurrency must be 1 or more, got {concurrency}")
        if not lease > 0:
            fail(f"--lease must be more than 0 seconds, got {lease}")
        target = db or campaigns.default_target()
        store = (
            campaigns.PostgresStore(target, lease_seconds=lease)
            if campaigns.is_url(target)
            else _store(target)
        )
        limiter_url = rate_limit_store or (target if campaigns.is_url(target) else None)
        stopper = campaigns.Stopper()
        out = console(stderr=True)

        def on_event(event: dict[str, Any]) -> None:
            if st.json:
                _jsonl(event)
            elif event["event"] in ("started", "paused", "recovered", "finished", "waiting"):
                detail = {k: v for k, v in event.items() if k not in ("event", "campaign_id")}
                out.print(f"{event['campaign_id']}: {event['event']} {detail}")

        async def go() -> list[campaigns.RunResult]:
            async with _worker_client(st, rate_limits, limiter_url) as client:
                options = campaigns.RunOptions(
                    concurrency=concurrency, stopper=stopper, on_event=on_event
                )
                return await campaigns.run_worker(
                    client, store, campaign_id=campaign_id, options=options
                )

        try:
            if campaign_id is not None:
                _campaign(store, campaign_id)
            with _signals(stopper):
                results = anyio.run(go)
        finally:
            store.close()
        codes = [int(_exit_for(r)) for r in results]
        if not st.json:
            for r in results:
                console().print(
                    f"campaign {r.campaign_id}: {r.state.value} · {_counts_line(r.counts)}"
                )
            if not results:
                console().print("nothing to send")
        raise typer.Exit(next((c for c in codes if c), 0))

    @group.command("pause")
    @command
    def pause(campaign_id: IdArg, db: DbOpt = None) -> None:
        """Pause a campaign: a run in progress stops after its requests in flight.

        JSON: {"campaign_id", "state": "paused"}.
        """
        store = _store(db)
        try:
            # One conditional write (no look, then write): a campaign that is blocked sends
            # nothing already, and turned into an ordinary pause a later resume would send
            # it without --skip-invalid; a done one has nothing to pause.
            paused = store.update_campaign(
                campaign_id,
                only_from=(
                    campaigns.CampaignState.READY,
                    campaigns.CampaignState.RUNNING,
                    campaigns.CampaignState.PAUSED,
                ),
                state=campaigns.CampaignState.PAUSED,
                pause_reason="paused by user",
                pause_code=campaigns.USER_PAUSE,
            )
            if not paused:
                found = _campaign(store, campaign_id)
                if found.state is campaigns.CampaignState.BLOCKED:
                    fail(
                        f"campaign {campaign_id} is blocked ({found.pause_reason}) and sends "
                        f"nothing; to send its valid rows: qontak campaign resume {campaign_id} "
                        "--skip-invalid",
                        ExitCode.API_ERROR,
                    )
                fail(
                    f"campaign {campaign_id} is {found.state.value}; there is nothing to pause",
                    ExitCode.API_ERROR,
                )
        finally:
            store.close()
        if state().json:
            print_json({"campaign_id": campaign_id, "state": "paused"})
        else:
            console().print(
                f"campaign {campaign_id} paused; continue with 'qontak campaign resume'"
            )

    @group.command("status")
    @command
    def status(
        campaign_id: IdArg,
        db: DbOpt = None,
        watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until final.")] = False,
        refresh: Annotated[
            bool,
            typer.Option("--refresh/--no-refresh", help="Read delivery statuses from the API."),
        ] = True,
        max_requests: Annotated[
            int, typer.Option("--max-requests", help="API requests per refresh at most.")
        ] = 20,
        interval: Annotated[
            float, typer.Option("--interval", help="Seconds between refreshes with --watch.")
        ] = 10.0,
        rate_limits: RateOpt = None,
        webhook_db: Annotated[
            Path | None,
            typer.Option(
                "--webhook-db",
                help="Event store of 'qontak webhooks serve' (default: the ledger's file, "
                "when a receiver writes there).",
            ),
        ] = None,
        poll_after: Annotated[
            float,
            typer.Option(
                "--poll-after",
                min=0,
                help="With webhooks: poll only rows with no event this many seconds after "
                "they were accepted.",
            ),
        ] = campaigns.DEFAULT_POLL_AFTER,
    ) -> None:
        """Counts per state and delivery status, failures grouped by reason; delivery from
        webhook events when a receiver feeds the ledger, polling only what they miss.

        JSON: {"campaign", "counts", "delivery", "failures": [{"kind", "code", "reason",
        "count"}], "rejects", "tracking": {"by_webhook", "by_polling", "requests",
        "high_water_mark"}, "refresh": {"updated", "requests", "complete", "webhook_events",
        "from_webhooks", "polled"} | null}.
        """
        st = state()
        store = _store(db)
        events = None
        try:
            _campaign(store, campaign_id)
            events = campaigns.open_webhook_events(getattr(store, "path", None), webhook_db)
            while True:
                tracked = None
                if refresh or events is not None:
                    # Webhook events cost nothing; a client is opened only to poll.
                    polling = refresh and (
                        events is None
                        or campaigns.due_for_polling(store, campaign_id, poll_after=poll_after)
                    )

                    async def track(polling: bool) -> campaigns.TrackResult:
                        if not polling:
                            return await campaigns.track_delivery(
                                None, store, campaign_id, webhooks=events
                            )
                        async with _async_client(st, rate_limits) as client:
                            return await campaigns.track_delivery(
                                client,
                                store,
                                campaign_id,
                                webhooks=events,
                                poll_after=poll_after,
                                max_requests=max_requests,
                            )

                    tracked = anyio.run(track, bool(polling))
                report = campaigns.status(store, campaign_id)
                _show_status(st, report, tracked)
                pending = report.counts["pending"] + report.counts["sending"]
                delivery_open = (
                    report.delivery.get("none", 0)
                    + report.delivery.get("pending", 0)
                    + report.delivery.get("sent", 0)
                    + report.delivery.get("delivered", 0)
                )
                if not watch or (not pending and not delivery_open):
                    break
                time.sleep(interval)
        finally:
            store.close()
            if events is not None:
                events.close()

    @group.command("reconcile")
    @command
    def reconcile(
        campaign_id: IdArg,
        db: DbOpt = None,
        settle_after: Annotated[
            float | None,
            typer.Option(
                "--settle-after",
                help="Seconds after an attempt before its absence is proof (default: twice "
                "the request timeout).",
            ),
        ] = None,
        resend_unknown: Annotated[
            bool,
            typer.Option(
                "--resend-unknown", help="Put the rows still unknown back to pending (resend)."
            ),
        ] = False,
        rate_limits: RateOpt = None,
    ) -> None:
        """Settle the unknown rows from the broadcast list and logs in one pass.

        JSON: {"campaign_id", "accepted", "absent", "resent", "waiting": [{"line",
        "to_number", "settle_at"}], "accepted_twice", "requests", "recovered"}.
        Exit 5 while rows stay unknown.
        """
        st = state()
        settle = settle_after if settle_after is not None else 2 * (st.timeout or 30.0)
        if settle < 0:
            fail("--settle-after must be 0 or more seconds")
        store = _store(db)
        try:
            _campaign(store, campaign_id)

            async def go() -> campaigns.ReconcileResult:
                async with _async_client(st, rate_limits) as client:
                    return await campaigns.reconcile(
                        client,
                        store,
                        campaign_id,
                        settle_after=settle,
                        resend_unknown=resend_unknown,
                    )

            result = anyio.run(go)
            unknown = store.counts(campaign_id)["unknown"]
        finally:
            store.close()
        if st.json:
            data = result.to_dict()
            data["waiting"] = [
                {**w, "settle_at": campaigns.iso_utc(w["settle_at"])} for w in data["waiting"]
            ]
            print_json(data)
        else:
            out = console()
            out.print(
                f"reconciled campaign {campaign_id}: {result.accepted} accepted after all, "
                f"{result.absent} not accepted (pending again), {result.resent} to resend; "
                f"{result.requests} API requests"
            )
            if result.accepted_twice:
                warn_line(f"{len(result.accepted_twice)} rows were accepted more than once")
            if result.waiting:
                out.print(f"{len(result.waiting)} rows cannot be settled yet:")
                for w in result.waiting[:20]:
                    after = campaigns.iso_utc(w["settle_at"])
                    out.print(f"  line {w['line']} {w['to_number']}: after {after}")
            if result.absent or result.resent:
                out.print(f"send them with: qontak campaign resume {campaign_id}")
        if unknown:
            raise typer.Exit(int(ExitCode.OUTCOME_UNKNOWN))

    @group.command("report")
    @command
    def report(
        campaign_id: IdArg,
        out: Annotated[Path, typer.Option("--out", "-o", help="FILE.csv, FILE.jsonl or FILE.html")],
        db: DbOpt = None,
    ) -> None:
        """Write one line per row (state, broadcast id, delivery status, error), or an HTML
        page with the delivery funnel, failures by reason and sends over time.

        JSON: {"campaign_id", "out"}.
        """
        store = _store(db)
        try:
            _campaign(store, campaign_id)
            path = campaigns.write_report(store, campaign_id, out)
        finally:
            store.close()
        if state().json:
            print_json({"campaign_id": campaign_id, "out": str(path)})
        else:
            console().print(f"report written to {path}")

    @group.command("list")
    @command
    def list_(db: DbOpt = None) -> None:
        """Campaigns in the ledger, newest first.

        JSON: a list of {"id", "name", "created_at", "template", "channel_id", "state",
        "pause_reason", "start_at", "window", "source", "counts"}.
        """
        store = _store(db)
        try:
            items = [(c, store.counts(c.id)) for c in store.list_campaigns()]
        finally:
            store.close()
        if state().json:
            print_json([{**c.to_dict(), "counts": n} for c, n in items])
            return
        if not items:
            console().print(
                "no campaigns yet; start one with: qontak campaign run FILE -t TEMPLATE"
            )
            return
        table = Table(title="Campaigns", title_justify="left")
        for col in ("id", "name", "template", "state", "rows"):
            table.add_column(col, overflow="fold")
        for c, n in items:
            table.add_row(
                c.id, c.name, f"{c.template_name} ({c.language})", c.state.value, _counts_line(n)
            )
        console().print(table)

    @group.command("show")
    @command
    def show(campaign_id: IdArg, db: DbOpt = None) -> None:
        """One campaign: settings, counts, rejected rows.

        JSON: {"campaign", "counts", "delivery", "failures", "rejects", "rejected_rows"}.
        """
        st = state()
        store = _store(db)
        try:
            _campaign(store, campaign_id)
            report = campaigns.status(store, campaign_id)
            rejected = list(store.iter_rejects(campaign_id))[:50]
        finally:
            store.close()
        if st.json:
            print_json({**report.to_dict(), "rejected_rows": [r.to_dict() for r in rejected]})
            return
        _show_status(st, report, None)
        c = report.campaign
        out = console()
        out.print(
            f"source: {c['source']} · window: {c['window'] or 'any time'} · start: "
            f"{campaigns.iso_utc(c['start_at']) or 'now'}"
        )
        if rejected:
            out.print(_rejects_table(rejected, "Rows not imported (first 50)"))


def _show_status(
    st: State, report: campaigns.StatusReport, tracked: campaigns.TrackResult | None
) -> None:
    if st.json:
        print_json({**report.to_dict(), "refresh": tracked.to_dict() if tracked else None})
        return
    out = console()
    c = report.campaign
    out.print(f"[bold]{c['name']}[/] ({c['id']}) · {c['template']['name']} · {c['state']}")
    if c["pause_reason"]:
        out.print(f"[yellow]{c['pause_reason']}[/]")
    out.print("rows: " + _counts_line(report.counts))
    if report.delivery:
        out.print("delivery: " + ", ".join(f"{k} {v}" for k, v in report.delivery.items()))
    t = report.tracking
    if t and (t["by_webhook"] or t["by_polling"] or t["requests"]):
        out.print(
            f"settled by webhook {t['by_webhook']}, by polling {t['by_polling']}; "
            f"tracking cost {t['requests']} API requests"
        )
    if report.rejects:
        out.print("not imported: " + ", ".join(f"{k} {v}" for k, v in report.rejects.items()))
    if report.failures:
        table = Table(title="Failures", title_justify="left")
        for col in ("kind", "code", "reason", "rows"):
            table.add_column(col, overflow="fold")
        for f in report.failures:
            table.add_row(f["kind"], f["code"], f["reason"], str(f["count"]))
        out.print(table)
    if tracked is not None and not tracked.complete:
        out.print(f"(delivery refresh stopped after {tracked.requests} requests; run again)")
