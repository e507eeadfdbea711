"""Send windows in each recipient's local time across WIB, WITA and WIT, with a fake clock:
the pure functions, and a campaign that sleeps until each zone's window opens."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from qontak import ValidationError, campaigns
from qontak.campaigns import is_open, next_open, parse_window, zones_for_number
from qontak.sandbox import FaultConfig, RateLimitConfig, Sandbox, SandboxConfig
from qontak.testing import async_sandbox_client

from .conftest import CHANNEL_ID, advancing

WIB, WITA, WIT = "Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"


def utc(hour: int, minute: int = 0, day: int = 5) -> float:
    return datetime(2026, 1, day, hour, minute, tzinfo=timezone.utc).timestamp()


def test_the_window_is_read_in_each_zone() -> None:
    window = parse_window("08:00-21:00")
    # 01:00 UTC is 08:00 WIB, 09:00 WITA, 10:00 WIT: open everywhere.
    assert all(is_open(window, z, utc(1)) for z in (WIB, WITA, WIT))
    # 23:30 UTC is 06:30 WIB (closed), 07:30 WITA (closed), 08:30 WIT (open).
    assert [is_open(window, z, utc(23, 30)) for z in (WIB, WITA, WIT)] == [False, False, True]
    # 13:30 UTC is 20:30 WIB (open), 21:30 WITA (closed), 22:30 WIT (closed).
    assert [is_open(window, z, utc(13, 30)) for z in (WIB, WITA, WIT)] == [True, False, False]


def test_a_number_in_several_zones_needs_the_window_in_all_of_them() -> None:
    window = parse_window("08:00-21:00")
    zones = f"{WIB}|{WIT}"
    assert not is_open(window, zones, utc(23, 30))  # 06:30 WIB
    assert next_open(window, zones, utc(23, 30)) == utc(1, 0, day=6)  # 08:00 WIB
    assert not is_open(window, zones, utc(12, 30))  # 21:30 WIT
    assert next_open(window, zones, utc(12, 30)) == utc(1, 0, day=6)


def test_the_next_opening_is_found_in_each_zone() -> None:
    window = parse_window("08:00-21:00")
    now = utc(15)  # 22:00 WIB, 23:00 WITA, 00:00 WIT
    assert next_open(window, WIT, now) == utc(23)  # 08:00 WIT
    assert next_open(window, WITA, now) == utc(0, day=6)  # 08:00 WITA
    assert next_open(window, WIB, now) == utc(1, day=6)  # 08:00 WIB


def test_a_window_across_midnight_and_one_that_never_holds() -> None:
    night = parse_window("21:00-08:00")
    assert is_open(night, WIB, utc(15)) and not is_open(night, WIB, utc(5))
    narrow = parse_window("08:00-09:00")  # WIB and WIT are two hours apart
    assert next_open(narrow, f"{WIB}|{WIT}", utc(5)) is None


def test_bad_windows_and_zones_are_validation_errors() -> None:
    for text in ("8-9", "25:00-26:00", "09:00-09:00", ""):
        with pytest.raises(ValidationError) as exc:
            parse_window(text)
        assert exc.value.field == "window"
    with pytest.raises(ValidationError) as exc:
        zones_for_number("6281234567890", override="Mars/Olympus")
    assert exc.value.field == "timezone"


def test_phonenumbers_places_indonesian_mobiles_and_a_column_overrides() -> None:
    assert zones_for_number("628111234567") == (WIB, WITA)
    assert zones_for_number("6281234567890") == (WIB,)
    assert zones_for_number("6281234567890", override=WIT) == (WIT,)


@pytest.mark.anyio
async def test_rows_wait_for_their_window_and_the_campaign_says_when(tmp_path: Path) -> None:
    # 15:00 UTC: 22:00 WIB, 23:00 WITA, 00:00 WIT: every window is closed.
    start = utc(15)
    offset = start - datetime.now(timezone.utc).timestamp()
    box = Sandbox(
        SandboxConfig(
            clock=lambda: datetime.now(timezone.utc).timestamp() + offset,
            rate_limits=RateLimitConfig(enabled=False),
            faults=FaultConfig(),
        )
    )
    source = tmp_path / "c.csv"
    zones = [WIB, WITA, WIT]
    with source.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["phone", "nama", "order", "timezone"])
        for i in range(9):
            out.writerow([f"0812-1000-{i:04d}", f"Budi {i}", f"#{i}", zones[i % 3]])
    store = campaigns.SQLiteStore(tmp_path / "l.db", durable=False)
    events: list[dict[str, object]] = []
    async with async_sandbox_client(box) as (client, sandbox):
        template = await client.templates.find("order_update", language="id")
        created = campaigns.create(
            store,
            source,
            template=template,
            channel=CHANNEL_ID,
            window="08:00-21:00",
            mapping={"phone": "to_number", "nama": "1", "order": "2"},
            now=sandbox.now(),
        )
        options = campaigns.RunOptions(
            clock=sandbox.now, sleep=advancing(sandbox), on_event=events.append
        )
        result = await campaigns.run(client, store, created.campaign.id, options)
        assert result.counts["accepted"] == 9
        waits = [e["until"] for e in events if e["event"] == "waiting"]
        # It slept until 08:00 WIT, then 08:00 WITA, then 08:00 WIB, and said so.
        assert waits[:3] == ["2026-01-05T23:00:00Z", "2026-01-06T00:00:00Z", "2026-01-06T01:00:00Z"]
        for message in sandbox.messages():
            row = next(
                r
                for r in store.iter_rows(created.campaign.id)
                if r.to_number == message["to_number"]
            )
            sent = datetime.fromisoformat(message["created_at"].replace("Z", "+00:00"))
            local = sent.astimezone(ZoneInfo(row.zones)).time()
            assert parse_window("08:00-21:00").contains(local), (row.zones, local)
    store.close()
    box.close()
