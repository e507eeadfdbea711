"""``qontak campaign`` and ``qontak optout`` as a user runs them: subprocesses against a real
sandbox on loopback. The kill test SIGKILLs a run at random points (seeded), resumes and
reconciles, and checks the server's ground truth: nobody twice, nobody missing."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from qontak import AsyncQontak, campaigns
from qontak.cli import app
from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    RateLimitConfig,
    Sandbox,
)

from .conftest import assert_ledger_matches_ground_truth, write_customers

QONTAK = Path(sys.executable).with_name("qontak")
pytestmark = pytest.mark.skipif(not QONTAK.exists(), reason="the qontak script is not installed")
MAP = ["-m", "phone=to_number", "-m", "nama=1", "-m", "order=2"]
RUN = ["campaign", "run", "-t", "order_update", "-l", "id", *MAP]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Sandbox, str]]:
    box = Sandbox(
        rate_limits=RateLimitConfig(enabled=False),
        faults=FaultConfig(seed=5, lost_response=0.05, error_after=0.03, scope="send"),
        delivery_delays=(0.05, 0.1, 0.15),
    )
    with box.run_in_thread() as url:
        yield box, url
    box.close()


def _env(url: str, db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
    env.update(
        QONTAK_BASE_URL=url,
        QONTAK_CLIENT_ID=SANDBOX_CLIENT_ID,
        QONTAK_CLIENT_SECRET=SANDBOX_CLIENT_SECRET,
        QONTAK_CAMPAIGN_DB=str(db),
        QONTAK_RATE_LIMITS="send=6000/min,all=12000/min,burst=400/s",
    )
    return env


def _qontak(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(QONTAK), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


class _Done:
    """What an in-process CLI run printed, shaped like a CompletedProcess."""

    def __init__(self, result: Result) -> None:
        self.returncode = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr


def _cli(env: dict[str, str], *args: str, cwd: Path) -> _Done:
    """``qontak …`` in process (typer's runner): the same code, without a process start."""
    old = Path.cwd()
    os.chdir(cwd)
    try:
        full: dict[str, str | None] = {k: None for k in os.environ if k.startswith("QONTAK_")}
        full.update(env)
        return _Done(CliRunner().invoke(app, list(args), env=full, catch_exceptions=False))
    finally:
        os.chdir(old)


def _accepted(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            found = conn.execute(
                "SELECT COUNT(*) FROM campaign_rows WHERE state = 'accepted'"
            ).fetchone()
        return int(found[0])
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("seed", [1, 2])
def test_killed_at_random_points_then_resumed_and_reconciled_nobody_twice(
    tmp_path: Path, served: tuple[Sandbox, str], seed: int
) -> None:
    box, url = served
    box.reset()
    rng = random.Random(seed)
    rows = 80
    source = write_customers(tmp_path / "c.csv", rows)
    db = tmp_path / "ledger.db"
    env = _env(url, db)
    kills = 0
    for _attempt in range(2):
        proc = subprocess.Popen(
            [str(QONTAK), *RUN, str(source), "--json", "-c", "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        first = json.loads(proc.stdout.readline() if proc.stdout else "{}")
        cid = first["campaign_id"]
        # Kill somewhere after sending started (the point is seeded), mid-request or not.
        target = _accepted(db) + rng.randint(3, 25)
        deadline = time.monotonic() + 20
        while _accepted(db) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.001, 0.02))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    assert kills >= 1
    time.sleep(0.3)  # requests the dead process made are settled on the server by now
    import anyio

    async def settle() -> None:
        store = campaigns.SQLiteStore(db)
        async with AsyncQontak(
            SANDBOX_CLIENT_ID,
            SANDBOX_CLIENT_SECRET,
            base_url=url,
            env_file=None,
            rate_limits=False,
        ) as client:
            for _ in range(5):
                await campaigns.reconcile(client, store, cid, settle_after=0.2)
                result = await campaigns.run(client, store, cid, campaigns.RunOptions())
                if result.counts["unknown"] == 0 and result.counts["pending"] == 0:
                    break
                time.sleep(0.3)
        assert_ledger_matches_ground_truth(store, cid, box.messages())
        assert store.counts(cid)["accepted"] == rows
        store.close()

    anyio.run(settle)


def test_run_prints_the_id_first_blocks_on_bad_rows_and_continues_the_same_campaign(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    box, url = served
    box.reset()
    env = _env(url, tmp_path / "l.db")
    source = write_customers(tmp_path / "c.csv", 5, extra=[["0812", "Short", "#x"]])
    check = _cli(
        env, "campaign", "check", str(source), "-t", "order_update", "-l", "id", *MAP, cwd=tmp_path
    )
    assert check.returncode == 2 and "7" in check.stdout and "too short" in check.stdout
    assert not (tmp_path / "l.db").exists(), "check must not create a ledger"
    blocked = _cli(env, *RUN, str(source), cwd=tmp_path)
    assert blocked.returncode == 2 and blocked.stdout.startswith("campaign c-")
    assert "--skip-invalid" in blocked.stderr and not box.messages()
    cid = blocked.stdout.split()[1]
    sent = _cli(env, *RUN, str(source), "--skip-invalid", "--json", cwd=tmp_path)
    lines = [json.loads(line) for line in sent.stdout.splitlines()]
    assert lines[0] == {"campaign_id": cid}
    assert lines[-1]["event"] == "finished"
    assert sent.returncode in (0, 5)
    assert {m["to_number"] for m in box.messages()} <= {f"6281200000{i:03d}" for i in range(5)}


def test_optouts_report_escapes_formulas_and_status_from_the_cli(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    box, url = served
    box.reset()
    box.set_faults(FaultConfig())
    try:
        env = _env(url, tmp_path / "l.db")
        source = tmp_path / "c.csv"
        with source.open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["phone", "name", "nama", "order"])
            out.writerow(["0812-1111-0001", '=HYPERLINK("http://evil")', "Budi", "#1"])
            out.writerow(["0812-1111-0002", "+SUM(A1)", "Siti", "-1"])
            out.writerow(["0812-1111-0003", "@cmd", "Ani", "#3"])
        optouts = tmp_path / "stop.csv"
        optouts.write_text("nomor\n0812-1111-0003\nnot-a-number\n")
        imported = _cli(env, "optout", "import", str(optouts), "--json", cwd=tmp_path)
        assert json.loads(imported.stdout)["added"] == 1
        assert json.loads(imported.stdout)["invalid"][0]["line"] == 3
        run = _cli(env, *RUN, "-m", "name=to_name", str(source), cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        cid = run.stdout.split()[1]
        assert {m["to_number"] for m in box.messages()} == {"6281211110001", "6281211110002"}
        report = tmp_path / "r.csv"
        assert (
            _cli(env, "campaign", "report", cid, "--out", str(report), cwd=tmp_path).returncode == 0
        )
        with report.open(encoding="utf-8-sig", newline="") as f:
            cells = [c for row in csv.reader(f) for c in row]
        assert '\'=HYPERLINK("http://evil")' in cells and "'+SUM(A1)" in cells
        assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
        status = _cli(env, "campaign", "status", cid, "--json", cwd=tmp_path)
        data = json.loads(status.stdout)
        assert data["counts"]["accepted"] == 2 and data["rejects"] == {"opted_out": 1}
        listed = json.loads(_cli(env, "optout", "list", "--json", cwd=tmp_path).stdout)
        assert [o["to_number"] for o in listed] == ["6281211110003"]
    finally:
        box.set_faults(FaultConfig(seed=5, lost_response=0.05, error_after=0.03, scope="send"))


def test_sigint_records_the_requests_in_flight_and_resume_finishes(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    box, url = served
    box.reset()
    box.set_faults(FaultConfig())
    try:
        db = tmp_path / "ledger.db"
        env = {**_env(url, db), "QONTAK_RATE_LIMITS": "send=600/min,burst=5/s"}
        source = write_customers(tmp_path / "c.csv", 20)
        proc = subprocess.Popen(
            [str(QONTAK), *RUN, str(source), "-c", "3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 20
        while _accepted(db) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        cid = out.split()[1]
        assert f"qontak campaign resume {cid}" in out
        store = campaigns.SQLiteStore(db)
        counts = store.counts(cid)
        # In-flight requests were finished and recorded: nothing is left uncertain.
        assert counts["sending"] == 0 and counts["unknown"] == 0, counts
        assert counts["accepted"] == len(box.messages()) < 20
        store.close()
        resumed = _cli(_env(url, db), "campaign", "resume", cid, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert len(box.messages()) == 20
    finally:
        box.set_faults(FaultConfig(seed=5, lost_response=0.05, error_after=0.03, scope="send"))


def test_list_show_pause_and_a_second_live_runner_from_the_cli(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    box, url = served
    box.reset()
    db = tmp_path / "l.db"
    env = _env(url, db)
    source = write_customers(tmp_path / "c.csv", 3, extra=[["0812", "Short", "#x"]])
    cid = _cli(env, *RUN, str(source), "--skip-invalid", cwd=tmp_path).stdout.split()[1]
    listed = json.loads(_cli(env, "campaign", "list", "--json", cwd=tmp_path).stdout)
    assert [c["id"] for c in listed] == [cid] and listed[0]["template"]["name"] == "order_update"
    shown = json.loads(_cli(env, "campaign", "show", cid, "--json", cwd=tmp_path).stdout)
    assert shown["rejected_rows"][0]["line"] == 5 and shown["rejects"] == {"invalid": 1}
    # It ran to the end: a pause would only misreport it.
    done = _cli(env, "campaign", "pause", cid, "--json", cwd=tmp_path)
    assert done.returncode == 1 and "is done" in json.loads(done.stdout)["error"]["message"]
    store = campaigns.SQLiteStore(db)
    store.update_campaign(cid, state=campaigns.CampaignState.RUNNING)
    store.close()
    paused = _cli(env, "campaign", "pause", cid, "--json", cwd=tmp_path)
    assert json.loads(paused.stdout) == {"campaign_id": cid, "state": "paused"}
    # Another live process holds the lease: resume refuses instead of sending twice.
    store = campaigns.SQLiteStore(db)
    assert store.acquire(cid, f"{os.uname().nodename}:1:run-x", now=time.time(), ttl=60)
    store.close()
    busy = _cli(env, "campaign", "resume", cid, cwd=tmp_path)
    assert busy.returncode == 1 and "being run by another process" in busy.stderr
    missing = _cli(env, "campaign", "show", "c-nope", cwd=tmp_path)
    assert missing.returncode == 2 and "no campaign 'c-nope'" in missing.stderr


def test_a_users_pause_holds_when_the_same_run_command_comes_again(
    tmp_path: Path, served: tuple[Sandbox, str]
) -> None:
    box, url = served
    box.reset()
    env = _env(url, tmp_path / "l.db")
    source = write_customers(tmp_path / "c.csv", 4, extra=[["0812", "Short", "#x"]])
    cid = _cli(env, *RUN, str(source), cwd=tmp_path).stdout.split()[1]  # blocked: bad row
    # A blocked campaign sends nothing: pausing it is refused, or a later resume would
    # send it without --skip-invalid.
    refused = _cli(env, "campaign", "pause", cid, cwd=tmp_path)
    assert refused.returncode == 1 and "--skip-invalid" in refused.stderr
    store = campaigns.SQLiteStore(tmp_path / "l.db")
    blocked = store.get_campaign(cid)
    assert blocked is not None and blocked.state is campaigns.CampaignState.BLOCKED
    # Made ready (as an earlier --skip-invalid run would have), then paused by the user.
    store.update_campaign(cid, state=campaigns.CampaignState.READY)
    store.close()
    assert _cli(env, "campaign", "pause", cid, cwd=tmp_path).returncode == 0
    # The same command again (a retry loop, a cron job) finds the campaign and must not
    # lift the pause: nothing is sent, and it says how to continue.
    again = _cli(env, *RUN, str(source), "--skip-invalid", cwd=tmp_path)
    assert again.returncode == 1, again.stderr
    assert again.stdout.startswith(f"campaign {cid}")
    assert "paused by the user" in again.stderr
    assert f"qontak campaign resume {cid}" in again.stderr
    assert not box.messages()
    as_json = _cli(env, *RUN, str(source), "--skip-invalid", "--json", cwd=tmp_path)
    assert as_json.returncode == 1 and not box.messages()
    event = json.loads(as_json.stdout.splitlines()[1])
    assert event == {
        "event": "paused",
        "campaign_id": cid,
        "reason": "paused by user",
        "code": "user",
    }
    store = campaigns.SQLiteStore(tmp_path / "l.db")
    found = store.get_campaign(cid)
    assert found is not None and found.state is campaigns.CampaignState.PAUSED
    assert found.pause_code == "user"
    store.close()
    resumed = _cli(env, "campaign", "resume", cid, cwd=tmp_path)
    assert resumed.returncode in (0, 5), resumed.stderr
    assert box.messages()


def test_an_empty_ledger_lists_no_campaigns_and_says_how_to_start(tmp_path: Path) -> None:
    env = {"QONTAK_CAMPAIGN_DB": str(tmp_path / "empty.db")}
    listed = _cli(env, "campaign", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "no campaigns yet" in listed.stdout
    assert "qontak campaign run FILE" in listed.stdout
    assert json.loads(_cli(env, "campaign", "list", "--json", cwd=tmp_path).stdout) == []
