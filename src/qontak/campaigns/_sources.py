"""Reading campaign files as a stream of ``(line number, {column: text})`` records.

- **CSV**: the delimiter is sniffed with the standard library's :class:`csv.Sniffer` from
  the first 64 KiB (``,`` ``;`` tab ``|``; ``,`` when unsure). No third-party reader: the
  stdlib's handles quoted fields, embedded newlines and CRLF correctly and streams, which is
  all an export from a spreadsheet or a CRM needs, and a dependency would only add weight.
  ``utf-8-sig`` reads UTF-8 with or without the BOM Excel writes.
- **JSONL**: one JSON object per line (blank lines skipped).
- **XLSX**: the first sheet, openpyxl in read-only streaming mode; numbers written as
  numbers (a phone column Excel turned into ``6.28123E+12``) come back as whole digits.

Line numbers are what the operator sees in their editor or spreadsheet: the physical line
where a CSV record starts (header = 1), the JSONL line, the sheet row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..errors import ValidationError

__all__ = ["Record", "read_records", "source_kind"]

#: One input row: its line number and its cells by column name.
Record = tuple[int, dict[str, str]]

_SNIFF_BYTES = 64 * 1024
_DELIMITERS = ",;\t|"


def source_kind(path: Path) -> str:
    """``csv``, ``jsonl`` or ``xlsx`` from the file name."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    raise ValidationError(
        "file", f"{path.name}: expected a .csv, .jsonl or .xlsx file", code="unsupported"
    )


def read_records(path: str | Path) -> tuple[list[str], Iterator[Record]]:
    """The column names and a lazy iterator over the records of ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError("file", f"no such file: {path}", code="missing")
    kind = source_kind(path)
    if kind == "csv":
        return _csv(path)
    if kind == "jsonl":
        return _jsonl(path)
    return _xlsx(path)


def _text(value: Any) -> str:
    """A cell as text; whole numbers without ``.0`` (phone numbers stored as numbers)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


# -- CSV ------------------------------------------------------------------------------------


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel


def _csv(path: Path) -> tuple[list[str], Iterator[Record]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        try:
            sample = f.read(_SNIFF_BYTES)
        except UnicodeDecodeError as exc:
            raise ValidationError(
                "file",
                f"{path.name} is not UTF-8 (byte {exc.start}); save it as UTF-8 CSV",
                code="encoding",
            ) from None
    dialect = _dialect(sample)
    f = path.open(encoding="utf-8-sig", newline="")
    reader = csv.reader(f, dialect)
    try:
        header = next(reader)
    except StopIteration:
        f.close()
        raise ValidationError("file", f"{path.name} is empty", code="empty") from None
    columns = [h.strip() for h in header]
    _check_columns(columns, path)

    def records() -> Iterator[Record]:
        try:
            start = reader.line_num + 1
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not any(c.strip() for c in cells):
                    continue
                yield line, dict(zip(columns, (c.strip() for c in cells), strict=False))
        except UnicodeDecodeError as exc:
            raise ValidationError(
                "file",
                f"{path.name} is not UTF-8 near line {start} (byte {exc.start})",
                code="encoding",
            ) from None
        finally:
            f.close()

    return columns, records()


def _check_columns(columns: list[str], path: Path) -> None:
    seen: set[str] = set()
    for name in columns:
        if not name:
            continue
        if name in seen:
            raise ValidationError("file", f"{path.name}: column {name!r} appears twice")
        seen.add(name)


# -- JSONL ----------------------------------------------------------------------------------


def _jsonl(path: Path) -> tuple[list[str], Iterator[Record]]:
    columns: list[str] = []
    # Columns are whatever keys the objects have; peek at the first one for the mapping.
    with path.open(encoding="utf-8-sig") as f:
        for raw in f:
            if raw.strip():
                try:
                    first = json.loads(raw)
                except ValueError:
                    break
                if isinstance(first, dict):
                    columns = [str(k) for k in first]
                break

    def records() -> Iterator[Record]:
        with path.open(encoding="utf-8-sig") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                except json.JSONDecodeError as exc:
                    yield number, {"\0error": f"not valid JSON ({exc.msg})"}
                    continue
                if not isinstance(item, dict):
                    yield number, {"\0error": "expected a JSON object"}
                    continue
                yield number, {str(k): _text(v) for k, v in item.items()}

    return columns, records()


# -- XLSX -----------------------------------------------------------------------------------


def _xlsx(path: Path) -> tuple[list[str], Iterator[Record]]:
    import openpyxl  # type: ignore[import-untyped]

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise ValidationError("file", f"{path.name}: not a readable .xlsx ({exc})") from None
    sheet = book.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    try:
        header = next(rows)
    except StopIteration:
        book.close()
        raise ValidationError("file", f"{path.name} is empty", code="empty") from None
    columns = [_text(h).strip() for h in header]
    _check_columns(columns, path)

    def records() -> Iterator[Record]:
        try:
            for number, cells in enumerate(rows, start=2):
                if not any(_text(c).strip() for c in cells):
                    continue
                yield number, dict(zip(columns, (_text(c).strip() for c in cells), strict=False))
        finally:
            book.close()

    return columns, records()
