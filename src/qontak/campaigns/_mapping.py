"""Which input column fills which part of the message.

Fields a column can map to:

==================  ===========================================================
field               meaning
==================  ===========================================================
``to_number``       the recipient's number (required)
``to_name``         the recipient's name (default: the number)
``timezone``        an IANA zone overriding the one guessed from the number
``1``, ``2``…       body variable ``{{1}}``, ``{{2}}``… (or a named placeholder)
``header``          header media: a URL, or a local file (uploaded once per file)
``header_filename`` the file name shown for the header media
``button.N``        the value of dynamic URL button ``N`` (``button`` = the first)
==================  ===========================================================

Given as ``--map COL=FIELD`` (repeatable) or a mapping file (one ``COL=FIELD`` per line,
``#`` comments, or a JSON object ``{"COL": "FIELD"}``). Columns named like a field or a
template placeholder (case-insensitive) map themselves unless mapped explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ValidationError
from ..models import MEDIA_FORMATS, Template

__all__ = ["FIXED_FIELDS", "ColumnMap", "parse_map_items", "read_map_file", "resolve_mapping"]

FIXED_FIELDS = ("to_number", "to_name", "timezone", "header", "header_filename")


@dataclass(frozen=True)
class ColumnMap:
    """The resolved mapping: field → column."""

    columns: dict[str, str] = field(default_factory=dict)

    def column(self, name: str) -> str | None:
        """The column feeding ``name``, or None."""
        return self.columns.get(name)

    def body_fields(self, template: Template) -> list[str]:
        """The template's body placeholders, in order (numbered ones by number)."""
        names = template.body_placeholders
        if names and all(n.isdigit() for n in names):
            names = sorted(names, key=int)
        return names

    def to_dict(self) -> dict[str, str]:
        """``{field: column}``."""
        return dict(self.columns)


def parse_map_items(items: Iterable[str]) -> dict[str, str]:
    """``["phone=to_number", "nama=1"]`` → ``{"phone": "to_number", "nama": "1"}``."""
    out: dict[str, str] = {}
    for item in items:
        column, sep, target = item.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise ValidationError("map", f"expected COLUMN=FIELD, got {item!r}", code="invalid")
        out[column.strip()] = target.strip()
    return out


def read_map_file(path: str | Path) -> dict[str, str]:
    """A mapping file: ``COL=FIELD`` lines (``#`` comments) or a JSON object."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValidationError(
            "map", f"cannot read {path}: {exc.strerror}", code="missing"
        ) from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValidationError("map", f"{path.name}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValidationError("map", f'{path.name}: expected {{"COLUMN": "FIELD"}}')
        return {str(k): v for k, v in data.items()}
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    return parse_map_items(ln for ln in lines if ln)


def _target(name: str, template: Template) -> str:
    """A mapping target in canonical form, or ValidationError when it means nothing."""
    lowered = name.strip()
    if lowered.lower() in FIXED_FIELDS:
        return lowered.lower()
    body = template.body_placeholders
    key = lowered.removeprefix("body.")
    if key in body:
        return key
    if lowered.lower() == "button":
        dynamic = _dynamic_buttons(template)
        if not dynamic:
            raise ValidationError(
                "map", f"template {template.name!r} has no button that takes a value"
            )
        return f"button.{dynamic[0]}"
    if lowered.lower().startswith("button.") and lowered[7:].isdigit():
        index = int(lowered[7:])
        if index not in _dynamic_buttons(template):
            raise ValidationError(
                "map", f"template {template.name!r} has no button {index} that takes a value"
            )
        return f"button.{index}"
    known = [*FIXED_FIELDS, *body, *(f"button.{i}" for i in _dynamic_buttons(template))]
    raise ValidationError(
        "map", f"{name!r} is not a field of template {template.name!r}; known: {', '.join(known)}"
    )


def _dynamic_buttons(template: Template) -> list[int]:
    if template.is_authentication:
        return []  # the code button is filled from body {{1}}
    return [i for i, b in enumerate(template.buttons) if b.is_dynamic]


def resolve_mapping(
    columns: list[str], template: Template, explicit: Mapping[str, str] | None = None
) -> ColumnMap:
    """Combine explicit ``COLUMN=FIELD`` pairs with columns that name a field themselves,
    and check that everything the template needs is fed by some column."""
    by_field: dict[str, str] = {}
    known_columns = set(columns)
    for column, target in (explicit or {}).items():
        if columns and column not in known_columns:
            raise ValidationError(
                "map", f"no column {column!r} in the file; columns: {', '.join(columns)}"
            )
        canonical = _target(target, template)
        if canonical in by_field:
            raise ValidationError(
                "map", f"{canonical!r} is mapped from both {by_field[canonical]!r} and {column!r}"
            )
        by_field[canonical] = column
    mapped_columns = set(by_field.values())
    for column in columns:
        if column in mapped_columns:
            continue
        try:
            canonical = _target(column, template)
        except ValidationError:
            continue
        by_field.setdefault(canonical, column)
    missing = []
    if "to_number" not in by_field:
        missing.append("to_number")
    missing += [f"{{{{{p}}}}}" for p in template.body_placeholders if p not in by_field]
    if template.header_format in MEDIA_FORMATS and "header" not in by_field:
        missing.append("header")
    missing += [f"button.{i}" for i in _dynamic_buttons(template) if f"button.{i}" not in by_field]
    if missing:
        raise ValidationError(
            "map",
            f"nothing fills {', '.join(missing)} of template {template.name!r}; "
            f"map a column with --map COLUMN=FIELD (columns: {', '.join(columns) or 'none'})",
            code="missing",
        )
    return ColumnMap(by_field)
