"""Import and validation: CSV dialects, JSONL, XLSX, the column mapping, a report of every
kind of bad row (line, field, reason), duplicates and opt-outs, and constant memory."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import openpyxl
import pytest

from qontak import Template, ValidationError, campaigns
from qontak.testing import sandbox_client

from .conftest import CHANNEL_ID, write_customers

MAP = {"phone": "to_number", "nama": "1", "order": "2"}


@pytest.fixture(scope="module")
def templates() -> dict[str, Template]:
    with sandbox_client() as (client, _):
        return {t.name: t for t in client.templates.iter() if t.language == "id"}


def _records(path: Path) -> list[tuple[int, dict[str, str]]]:
    _, records = campaigns.read_records(path)
    return list(records)


def test_csv_delimiter_bom_crlf_and_quoted_fields(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    text = 'phone;nama;order\r\n0812-1;"Budi; Jr.";"#1"\r\n0812-2;"Siti ""S""";"line\r\ntwo"\r\n'
    path.write_bytes("\ufeff".encode() + text.encode())
    columns, records = campaigns.read_records(path)
    assert columns == ["phone", "nama", "order"]
    rows = list(records)
    assert rows[0] == (2, {"phone": "0812-1", "nama": "Budi; Jr.", "order": "#1"})
    assert rows[1][0] == 3 and rows[1][1]["nama"] == 'Siti "S"'
    assert rows[1][1]["order"] == "line\r\ntwo"
    tabbed = tmp_path / "t.csv"
    tabbed.write_text("phone\tnama\torder\n0812-1\tBudi\t#1\n\n0812-2\tSiti\t#2\n")
    assert [line for line, _ in _records(tabbed)] == [2, 4]


def test_jsonl_and_xlsx_give_the_same_records(tmp_path: Path) -> None:
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(
        json.dumps({"phone": "0812-1", "nama": "Budi", "order": 7}) + "\n\n{not json\n[1]\n"
    )
    assert _records(jsonl) == [
        (1, {"phone": "0812-1", "nama": "Budi", "order": "7"}),
        (3, {"\0error": "not valid JSON (Expecting property name enclosed in double quotes)"}),
        (4, {"\0error": "expected a JSON object"}),
    ]
    xlsx = tmp_path / "c.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["phone", "nama", "order"])
    sheet.append([6281234567890, "Budi", 7.0])  # Excel keeps phone numbers as numbers
    sheet.append([None, None, None])
    sheet.append(["0812-2", "Siti", "#2"])
    book.save(xlsx)
    assert _records(xlsx) == [
        (2, {"phone": "6281234567890", "nama": "Budi", "order": "7"}),
        (4, {"phone": "0812-2", "nama": "Siti", "order": "#2"}),
    ]


def test_every_kind_of_bad_row_is_reported_with_line_field_and_reason(
    tmp_path: Path, templates: dict[str, Template]
) -> None:
    path = write_customers(
        tmp_path / "c.csv",
        2,
        extra=[
            ["0812-ABCD-0000", "Letters", "#a"],  # line 4
            ["0812", "Short", "#b"],  # line 5
            ["", "No phone", "#c"],  # line 6
            ["0812-3000-0001", "", "#d"],  # line 7: empty variable
            ["0812-3000-0002", "Tab\there", "#e"],  # line 8
            ["0812-3000-0003", "five     spaces", "#f"],  # line 9
            ["0812-0000-0001", "Dup", "#g"],  # line 10: duplicate of line 3
            ["0812-3000-0004", "Opted", "#h"],  # line 11: opted out
            ["0812-3000-0005", "x" * 40000, "#i"],  # line 12: too long
        ],
    )
    ledger = campaigns.SQLiteStore(tmp_path / "l.db")
    ledger.add_optouts(["6281230000004"], reason="STOP", now=0.0)
    report = campaigns.check(
        path, template=templates["order_update"], channel=CHANNEL_ID, mapping=MAP, optouts=ledger
    )
    # The SDK's own rules name the field (their codes are the SDK's; ours are pinned).
    found = [(r.line, r.field.split("[")[0].split(".")[0]) for r in report.rejects]
    assert found == [
        (4, "to_number"),
        (5, "to_number"),
        (6, "to_number"),
        (7, "parameters"),
        (8, "parameters"),
        (9, "parameters"),
        (10, "to_number"),
        (11, "to_number"),
        (12, "parameters"),
        (12, "parameters"),  # the value, and the body it makes, are both too long
    ], [r.to_dict() for r in report.rejects]
    by_line = {r.line: r for r in report.rejects}
    assert by_line[6].code == "missing"
    assert by_line[10].code == "duplicate" and by_line[11].code == "opted_out"
    assert "new lines, tabs" in by_line[8].reason and "characters" in by_line[12].reason
    assert all(r.reason for r in report.rejects)
    assert "duplicate of line 3" in report.rejects[6].reason
    assert (report.summary.rows, report.summary.invalid) == (2, 7)
    assert (report.summary.duplicates, report.summary.opted_out) == (1, 1)
    assert not report.ok


def test_bad_rows_block_the_campaign_unless_skip_invalid(
    tmp_path: Path, templates: dict[str, Template]
) -> None:
    path = write_customers(tmp_path / "c.csv", 3, extra=[["0812", "Short", "#b"]])
    store = campaigns.SQLiteStore(tmp_path / "l.db")
    created = campaigns.create(
        store, path, template=templates["order_update"], channel=CHANNEL_ID, mapping=MAP
    )
    assert created.campaign.state is campaigns.CampaignState.BLOCKED
    assert "1 invalid rows" in (created.campaign.pause_reason or "")
    # The same file and settings again: the same campaign, unblocked by skip_invalid.
    again = campaigns.create(
        store,
        path,
        template=templates["order_update"],
        channel=CHANNEL_ID,
        mapping=MAP,
        skip_invalid=True,
    )
    assert again.existing and again.campaign.id == created.campaign.id
    assert again.campaign.state is campaigns.CampaignState.READY
    assert store.counts(created.campaign.id)["pending"] == 3


def test_columns_named_like_the_fields_map_themselves(
    tmp_path: Path, templates: dict[str, Template]
) -> None:
    path = tmp_path / "c.csv"
    path.write_text("to_number,to_name,1,2,notes\n0812-1000-0000,Budi,Budi,#1,vip\n")
    report = campaigns.check(path, template=templates["order_update"], channel=CHANNEL_ID)
    assert report.ok and report.summary.rows == 1
    assert report.mapping == {"to_number": "to_number", "to_name": "to_name", "1": "1", "2": "2"}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"phone": "to_number", "nama": "1"}, "nothing fills {{2}}"),
        ({"phone": "to_number", "nama": "1", "order": "3"}, "'3' is not a field"),
        ({"phone": "to_number", "nama": "1", "nope": "2"}, "no column 'nope'"),
        ({"phone": "to_number", "nama": "1", "order": "1"}, "mapped from both"),
    ],
)
def test_a_mapping_that_cannot_work_is_refused_before_any_row(
    tmp_path: Path, templates: dict[str, Template], mapping: dict[str, str], message: str
) -> None:
    path = write_customers(tmp_path / "c.csv", 1)
    with pytest.raises(ValidationError, match="map: .*" + message.replace("{", r"\{")):
        campaigns.check(
            path, template=templates["order_update"], channel=CHANNEL_ID, mapping=mapping
        )


def test_a_mapping_file_in_either_form(tmp_path: Path) -> None:
    lines = tmp_path / "map.txt"
    lines.write_text("# columns\nphone=to_number\nnama = 1\n")
    as_json = tmp_path / "map.json"
    as_json.write_text('{"phone": "to_number", "nama": "1"}')
    assert campaigns.read_map_file(lines) == campaigns.read_map_file(as_json)


def test_import_memory_does_not_grow_with_the_file(
    tmp_path: Path, templates: dict[str, Template], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches, so a few thousand rows span many of them (tracemalloc is slow).
    monkeypatch.setattr("qontak.campaigns._import.BATCH", 100)
    peaks = []
    for count in (50, 300, 1_500):  # the first run loads phonenumbers' metadata: not counted
        path = write_customers(tmp_path / f"c{count}.csv", count)
        store = campaigns.SQLiteStore(tmp_path / f"l{count}.db", durable=False)
        tracemalloc.start()
        campaigns.create(
            store, path, template=templates["order_update"], channel=CHANNEL_ID, mapping=MAP
        )
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert store.counts(next(iter(store.list_campaigns())).id)["pending"] == count
        store.close()
    # Five times the rows, the same peak (rows kept in memory until the end: +40%).
    assert peaks[2] < peaks[1] * 1.2, peaks


def test_a_row_whose_window_never_holds_in_all_its_zones_is_reported(
    tmp_path: Path, templates: dict[str, Template]
) -> None:
    path = tmp_path / "c.csv"
    # 62811… is WIB or WITA: an hour-long window cannot hold in both at once.
    path.write_text(
        "phone,nama,order,timezone\n0811-1234-567,Budi,#1,\n0811-1234-568,Siti,#2,Asia/Makassar\n"
    )
    report = campaigns.check(
        path,
        template=templates["order_update"],
        channel=CHANNEL_ID,
        mapping=MAP,
        window="08:00-09:00",
    )
    assert [(r.line, r.field, r.code) for r in report.rejects] == [(2, "timezone", "window")]
    assert report.summary.rows == 1


def test_an_import_cut_short_is_never_sent_nor_picked_up_again(
    tmp_path: Path, templates: dict[str, Template]
) -> None:
    # Ctrl-C part-way through the file: the first batches are in the ledger, the rest not.
    # Running the same command again must import the whole file, not send the part.
    path = write_customers(tmp_path / "c.csv", 1200)
    store = campaigns.SQLiteStore(tmp_path / "l.db")

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    args = {"template": templates["order_update"], "channel": CHANNEL_ID, "mapping": MAP}
    with pytest.raises(KeyboardInterrupt):
        campaigns.create(store, path, on_progress=interrupt, **args)
    (cut,) = store.list_campaigns()
    assert cut.state is campaigns.CampaignState.BLOCKED
    assert "did not finish" in (cut.pause_reason or "")
    assert 0 < sum(store.counts(cut.id).values()) < 1200
    again = campaigns.create(store, path, **args)
    assert not again.existing and again.campaign.id != cut.id
    assert again.campaign.state is campaigns.CampaignState.READY
    assert store.counts(again.campaign.id)["pending"] == 1200
    assert campaigns.create(store, path, **args).campaign.id == again.campaign.id
