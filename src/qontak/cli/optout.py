"""``qontak optout add|remove|list|import``: the opt-out list in the campaign ledger.

Numbers are normalised like every other number (``0812-…`` → ``62812…``). Campaigns skip
opted-out numbers at import and check the list again just before each send, so a number
added while a campaign runs is never contacted after that.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .. import ValidationError, campaigns, normalize_phone
from ._app import QontakSubGroup
from ._output import console, print_json, warn_line
from ._state import command, fail, state

__all__ = ["register"]

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="PATH|URL",
        help="Ledger: a SQLite file or a postgresql:// URL "
        "(default: QONTAK_CAMPAIGN_DB, else ./qontak-campaigns.db).",
    ),
]
NumbersArg = Annotated[
    list[str], typer.Argument(metavar="NUMBER", help="Phone numbers, e.g. 0812-3456-7890.")
]
_PHONE_COLUMNS = ("to_number", "phone", "number", "phone_number", "nomor", "no_hp", "hp", "msisdn")


def _normalise(numbers: list[str]) -> list[str]:
    out = []
    for number in numbers:
        try:
            out.append(normalize_phone(number))
        except ValidationError as exc:
            fail(f"{number!r}: {exc.reason}")
    return out


def register(app: typer.Typer) -> None:
    """Add ``optout`` and its subcommands to ``app``."""
    group = typer.Typer(
        cls=QontakSubGroup,
        help="The opt-out list: numbers no campaign will ever contact.",
        no_args_is_help=True,
    )
    app.add_typer(group, name="optout")

    @group.command("add")
    @command
    def add(
        numbers: NumbersArg,
        reason: Annotated[str, typer.Option("--reason", help="Why (kept with the number).")] = "",
        db: DbOpt = None,
    ) -> None:
        """Add numbers to the opt-out list. JSON: {"added", "numbers"}."""
        normalised = _normalise(numbers)
        store = campaigns.open_ledger(db or None)
        try:
            added = store.add_optouts(normalised, reason=reason or "added by hand", now=time.time())
        finally:
            store.close()
        if state().json:
            print_json({"added": added, "numbers": normalised})
        else:
            console().print(f"{added} added ({len(normalised) - added} were already on the list)")

    @group.command("remove")
    @command
    def remove(numbers: NumbersArg, db: DbOpt = None) -> None:
        """Remove numbers from the opt-out list. JSON: {"removed", "numbers"}."""
        normalised = _normalise(numbers)
        store = campaigns.open_ledger(db or None)
        try:
            removed = store.remove_optouts(normalised)
        finally:
            store.close()
        if state().json:
            print_json({"removed": removed, "numbers": normalised})
        else:
            console().print(f"{removed} removed")

    @group.command("list")
    @command
    def list_(db: DbOpt = None) -> None:
        """The opt-out list. JSON: [{"to_number", "reason", "added_at"}]."""
        store = campaigns.open_ledger(db or None)
        try:
            items = list(store.iter_optouts())
        finally:
            store.close()
        if state().json:
            print_json([{"to_number": n, "reason": r, "added_at": a} for n, r, a in items])
            return
        table = Table(title=f"Opt-outs ({len(items)})", title_justify="left")
        table.add_column("number")
        table.add_column("reason", overflow="fold")
        table.add_column("added (UTC)")
        for number, reason, added in items:
            table.add_row(number, reason, time.strftime("%Y-%m-%d %H:%M", time.gmtime(added)))
        console().print(table)

    @group.command("import")
    @command
    def import_(
        file: Annotated[
            Path, typer.Argument(metavar="FILE", help="A .csv, .jsonl or .xlsx file of numbers.")
        ],
        column: Annotated[
            str | None,
            typer.Option(
                "--column",
                help="The column with the numbers (default: a phone-like "
                "name, else the first column).",
            ),
        ] = None,
        reason: Annotated[str, typer.Option("--reason", help="Why (kept with each number).")] = "",
        db: DbOpt = None,
    ) -> None:
        """Add every number of FILE to the opt-out list; bad numbers are reported by line.

        JSON: {"added", "invalid": [{"line", "value", "reason"}]}.
        """
        columns, records = campaigns.read_records(file)
        if column is None:
            lowered = {c.lower(): c for c in columns}
            column = next((lowered[c] for c in _PHONE_COLUMNS if c in lowered), None)
            column = column or (columns[0] if columns else None)
        if column is None or (columns and column not in columns):
            fail(f"--column: no column {column!r} in {file.name}; columns: {', '.join(columns)}")
        store = campaigns.open_ledger(db or None)
        added = 0
        invalid: list[dict[str, object]] = []
        batch: list[str] = []
        note = reason or f"imported from {file.name}"
        try:
            for line, values in records:
                value = values.get(column, "")
                try:
                    batch.append(normalize_phone(value))
                except ValidationError as exc:
                    invalid.append({"line": line, "value": value, "reason": exc.reason})
                if len(batch) >= 1000:
                    added += store.add_optouts(batch, reason=note, now=time.time())
                    batch.clear()
            added += store.add_optouts(batch, reason=note, now=time.time())
        finally:
            store.close()
        if state().json:
            print_json({"added": added, "invalid": invalid})
            return
        console().print(f"{added} numbers added to the opt-out list")
        for item in invalid[:20]:
            warn_line(f"line {item['line']}: {item['value']!r}: {item['reason']}")
        if len(invalid) > 20:
            warn_line(f"… and {len(invalid) - 20} more bad numbers (--json lists them all)")
