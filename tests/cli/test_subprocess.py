"""The installed ``qontak`` script as real processes: exit codes, one-line errors, the
``sandbox`` command serving for another process, and ``qontak demo`` in a terminal (a pty)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qontak import Channel
from qontak.cli.demo import KINDS
from tests.cli.conftest import Served

QONTAK = Path(sys.executable).with_name("qontak")

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
        [str(QONTAK), "demo"], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=tmp_path
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
    assert "read" in screen
