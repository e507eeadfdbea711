"""The installed ``qontak`` script as real processes: exit codes, one-line errors, the
``sandbox`` command serving for another process, and ``qontak demo`` in a terminal (a pty)."""

from __future__ import annotations

import json
import os
import pty
import queue
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from qontak import Channel, Qontak
from qontak.cli.demo import KINDS
from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from tests.cli.conftest import Served

QONTAK = Path(sys.executable).with_name("qontak")
OTP_ID_ID = "60cccaa0-ccd9-4efd-bdfb-875859c4b50a"  # login_otp in Indonesian, from the seed

pytestmark = pytest.mark.skipif(not QONTAK.exists(), reason="the qontak script is not installed")


def _run(
    *args: str, env: dict[str, str | None], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
    full.update({k: v for k, v in env.items() if v is not None})
    return subprocess.run(
        [str(QONTAK), *args], capture_output=True, text=True, env=full, timeout=timeout
    )


def test_script_lists_channels_as_json(served: Served) -> None:
    proc = _run("channels", "--json", env=served.env())
    assert proc.returncode == 0, proc.stderr
    [channel] = [Channel.model_validate(c) for c in json.loads(proc.stdout)]
    assert channel.is_active


def test_script_bad_option_is_one_red_line_and_exit_2(served: Served) -> None:
    proc = _run("send", "--no-such-flag", env=served.env())
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "--no-such-flag" in proc.stderr
    assert proc.stdout == ""


def test_script_bad_credentials_exit_3(served: Served) -> None:
    proc = _run("templates", env=served.env(QONTAK_CLIENT_SECRET="canary-secret-7f3a9c1e"))
    assert proc.returncode == 3
    assert "canary-secret-7f3a9c1e" not in proc.stdout + proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sandbox exited early: {proc.stdout and proc.stdout.read()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # waiting for a socket to open, not for a clock
    raise AssertionError("sandbox did not start listening")


def test_sandbox_command_serves_and_prints_its_credentials(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
    proc = subprocess.Popen(
        [str(QONTAK), "sandbox", "--port", str(port), "--json", "--delays", "0,0,0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        _wait_for_port(port, proc, time.monotonic() + 20)
        client_env: dict[str, str | None] = {"QONTAK_BASE_URL": f"http://127.0.0.1:{port}"}
        listed = _run("--env", "sandbox", "templates", "--json", env=client_env)
        assert listed.returncode == 0, listed.stderr
        assert any(t["name"] == "login_otp" for t in json.loads(listed.stdout))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    info = json.loads(out[: out.index("}") + 1])
    assert info["base_url"] == f"http://127.0.0.1:{port}/qontak/chat/v1"
    assert info["inbox"] == f"http://127.0.0.1:{port}/"
    assert info["client_id"] == "sandbox-client-id"
    assert info["faults"] == "off" and info["faults_from"] is None


def _serve_briefly(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Start ``qontak sandbox ARGS``, wait until it listens, stop it with Ctrl-C; its output."""
    port = _free_port()
    proc = subprocess.Popen(
        [str(QONTAK), "sandbox", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
    )
    try:
        _wait_for_port(port, proc, time.monotonic() + 20)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    return out


def test_sandbox_banner_shows_faults_from_the_environment(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
    env.update({"QONTAK_SANDBOX_FAULTS": "seed=3,rate_limit=0.25", "COLUMNS": "200"})
    out = _serve_briefly([], env, tmp_path)
    faults = next(line for line in out.splitlines() if "Faults" in line)
    assert "seed=3,rate_limit=0.25 (from QONTAK_SANDBOX_FAULTS)" in faults, out
    assert out.index("Faults") < out.index("Serving; press Ctrl-C")
    info = json.loads(_serve_briefly(["--json"], env, tmp_path).split("\n}")[0] + "\n}")
    assert "rate_limit=0.25" in info["faults"] and "seed=3" in info["faults"]
    assert info["faults_from"] == "QONTAK_SANDBOX_FAULTS"


def test_demo_in_a_terminal_finishes_and_shows_every_kind(tmp_path: Path) -> None:
    """``qontak demo`` on a pseudo-terminal (colours, live progress bars) ends by itself."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
    env.update({"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"})
    proc = subprocess.Popen(
        # No delivery delays (the default ones only make a person's demo watchable) and no
        # rate limits (the JSON demo test keeps them): the terminal path (colours, live bars)
        # is the same, in a fraction of the time.
        [str(QONTAK), "demo", "--delays", "0,0,0", "--no-rate-limits"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=tmp_path,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 50
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert code == 0, screen[-3000:]
    for kind in KINDS:
        assert kind.label in screen and kind.template in screen
    assert "7 kinds sent and read" in screen
    # 20 customers, a bad row and a duplicate; one number opted out.
    assert "22 rows read: 19 to send, 1 invalid (skipped)" in screen


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
    env.update({"COLUMNS": "200", **extra})
    return env


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if it lingers: no server outlives its test, even a failing one."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_demo_serve_prints_the_inbox_and_keeps_serving(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            *(str(QONTAK), "demo", "--serve", "--port", str(port)),
            *("--delays", "0,0,0", "--no-rate-limits"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_clean_env(),
        cwd=tmp_path,
    )
    # A thread reads stdout, so the wait below has a deadline even if a line never comes
    # (a blocking readline would hang the suite), and the pipe never fills up.
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        inbox = None
        deadline = time.monotonic() + 60
        while inbox is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no inbox line:\n" + "".join(seen)
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line is not None, "demo exited before serving:\n" + "".join(seen)
            seen.append(line)
            match = re.search(r"Open the inbox: (http://\S+)", line)
            inbox = match.group(1) if match else None
        assert inbox == f"http://127.0.0.1:{port}/"
        # The demo is over, yet the same sandbox still answers, holding the demo's messages.
        page = httpx.get(inbox, timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        truth = httpx.get(inbox + "_sandbox/messages", timeout=10).json()["data"]
        kinds = [m for m in truth if m["to_number"] == "6281234567890"]
        assert sorted(m["template"]["name"] for m in kinds) == sorted(k.template for k in KINDS)
        assert {m["status"] for m in kinds} == {"read"}
        # Then its campaign: 19 customers (one bad row, one duplicate, one opt-out left out),
        # each accepted exactly once despite the faults it ran under.
        campaign = [m["to_number"] for m in truth if m["to_number"] != "6281234567890"]
        assert len(campaign) == len(set(campaign)) == 19
        # --no-rate-limits switched the sandbox's limits off: a burst past its default 10/s
        # (whatever second boundary it straddles) is never refused.
        with Qontak(
            SANDBOX_CLIENT_ID,
            SANDBOX_CLIENT_SECRET,
            base_url=inbox,
            env_file=None,
            rate_limits=False,
            max_retries=0,
        ) as client:
            for _ in range(25):
                client.channels.list()
        assert proc.poll() is None, "demo --serve stopped serving"
        proc.terminate()  # SIGTERM ends it like Ctrl-C: sandbox closed, exit 0
        assert proc.wait(timeout=10) == 0, "".join(seen)
    finally:
        _stop(proc)
        reader.join(timeout=10)


def test_sandbox_with_lost_responses_makes_send_exit_5(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(QONTAK), "sandbox", "--port", str(port), "--faults", "lost_response=1,scope=send"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_clean_env(),
        cwd=tmp_path,
    )
    send = ["send", "--to", "0812-3456-7890", "-t", "login_otp", "-l", "id", "--var", "1=123456"]
    client_env: dict[str, str | None] = {
        "QONTAK_BASE_URL": f"http://127.0.0.1:{port}", "QONTAK_ENV": "sandbox",
    }  # fmt: skip
    try:
        _wait_for_port(port, proc, time.monotonic() + 20)
        plain = _run(*send, env=client_env)
        assert plain.returncode == 5, plain.stderr
        assert plain.stdout == ""
        assert plain.stderr.strip().count("\n") == 0 and "Reconcile" in plain.stderr
        scripted = _run(*send, "--json", env=client_env)
        assert scripted.returncode == 5, scripted.stderr
        error = json.loads(scripted.stdout)["error"]
        assert error["type"] == "DeliveryUnknownError" and error["exit_code"] == 5
        assert error["to_number"] == "6281234567890"
        assert error["message_template_id"] == OTP_ID_ID
        # Both sends really got through; only their answers were lost (scope=send left
        # the template and channel look-ups alone).
        truth = httpx.get(f"http://127.0.0.1:{port}/_sandbox/messages", timeout=10).json()
        assert len(truth["data"]) == 2
    finally:
        _stop(proc)
        out, _ = proc.communicate()
    faults = next(line for line in out.splitlines() if "Faults" in line)
    assert "lost_response=1.0,scope=send (from --faults)" in faults, out
    assert out.index("Faults") < out.index("Serving; press Ctrl-C")


def test_sandbox_refuses_a_non_loopback_host_without_allow_remote(tmp_path: Path) -> None:
    # Refused before anything is bound: nothing listens on 0.0.0.0, even for a moment.
    proc = _run("sandbox", "--host", "0.0.0.0", "--port", "0", env={})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0
    assert "not a loopback address" in proc.stderr and "--allow-remote" in proc.stderr


def test_sandbox_allow_remote_takes_fresh_credentials_and_an_admin_token(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(QONTAK), "sandbox", "--port", str(port), "--allow-remote", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_clean_env(),
        cwd=tmp_path,
    )
    try:
        # The port accepts connections only once the banner is out.
        _wait_for_port(port, proc, time.monotonic() + 20)
        assert proc.stdout is not None
        lines = []
        while not lines or lines[-1] != "}":
            lines.append(proc.stdout.readline().rstrip("\n"))
        info = json.loads("\n".join(lines))
        assert info["remote"] is True
        assert info["url"] == f"http://127.0.0.1:{port}"
        assert info["client_id"] != "sandbox-client-id"
        assert info["client_secret"] not in ("sandbox-client-secret", None)
        token = info["admin_token"]
        assert len(token) >= 32 and info["inbox"].endswith(f"/?token={token}")
        base = {"QONTAK_BASE_URL": info["url"]}
        default = _run("templates", "--json", env={**base, "QONTAK_ENV": "sandbox"})
        assert default.returncode == 3  # the well-known pair is refused
        fresh = {
            "QONTAK_CLIENT_ID": info["client_id"],
            "QONTAK_CLIENT_SECRET": info["client_secret"],
        }
        assert _run("templates", "--json", env={**base, **fresh}).returncode == 0
        messages = info["url"] + "/_sandbox/messages"
        assert httpx.get(messages, timeout=10).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(messages, headers=bearer, timeout=10).status_code == 200
    finally:
        _stop(proc)
        proc.communicate()


def _run_stderr_on_a_terminal(*args: str, env: dict[str, str | None]) -> tuple[int, str, str]:
    """Run ``qontak ARGS`` with stdout on a pipe and stderr on a pseudo-terminal, as in
    ``qontak templates > file`` typed at a prompt: (exit code, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    full = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
    full.update({k: v for k, v in env.items() if v is not None})
    full.update({"TERM": "xterm-256color"})
    proc = subprocess.Popen(
        [str(QONTAK), *args], stdout=subprocess.PIPE, stderr=slave, text=True, env=full
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        # stdout is read after the terminal closes: a table this small fits the pipe buffer.
        while True:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return proc.returncode, out, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("listing", ["templates", "broadcasts"])
def test_paging_status_only_on_a_terminal_stderr(served: Served, listing: str) -> None:
    code, out, terminal = _run_stderr_on_a_terminal(listing, env=served.env())
    assert code == 0, terminal
    assert f"Fetching {listing}…" in terminal
    assert terminal.endswith("\x1b[2K")  # erased again before the table is printed
    assert "Fetching" not in out and "\x1b" not in out
    # Piped stderr gets nothing, even with FORCE_COLOR (which makes rich treat a pipe as a
    # terminal): a log file must not fill with spinner frames.
    piped = _run(listing, env=served.env(FORCE_COLOR="1"))
    assert piped.returncode == 0 and piped.stderr == "" and piped.stdout


@pytest.mark.parametrize("listing", ["templates", "broadcasts"])
def test_json_listing_is_clean_with_a_terminal_stderr(served: Served, listing: str) -> None:
    sent = _run("send", "--to", "0812-3456-7890", "-t", "order_update", "-l", "id",
                "--var", "1=Budi", "--var", "2=Sepatu", env=served.env())  # fmt: skip
    assert sent.returncode == 0, sent.stderr  # so `broadcasts --json` has a row to print
    code, out, terminal = _run_stderr_on_a_terminal(listing, "--json", env=served.env())
    assert code == 0, terminal
    assert terminal == ""  # --json: no status even when a person is watching stderr
    parsed = json.loads(out)
    assert parsed and parsed == json.loads(_run(listing, "--json", env=served.env()).stdout)
