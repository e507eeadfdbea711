"""Creating a campaign from a file (or rows), and checking a file without creating anything."""

from __future__ import annotations

import hashlib
import itertools
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ValidationError
from ..models import Channel, Template
from ..validation import DEFAULT_REGION
from ._import import ImportSummary, import_records
from ._ledger import Campaign, CampaignState, NewRow, Reject
from ._mapping import resolve_mapping
from ._sources import Record, read_records
from ._sqlite import SQLiteStore
from ._store import Store
from ._windows import Window, parse_window

__all__ = ["CheckReport", "Created", "check", "create"]

Source = str | Path | Iterable[Mapping[str, Any]]
Uploader = Callable[[Path], str]


@dataclass
class CheckReport:
    """What :func:`check` found: counts, the first ``limit`` rejects, the mapping used."""

    summary: ImportSummary
    rejects: list[Reject] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No invalid rows (duplicates and opt-outs are reported but do not block)."""
        return self.summary.invalid == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **self.summary.to_dict(),
            "ok": self.ok,
            "mapping": self.mapping,
            "rejects": [r.to_dict() for r in self.rejects],
        }


@dataclass
class Created:
    """A campaign :func:`create` made (or found, for the same file and settings)."""

    campaign: Campaign
    summary: ImportSummary
    existing: bool = False
    """The same file and settings were imported before: this is that campaign."""


def _records(source: Source) -> tuple[list[str], Iterator[Record]]:
    if isinstance(source, str | Path):
        return read_records(source)
    rows = iter(source)
    first = next(rows, None)
    if first is None:
        return [], iter(())
    columns = [str(k) for k in first]

    def records() -> Iterator[Record]:
        for number, item in enumerate(itertools.chain([first], rows), start=1):
            yield number, {str(k): "" if v is None else str(v) for k, v in item.items()}

    return columns, records()


def _window(window: str | Window | None) -> Window | None:
    if window is None or isinstance(window, Window):
        return window
    return parse_window(window)


def _fingerprint(source: Source, parts: Sequence[object]) -> str | None:
    if not isinstance(source, str | Path):
        return None
    digest = hashlib.sha256()
    with Path(source).open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    digest.update(json.dumps([str(p) for p in parts]).encode())
    return digest.hexdigest()


class _CheckStore:
    """A throwaway ledger for :func:`check` that reads opt-outs from the real one."""

    def __init__(self, scratch: SQLiteStore, optouts: Store | None) -> None:
        self.scratch = scratch
        self.optouts = optouts

    def opted_out(self, numbers: Sequence[str]) -> set[str]:
        return self.optouts.opted_out(numbers) if self.optouts is not None else set()

    def add_rows(self, campaign_id: str, rows: Sequence[NewRow]) -> list[tuple[NewRow, int]]:
        return self.scratch.add_rows(campaign_id, rows)

    def add_rejects(self, campaign_id: str, rejects: Sequence[Reject]) -> None:
        self.scratch.add_rejects(campaign_id, rejects)


def _new_campaign(
    cid: str, template: Template, channel_id: str, name: str | None, now: float
) -> Campaign:
    return Campaign(
        id=cid,
        name=name or f"{template.name} {time.strftime('%Y-%m-%d %H:%M', time.gmtime(now))}",
        created_at=now,
        template_id=template.id,
        template_name=template.name,
        language=template.language,
        channel_id=channel_id,
        template=template.model_dump(mode="json"),
    )


def check(
    source: Source,
    *,
    template: Template,
    channel: Channel | str,
    mapping: Mapping[str, str] | None = None,
    window: str | Window | None = None,
    region: str = DEFAULT_REGION,
    optouts: Store | None = None,
    limit: int = 1000,
    now: float | None = None,
) -> CheckReport:
    """Validate a file (or rows) as :func:`create` would, creating nothing.

    Duplicates are found with a throwaway SQLite file (constant memory); opt-outs are read
    from ``optouts`` (a ledger) when given. Local header files are not uploaded.
    """
    columns, records = _records(source)
    column_map = resolve_mapping(columns, template, mapping)
    channel_id = channel.id if isinstance(channel, Channel) else channel
    with tempfile.TemporaryDirectory(prefix="qontak-check-") as tmp:
        scratch = SQLiteStore(Path(tmp) / "check.db")
        try:
            scratch.create_campaign(_new_campaign("check", template, channel_id, None, 0.0))
            summary = import_records(
                _CheckStore(scratch, optouts),
                "check",
                records,
                template=template,
                channel_id=channel_id,
                mapping=column_map,
                region=region,
                base_dir=_base_dir(source),
                window=_window(window),
                now=time.time() if now is None else now,
            )
            rejects = list(itertools.islice(scratch.iter_rejects("check"), limit))
        finally:
            scratch.close()
    return CheckReport(summary, rejects, column_map.to_dict(), columns)


def _base_dir(source: Source) -> Path:
    return Path(source).resolve().parent if isinstance(source, str | Path) else Path.cwd()


def create(
    store: Store,
    source: Source,
    *,
    template: Template,
    channel: Channel | str,
    mapping: Mapping[str, str] | None = None,
    name: str | None = None,
    window: str | Window | None = None,
    start_at: float | None = None,
    region: str = DEFAULT_REGION,
    skip_invalid: bool = False,
    uploader: Uploader | None = None,
    now: float | None = None,
    on_progress: Callable[[ImportSummary], None] | None = None,
) -> Created:
    """Import a file (CSV, JSONL, XLSX) or an iterable of dicts into a new campaign.

    Every row is built with :mod:`qontak.messages` and checked with
    :func:`qontak.check_message` against ``template``; problems, duplicates (first row wins)
    and opted-out numbers are recorded as rejects (see :func:`rejects`). With invalid rows
    the campaign is ``blocked`` unless ``skip_invalid``. A file imported before with the
    same settings gives back that campaign (``existing=True``) instead of a second one.
    ``uploader`` turns a local header file into a URL (``client.file_uploader.upload``).
    """
    moment = time.time() if now is None else now
    win = _window(window)
    channel_id = channel.id if isinstance(channel, Channel) else channel
    columns, records = _records(source)
    column_map = resolve_mapping(columns, template, mapping)
    fingerprint = _fingerprint(
        source,
        [
            template.id,
            channel_id,
            sorted(column_map.to_dict().items()),
            win.text if win else None,
            start_at,
            region,
        ],
    )
    if fingerprint is not None:
        found = store.find_campaign(fingerprint)
        if found is not None:
            if (
                found.state is CampaignState.BLOCKED
                and skip_invalid
                and store.update_campaign(
                    found.id,
                    only_from=(CampaignState.BLOCKED,),
                    state=CampaignState.READY,
                    pause_reason=None,
                )
            ):
                found.state, found.pause_reason = CampaignState.READY, None
            return Created(found, _summary_of(store, found.id), existing=True)
    campaign = _new_campaign(f"c-{uuid.uuid4().hex[:12]}", template, channel_id, name, moment)
    campaign.window = win.text if win else None
    campaign.start_at = start_at
    campaign.source = str(source) if isinstance(source, str | Path) else None
    # Until every row is in, the campaign can neither be sent nor found again by its file:
    # an import cut short (Ctrl-C, a bad spreadsheet part-way) must not leave a campaign
    # that a second run of the same command would pick up and send only in part.
    campaign.state, campaign.pause_reason = CampaignState.BLOCKED, _IMPORTING
    store.create_campaign(campaign)

    def upload(path: Path) -> str:
        if uploader is None:
            raise ValidationError(
                "header",
                f"{path.name} is a local file; pass uploader= to upload it",
                code="upload_needed",
            )
        return uploader(path)

    summary = import_records(
        store,
        campaign.id,
        records,
        template=template,
        channel_id=channel_id,
        mapping=column_map,
        region=region,
        base_dir=_base_dir(source),
        uploader=upload,
        window=win,
        now=moment,
        on_progress=on_progress,
    )
    state, reason = CampaignState.READY, None
    if summary.invalid and not skip_invalid:
        state = CampaignState.BLOCKED
        reason = (
            f"{summary.invalid} invalid rows; fix the file, or run again with skip_invalid "
            "(--skip-invalid) to send the valid rows"
        )
    store.update_campaign(campaign.id, state=state, pause_reason=reason, fingerprint=fingerprint)
    campaign.state, campaign.pause_reason, campaign.fingerprint = state, reason, fingerprint
    return Created(campaign, summary)


#: Why a campaign whose import did not finish is blocked (it is never sent or found again).
_IMPORTING = "the import did not finish; run the same command again to import the file anew"


def _summary_of(store: Store, campaign_id: str) -> ImportSummary:
    counts = store.counts(campaign_id)
    summary = ImportSummary(rows=sum(counts.values()))
    lines: set[int] = set()
    for reject in store.iter_rejects(campaign_id):
        if reject.code == "duplicate":
            summary.duplicates += 1
        elif reject.code == "opted_out":
            summary.opted_out += 1
        elif reject.line not in lines:
            summary.invalid += 1
            lines.add(reject.line)
    return summary
