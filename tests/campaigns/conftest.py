"""Helpers for the campaign tests: input files, a sandbox with faults, ground truth checks."""

from __future__ import annotations

import csv
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from qontak.campaigns import RowState, Store
from qontak.sandbox import Sandbox

CHANNEL_ID = "56b60c3c-0123-46af-958b-32f3ad12ee37"
#: Every fault the sandbox has, on every request (sends and reads), seeded.
ALL_FAULTS = dict(
    error_before=0.04, error_after=0.04, rate_limit=0.04, drop_before=0.04, lost_response=0.04
)


def advancing(sandbox: Sandbox) -> Callable[[float], Awaitable[None]]:
    """An async sleep that moves the sandbox clock instead of waiting."""

    async def sleep(seconds: float) -> None:
        sandbox.advance(seconds)

    return sleep


def number(i: int) -> str:
    """A distinct Indonesian mobile number for customer ``i`` (as people write it)."""
    return f"0812-{i // 10000:04d}-{i % 10000:04d}"


def normalised(i: int) -> str:
    return f"62812{i // 10000:04d}{i % 10000:04d}"


def write_customers(path: Path, count: int, *, extra: list[list[str]] | None = None) -> Path:
    """A CSV of ``count`` customers for the ``order_update`` template ({{1}} name, {{2}} order)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["phone", "nama", "order"])
        for i in range(count):
            out.writerow([number(i), f"Budi {i}", f"#{i:05d}"])
        for row in extra or []:
            out.writerow(row)
    return path


def ground_truth_by_number(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        out.setdefault(m["to_number"], []).append(m)
    return out


def assert_ledger_matches_ground_truth(
    store: Store, campaign_id: str, messages: list[dict[str, Any]]
) -> None:
    """Every row accepted at most once by the server, every accepted message `accepted` in
    the ledger with its broadcast id, nothing missing, nothing left uncertain."""
    truth = ground_truth_by_number(messages)
    twice = {n: len(ms) for n, ms in truth.items() if len(ms) > 1}
    assert not twice, f"accepted more than once: {twice}"
    rows = list(store.iter_rows(campaign_id))
    counts = store.counts(campaign_id)
    assert counts["unknown"] == 0 and counts["sending"] == 0 and counts["pending"] == 0, counts
    for row in rows:
        sent = truth.get(row.to_number)
        if row.state is RowState.ACCEPTED:
            assert sent, f"line {row.line} accepted in the ledger but not on the server"
            assert sent[0]["broadcast_id"] == row.broadcast_id
        else:
            assert not sent, f"line {row.line} is {row.state.value} but the server has it"
    ledger_numbers = {r.to_number for r in rows}
    assert set(truth) <= ledger_numbers


T = TypeVar("T")


def open_together(open_one: Callable[[], T], count: int) -> list[T]:
    """``count`` threads calling ``open_one`` at the same moment (commands or workers starting
    together on one ledger); returns what they opened, or raises the first error."""
    opened: list[T] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def start() -> None:
        barrier.wait()
        try:
            opened.append(open_one())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return opened
