"""Turning input records into ledger rows: build each message with the SDK's builders, check
it with the SDK's rules, and stream the good ones into the ledger in batches.

Memory stays constant whatever the file size: records are read lazily, rows are written in
batches of :data:`BATCH`, duplicates are found by the ledger's unique index (not a set in
memory) and bad rows go to the ledger's reject table, not a list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .. import messages
from ..errors import ValidationError
from ..models import MEDIA_FORMATS, DirectMessage, Template
from ..validation import check_message
from ._ledger import NewRow, Reject
from ._mapping import ColumnMap
from ._shape import RowShape
from ._sources import Record
from ._windows import Window, next_open, zones_for_number, zones_key

__all__ = ["BATCH", "ImportSummary", "build_row", "import_records"]

#: Rows written per ledger transaction.
BATCH = 1000

#: Turns a local header file into the URL to send (uploads it); None while only checking.
Uploader = Callable[[Path], str]


class ImportTarget(Protocol):
    """The part of a :class:`~._store.Store` an import writes to."""

    def opted_out(self, numbers: Sequence[str]) -> set[str]: ...
    def add_rows(self, campaign_id: str, rows: Sequence[NewRow]) -> list[tuple[NewRow, int]]: ...
    def add_rejects(self, campaign_id: str, rejects: Sequence[Reject]) -> None: ...


@dataclass
class ImportSummary:
    """What an import did."""

    rows: int = 0
    """Rows that entered the ledger (pending)."""
    invalid: int = 0
    """Rows with at least one problem (each problem is one reject)."""
    duplicates: int = 0
    opted_out: int = 0
    problems: int = 0

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {
            "rows": self.rows,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "opted_out": self.opted_out,
        }


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


class _Media:
    """Header media for the rows: URLs as given, local files uploaded once each."""

    def __init__(self, base: Path, uploader: Uploader | None) -> None:
        self._base = base
        self._uploader = uploader
        self._urls: dict[Path, str] = {}

    def url(self, value: str) -> tuple[str, str | None]:
        """The URL to send and, for a local file, its name."""
        if _is_url(value):
            return value, None
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self._base / path
        path = path.resolve()
        if not path.is_file():
            raise ValidationError(
                "header", f"not a URL and no such file: {value}", code="missing_file"
            )
        if path not in self._urls:
            self._urls[path] = self._uploader(path) if self._uploader else path.as_uri()
        return self._urls[path], path.name


def build_row(
    values: dict[str, str],
    *,
    template: Template,
    channel_id: str,
    mapping: ColumnMap,
    region: str,
    media: _Media | None = None,
) -> DirectMessage:
    """The message for one record (not yet checked against the template)."""

    def get(name: str) -> str:
        column = mapping.column(name)
        return values.get(column, "") if column else ""

    to = get("to_number")
    if not to:
        raise ValidationError("to_number", "is empty", code="missing")
    name = get("to_name") or None
    common: dict[str, Any] = {
        "template": template,
        "channel": channel_id,
        "name": name,
        "language": template.language,
        "region": region,
    }
    body_fields = mapping.body_fields(template)
    variables = [(mapping.column(f) or f, get(f)) for f in body_fields]
    if template.is_authentication and len(body_fields) == 1:
        return messages.otp(to, variables[0][1], **common)
    buttons = [
        messages.url_button(get(f"button.{i}"), i, type="URL")
        for i, b in enumerate(template.buttons)
        if b.is_dynamic
    ]
    fmt = template.header_format
    if fmt in MEDIA_FORMATS:
        source = get("header")
        if not source:
            raise ValidationError("header", f"a {fmt} header needs a URL or a file", code="missing")
        url, local_name = (media or _Media(Path.cwd(), None)).url(source)
        header = messages.media_header(fmt, url, get("header_filename") or local_name)
        return messages.template_message(
            to,
            variables=variables,
            header=header,
            buttons=buttons or ([] if fmt == "IMAGE" else None),
            **common,
        )
    if buttons:
        return messages.template_message(to, variables=variables, buttons=buttons, **common)
    if template.buttons:
        return messages.cta_phone(to, variables=variables, **common)
    # What messages.text builds (``buttons: []`` with variables, ``{}`` without), without
    # building the body twice: this line runs once per row of a million-row file.
    if variables:
        return messages.template_message(to, variables=variables, buttons=(), **common)
    return messages.template_message(to, **common)


def _problems(
    message: DirectMessage, template: Template, local_media: bool
) -> list[ValidationError]:
    problems = check_message(message, template)
    if local_media:
        # The file:// stand-in of a file not uploaded yet is not a problem of the row.
        problems = [
            p
            for p in problems
            if not (p.field.startswith("parameters.header") and "url" in p.reason)
        ]
    return problems


def _checked(
    records: Iterable[Record],
    *,
    template: Template,
    channel_id: str,
    mapping: ColumnMap,
    region: str,
    media: _Media,
    checking_only: bool,
    window: Window | None,
    now: float,
    fast: bool = True,
) -> Iterator[NewRow | list[Reject]]:
    tz_column = mapping.column("timezone")

    def build(values: dict[str, str]) -> DirectMessage:
        return build_row(
            values,
            template=template,
            channel_id=channel_id,
            mapping=mapping,
            region=region,
            media=media,
        )

    shape = (
        RowShape.compile(template=template, mapping=mapping, region=region, build=build)
        if fast
        else None
    )
    # A handful of zone sets cover a whole file (they follow the number's prefix).
    zone_keys: dict[tuple[str, ...], str] = {}
    for line, values in records:
        if "\0error" in values:
            yield [Reject(line, "row", values["\0error"], "invalid_row")]
            continue
        quick = shape.build(values) if shape is not None else None
        if quick is not None:
            # A row the SDK's rules accept as it is (see _shape): its message, unbuilt.
            to_number, to_name, parameters = quick
            problems: list[ValidationError] = []
        else:
            try:
                message = build(values)
            except ValidationError as exc:
                number = values.get(mapping.column("to_number") or "", "") or None
                yield [Reject(line, exc.field, exc.reason, exc.code, number)]
                continue
            local = (
                checking_only
                and message.parameters.header is not None
                and any(
                    p.key == "url" and p.value.startswith("file:")
                    for p in message.parameters.header.params
                )
            )
            problems = _problems(message, template, local)
            to_number, to_name = message.to_number, message.to_name
            parameters = message.to_wire().get("parameters", {}) if not problems else {}
            if shape is not None and not problems:
                shape.learn_header(values, parameters.get("header"))
        try:
            zones = zones_for_number(to_number, values.get(tz_column) if tz_column else None)
        except ValidationError as exc:
            problems.append(exc)
            zones = ()
        if zones and window is not None and next_open(window, zones, now) is None:
            problems.append(
                ValidationError(
                    "timezone",
                    f"the window {window.text} never holds in all of {', '.join(zones)} "
                    "at once; give a timezone column or a wider window",
                    code="window",
                )
            )
        if problems:
            yield [Reject(line, p.field, p.reason, p.code, to_number) for p in problems]
            continue
        key = zone_keys.get(zones)
        if key is None:
            key = zone_keys[zones] = zones_key(zones)
        yield NewRow(
            line=line, to_number=to_number, to_name=to_name, parameters=parameters, zones=key
        )


def import_records(
    store: ImportTarget,
    campaign_id: str,
    records: Iterable[Record],
    *,
    template: Template,
    channel_id: str,
    mapping: ColumnMap,
    region: str = "ID",
    base_dir: Path | None = None,
    uploader: Uploader | None = None,
    window: Window | None = None,
    now: float = 0.0,
    on_progress: Callable[[ImportSummary], None] | None = None,
    fast: bool = True,
) -> ImportSummary:
    """Validate ``records`` and stream the good ones into campaign ``campaign_id``.

    Problems, duplicates (first row wins) and opted-out numbers are written to the ledger's
    reject table with their line numbers. With ``uploader`` None, local header files are not
    uploaded (a ``file://`` stand-in is stored: for checking only). ``fast=False`` builds
    and checks every row with the SDK's builders and rules (the reference the fast path of
    :mod:`._shape` is tested against; the results are the same).
    """
    summary = ImportSummary()
    media = _Media(base_dir or Path.cwd(), uploader)
    batch: list[NewRow] = []
    rejects: list[Reject] = []

    def flush() -> None:
        if batch:
            blocked = store.opted_out([r.to_number for r in batch])
            keep = [r for r in batch if r.to_number not in blocked]
            for row in batch:
                if row.to_number in blocked:
                    summary.opted_out += 1
                    rejects.append(
                        Reject(
                            row.line, "to_number", "on the opt-out list", "opted_out", row.to_number
                        )
                    )
            duplicates = store.add_rows(campaign_id, keep)
            summary.rows += len(keep) - len(duplicates)
            for row, first in duplicates:
                summary.duplicates += 1
                rejects.append(
                    Reject(
                        row.line,
                        "to_number",
                        f"duplicate of line {first}",
                        "duplicate",
                        row.to_number,
                    )
                )
            batch.clear()
        if rejects:
            store.add_rejects(campaign_id, sorted(rejects, key=lambda r: r.line))
            rejects.clear()
        if on_progress is not None:
            on_progress(summary)

    for item in _checked(
        records,
        template=template,
        channel_id=channel_id,
        mapping=mapping,
        region=region,
        media=media,
        checking_only=uploader is None,
        window=window,
        now=now,
        fast=fast,
    ):
        if isinstance(item, NewRow):
            batch.append(item)
        else:
            summary.invalid += 1
            summary.problems += len(item)
            rejects.extend(item)
        if len(batch) >= BATCH or len(rejects) >= BATCH:
            flush()
    flush()
    return summary
