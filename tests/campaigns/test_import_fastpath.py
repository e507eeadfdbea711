"""The import's fast paths give exactly what the SDK's builders and rules give.

- ``normalize_phone``'s shortcut for Indonesian mobile numbers against phonenumbers itself
  (the shortcut switched off), on generated numbers in every way people write them;
- an import through the compiled row shape (``_shape.RowShape``) against the same import
  with every row built by :mod:`qontak.messages` and checked by ``check_message``: the same
  rows (number, name, parameters, zones), the same rejects (line, field, reason, code), for
  every kind of template the sandbox has, on a varied set of good and bad rows and on rows
  drawn by hypothesis;
- the batched ledger insert finds the same duplicates as one insert per row.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qontak.validation as validation
from qontak import Template, ValidationError, campaigns
from qontak.campaigns._create import _new_campaign
from qontak.campaigns._import import _checked, _Media, build_row, import_records
from qontak.campaigns._ledger import NewRow, Reject
from qontak.campaigns._mapping import ColumnMap, resolve_mapping
from qontak.campaigns._shape import RowShape
from qontak.testing import sandbox_client

from .conftest import CHANNEL_ID

# -- normalize_phone ------------------------------------------------------------------------


def _outcome(number: str, region: str = "ID") -> tuple[str, ...]:
    try:
        return ("ok", validation.normalize_phone(number, region))
    except ValidationError as exc:
        return ("error", exc.field, exc.reason, exc.code)


def _slow(number: str, region: str = "ID") -> tuple[str, ...]:
    """What phonenumbers alone answers (the shortcut off)."""
    saved = validation._ID_FAST
    validation._ID_FAST = False
    try:
        return _outcome(number, region)
    finally:
        validation._ID_FAST = saved


_PREFIXES = ["", "0", "00", "62", "+62", "0062", "+620", "620", "+1", "8", "+", "6"]
_SEPARATORS = ["", "", "", " ", "-", ".", "(", ")", "  "]


@st.composite
def written_numbers(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(_PREFIXES))
    lead = draw(st.sampled_from(["8", "81", "812", "85", "88", "84", "80", "87", "2", "0", ""]))
    rest = draw(st.text(alphabet="0123456789", min_size=0, max_size=13))
    digits = prefix + lead + rest
    out = []
    for ch in digits:
        out.append(ch)
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from(_SEPARATORS)))
    if draw(st.integers(0, 30)) == 0:
        out.insert(draw(st.integers(0, len(out))), "٨")  # a non-ASCII digit
    return "".join(out)


@settings(max_examples=100, deadline=None)
@given(written_numbers())
def test_the_indonesian_shortcut_answers_as_phonenumbers_does(number: str) -> None:
    assert _outcome(number) == _slow(number)


def test_the_shortcut_is_taken_for_the_usual_forms_and_agrees() -> None:
    lengths = range(9, 14)
    for prefix, length, lead in itertools.product(("+62", "62", "0"), lengths, ("81", "85", "89")):
        nsn = (lead + "1234567890123")[:length]
        number = prefix + nsn
        fast = validation._indonesian_mobile(number)
        assert fast is None or fast == "62" + nsn
        assert _outcome(number) == _slow(number), number
    assert validation._indonesian_mobile("081234567890") == "6281234567890"
    assert validation._indonesian_mobile("+6281234567890") == "6281234567890"
    # Not for it: the US, a landline, a trunk zero after the country code, Arabic digits.
    for number in ("+16502530000", "0215551234", "+62081234567890", "0٨1234567890"):
        assert validation._indonesian_mobile(number) is None
        assert _outcome(number) == _slow(number)
    assert _outcome("650 253 0000", "US") == _slow("650 253 0000", "US")


# -- the row shape against the SDK's builders and rules --------------------------------------


@pytest.fixture(scope="module")
def templates() -> dict[str, Template]:
    with sandbox_client() as (client, _):
        return {t.name: t for t in client.templates.iter() if t.language == "id"}


PHONES = [
    "0812-3456-7890",
    "6281234567891",
    "+62 812 3456 7892",
    "0062 812 3456 7893",
    "+62 0812 3456 7894",
    "(0812) 3456 7895",
    "0812-3456-7890",  # duplicate of the first
    "0812",
    "0812-ABCD-0000",
    "",
    "   ",
    "+1 650 253 0000",
    "0215551234",
    "08123456789012345678",
    "٠٨١٢٣٤٥٦٧٨٩٦",
    "62 812 3456 7897",
    "8123456789",
]
NAMES = [
    "Budi",
    "",
    "   ",
    "Siti Nurhaliza",
    "Tab\there",
    "x" * 128,
    "y" * 129,
    "Zero\u200bwidth",
    "Lone \ud800 surrogate",
    "Émilie 😀",
    "new\nline",
]
VALUES = [
    "Budi",
    "#00042",
    "",
    " ",
    "a\nb",
    "five     spaces",
    "four    spaces",
    "x" * 1024,
    "x" * 1025,
    "z" * 40000,
    "emoji 😀",
    "nul\x00here",
    "  padded  ",
    "123456",
    "1234567890123456",
]
BUTTONS = ["track/1", "", "a b", "ABC123", "x" * 1990, "x" * 2000, "ünï/cødé", "\u00a0nbsp"]
HEADERS = [
    "https://cdn.example.com/promo.jpg",
    "https://cdn.example.com/promo.jpg",
    "https://cdn.example.com/promo.png",
    "https://cdn.example.com/invoice.pdf",
    "https://cdn.example.com/clip.mp4",
    "https://cdn.example.com/readme.txt",
    "ftp://cdn.example.com/promo.jpg",
    "",
    "https://cdn.example.com/" + "p" * 2000 + ".jpg",
    "https://cdn.example.com/no-extension",
]
GOOD_MEDIA = [
    "https://cdn.example.com/promo.jpg",
    "https://cdn.example.com/clip.mp4",
    "https://cdn.example.com/invoice.pdf",
]
FILENAMES = ["", "", "invoice.pdf", "photo.jpg", "clip.mp4", "notes.doc"]

#: template name → its mapping (columns named like the fields map themselves).
CASES: dict[str, dict[str, str]] = {
    "order_update": {"phone": "to_number", "nama": "to_name", "v1": "1", "v2": "2"},
    "login_otp": {"phone": "to_number", "nama": "to_name", "v1": "1"},
    "promo_image": {"phone": "to_number", "nama": "to_name", "media": "header"},
    "invoice_document": {
        "phone": "to_number",
        "media": "header",
        "fname": "header_filename",
    },
    "product_video": {
        "phone": "to_number",
        "nama": "to_name",
        "v1": "1",
        "v2": "2",
        "v3": "3",
        "media": "header",
    },
    "cta_url": {"phone": "to_number", "nama": "to_name", "b": "button"},
    "cta_phone": {"phone": "to_number", "nama": "to_name"},
    "welcome_message": {"phone": "to_number"},
    "pending_promo": {"phone": "to_number", "v1": "1"},
}


def _column_values(column: str, i: int) -> str:
    pools = {
        "phone": PHONES,
        "nama": NAMES,
        "v1": VALUES,
        "v2": VALUES,
        "v3": VALUES,
        "b": BUTTONS,
        "media": HEADERS,
        "fname": FILENAMES,
    }
    pool = pools[column]
    stride = {"phone": 1, "nama": 3, "v1": 7, "v2": 11, "v3": 13, "b": 3, "media": 3, "fname": 5}[
        column
    ]
    # Mostly good values (the pool's first), the rest cycling through every bad one. A good
    # header depends on the template's kind, so the good rows cycle through one of each.
    if i % 3 == 0 and column == "media":
        return GOOD_MEDIA[(i // 3) % len(GOOD_MEDIA)]
    return pool[0 if i % 3 == 0 and column != "phone" else (i * stride) % len(pool)]


def _varied_rows(columns: list[str], count: int) -> list[tuple[int, dict[str, str]]]:
    rows = []
    for i in range(count):
        values = {c: _column_values(c, i) for c in columns}
        if "phone" in values and i % len(PHONES) not in (6,):
            # Distinct numbers where the pool's number is good, so most rows enter.
            values["phone"] = values["phone"] if i < len(PHONES) else f"0812-{i:04d}-{i % 97:04d}"
        rows.append((i + 2, values))
    rows.append((count + 2, {"\0error": "not valid JSON"}))
    return rows


def _run(
    records: list[tuple[int, dict[str, str]]],
    template: Template,
    mapping: ColumnMap,
    *,
    fast: bool,
    window: Any = None,
) -> list[NewRow | list[Reject]]:
    return list(
        _checked(
            iter(records),
            template=template,
            channel_id=CHANNEL_ID,
            mapping=mapping,
            region="ID",
            media=_Media(Path.cwd(), None),
            checking_only=True,
            window=window,
            now=0.0,
            fast=fast,
        )
    )


def _shape(template: Template, mapping: ColumnMap) -> RowShape | None:
    def build(values: dict[str, str]) -> Any:
        return build_row(
            values, template=template, channel_id=CHANNEL_ID, mapping=mapping, region="ID"
        )

    return RowShape.compile(template=template, mapping=mapping, region="ID", build=build)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_shape_gives_what_the_sdk_gives_on_varied_rows(
    name: str, templates: dict[str, Template], monkeypatch: pytest.MonkeyPatch
) -> None:
    template = templates[name]
    columns = list(CASES[name])
    mapping = resolve_mapping(columns, template, CASES[name])
    records = _varied_rows(columns, 240)
    taken = []
    build = RowShape.build

    def counting(shape: RowShape, values: dict[str, str]) -> Any:
        result = build(shape, values)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(RowShape, "build", counting)
    fast = _run(records, template, mapping, fast=True)
    slow = _run(records, template, mapping, fast=False)
    assert fast == slow
    good = [r for r in slow if isinstance(r, NewRow)]
    if template.is_approved:
        # The comparison means something: good and bad rows, most good ones fast (a media
        # header goes fast once the SDK has found that header clean in an earlier row).
        assert good and any(isinstance(r, list) for r in slow)
        assert sum(taken) >= len(good) * (0.6 if template.has_media_header else 0.9)
    else:
        # Not approved: no shape, every row is checked by the SDK and says so.
        assert _shape(template, mapping) is None and not any(taken)


def test_the_shape_keeps_windows_and_timezones_as_the_sdk_path_does(
    templates: dict[str, Template],
) -> None:
    template = templates["order_update"]
    columns = ["phone", "v1", "v2", "tz"]
    mapping = resolve_mapping(
        columns, template, {"phone": "to_number", "tz": "timezone", "v1": "1", "v2": "2"}
    )
    zones = ["", "Asia/Jayapura", "Mars/Olympus", "Asia/Makassar"]
    records = [
        (i + 2, {"phone": f"0812-7000-{i:04d}", "v1": "Budi", "v2": "#1", "tz": zones[i % 4]})
        for i in range(40)
    ]
    window = campaigns.parse_window("08:00-08:30")
    fast = _run(records, template, mapping, fast=True, window=window)
    assert fast == _run(records, template, mapping, fast=False, window=window)
    assert any(isinstance(r, list) and r[0].field == "timezone" for r in fast)


_ROW_VALUES = st.fixed_dictionaries(
    {
        "phone": st.one_of(st.sampled_from(PHONES), written_numbers(), st.text(max_size=20)),
        "nama": st.one_of(st.sampled_from(NAMES), st.text(max_size=140)),
        "v1": st.one_of(st.sampled_from(VALUES), st.text(max_size=30)),
        "v2": st.one_of(st.sampled_from(VALUES), st.text(max_size=30)),
        "v3": st.sampled_from(VALUES),
        "b": st.one_of(st.sampled_from(BUTTONS), st.text(max_size=30)),
        "media": st.sampled_from(HEADERS),
        "fname": st.sampled_from(FILENAMES),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(CASES)),
    rows=st.lists(_ROW_VALUES, min_size=1, max_size=8),
)
def test_hypothesis_the_shape_and_the_sdk_agree(
    name: str, rows: list[dict[str, str]], templates: dict[str, Template]
) -> None:
    template = templates[name]
    columns = list(CASES[name])
    mapping = resolve_mapping(columns, template, CASES[name])
    records = [(i + 2, {c: row[c] for c in columns}) for i, row in enumerate(rows)]
    assert _run(records, template, mapping, fast=True) == _run(
        records, template, mapping, fast=False
    )


# -- the batched insert ------------------------------------------------------------------------


def _ledger_view(store: campaigns.SQLiteStore, cid: str) -> Iterator[object]:
    for row in store.iter_rows(cid):
        yield (row.line, row.to_number, row.to_name, row.parameters, row.zones, row.state)
    yield from (r.to_dict() for r in store.iter_rejects(cid))


def test_a_whole_import_fast_and_plain_gives_the_same_ledger(
    tmp_path: Path, templates: dict[str, Template], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches: duplicates within a batch and across batches, opt-outs in both.
    monkeypatch.setattr("qontak.campaigns._import.BATCH", 7)
    template = templates["order_update"]
    columns = list(CASES["order_update"])
    mapping = resolve_mapping(columns, template, CASES["order_update"])
    good = [
        (i + 2, {"phone": f"0812-5{i:03d}-{i:04d}", "nama": "Budi", "v1": "A", "v2": "#1"})
        for i in range(100)
    ]
    again = [  # the same numbers written another way: duplicates of their first line
        (200 + i, {**values, "phone": f"+62 8125{i:03d}{i:04d}", "nama": "Again"})
        for i, (_, values) in enumerate(good[:30:2])
    ]
    records = good + again + [(300 + line, v) for line, v in _varied_rows(columns, 60)]
    views = []
    for fast in (True, False):
        store = campaigns.SQLiteStore(tmp_path / f"{fast}.db", durable=False)
        store.add_optouts(["6281250030003", "6281250500050"], reason="STOP", now=0.0)
        store.create_campaign(_new_campaign("c", template, CHANNEL_ID, None, 0.0))
        summary = import_records(
            store, "c", iter(records), template=template, channel_id=CHANNEL_ID,
            mapping=mapping, fast=fast,
        )  # fmt: skip
        views.append((summary, list(_ledger_view(store, "c"))))
        store.close()
    assert views[0] == views[1]
    summary = views[0][0]
    assert summary.duplicates >= 15 and summary.opted_out >= 2 and summary.rows > 100


def test_rows_added_again_are_reported_as_one_by_one_inserts_did(tmp_path: Path) -> None:
    store = campaigns.SQLiteStore(tmp_path / "l.db", durable=False)
    template = Template(id="t", name="t", language="id", body="Hi", status="APPROVED")
    store.create_campaign(_new_campaign("c", template, CHANNEL_ID, None, 0.0))

    def row(line: int, number: str) -> NewRow:
        return NewRow(line, number, "n", {}, "Asia/Jakarta")

    assert store.add_rows("c", [row(1, "1"), row(2, "2"), row(3, "1")]) == [(row(3, "1"), 1)]
    # The same lines again (a retried batch): each refused row is named, as before.
    again = store.add_rows("c", [row(1, "1"), row(4, "2"), row(5, "5")])
    assert again == [(row(1, "1"), 1), (row(4, "2"), 2)]
    assert [r.line for r in store.iter_rows("c")] == [1, 2, 5]
    store.close()
