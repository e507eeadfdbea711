"""The README's SDK example runs as written, against a sandbox on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, FaultConfig, Sandbox

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_mentions_the_two_quick_start_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text


def test_readme_ten_line_example_runs_as_written(tmp_path: Path) -> None:
    example = python_blocks()[0]
    assert "Qontak()" in example and len(example.strip().splitlines()) <= 12
    script = tmp_path / "readme_example.py"
    script.write_text(example, encoding="utf-8")
    # No delivery delays: the example's wait() polls every 2 s, and its first poll then
    # already sees "read" (the statuses in between are not what this test is about).
    sandbox = Sandbox(faults=FaultConfig(), delivery_delays=(0.0, 0.0, 0.0))
    try:
        with sandbox.run_in_thread() as url:
            env = {
                **os.environ,
                "QONTAK_BASE_URL": url,
                "QONTAK_CLIENT_ID": SANDBOX_CLIENT_ID,
                "QONTAK_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
            }
            env.pop("QONTAK_LOG", None)
            done = subprocess.run(
                [sys.executable, str(script)],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
        accepted = sandbox.messages()
    finally:
        sandbox.close()
    assert done.returncode == 0, done.stderr
    assert "123456" in done.stdout  # the preview shows the code
    assert done.stdout.strip().splitlines()[-1] == "6281234567890 read"
    assert len(accepted) == 1
