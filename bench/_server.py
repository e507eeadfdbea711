"""A loopback sandbox in a child process, so server work never counts as client CPU.

Run directly (``python bench/_server.py PORT``) it serves a sandbox with faults and rate
limits off and immediate delivery, until terminated.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

API_PREFIX = "/qontak/chat/v1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the sandbox exited early with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the sandbox did not listen on port {port} within {timeout:.0f} s")


@contextlib.contextmanager
def loopback_sandbox() -> Iterator[str]:
    """Start a sandbox under uvicorn in a child process; yields its API base URL."""
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("QONTAK_SANDBOX_FAULTS", None)
    proc = subprocess.Popen([sys.executable, str(Path(__file__)), str(port)], env=env)
    try:
        _wait_ready(port, proc)
        yield f"http://127.0.0.1:{port}{API_PREFIX}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a wedged server
            proc.kill()
            proc.wait()


def _serve(port: int) -> None:
    import uvicorn

    from qontak.sandbox import FaultConfig, RateLimitConfig, Sandbox

    sandbox = Sandbox(
        faults=FaultConfig(),
        delivery_delays=(0.0, 0.0, 0.0),
        rate_limits=RateLimitConfig(enabled=False),
    )
    uvicorn.run(
        sandbox.app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
