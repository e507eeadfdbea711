"""The package as users get it: sdist and wheel built, installed in a fresh virtualenv.

A packaging mistake (a missing data file, an undeclared import, an extra that does not bring
what the command needs) passes every in-tree test, because the tree has everything; only an
install from the built wheel shows it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"


def _run(
    *args: str | Path, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QONTAK_", "PYTHON"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{args[:3]} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def _unmet_build_requirements() -> set[str]:
    """What ``[build-system] requires`` names that this environment lacks.

    The build below runs without isolation, on the dev environment's setuptools (the dev
    extra pins the same floor as ``[build-system]``), so it skips the two throw-away
    environments an isolated build installs setuptools into. Every declared requirement must
    still be met here, except ``wheel``: setuptools 70.1 and later build wheels themselves.
    """
    from build import ProjectBuilder
    from packaging.requirements import Requirement
    from packaging.version import Version

    builder = ProjectBuilder(ROOT)
    unmet = {chain[0] for chain in builder.check_dependencies("wheel")}
    import setuptools

    if Version(setuptools.__version__) >= Version("70.1"):
        unmet = {r for r in unmet if Requirement(r).name != "wheel"}
    return unmet


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    assert not _unmet_build_requirements()
    # sdist first, then the wheel built from the sdist: both must be complete.
    _run(
        sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check",
        "--outdir", out, ROOT,
    )  # fmt: skip
    return out


def test_wheel_carries_the_data_files(dist: Path) -> None:
    (wheel,) = dist.glob("qontak-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "qontak/py.typed",
        "qontak/sandbox/seed.json",
        "qontak/sandbox/static/index.html",
        "qontak/sandbox/static/inbox.js",
    ):
        assert needed in names, f"{needed} missing from {wheel.name}"
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def test_sdk_alone_then_cli_extra_install_and_run(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("qontak-*.whl")
    env_dir = tmp_path / "venv"
    # A venv without pip of its own (ensurepip costs seconds): this process's pip installs
    # into it (`pip --python`), resolving the wheel's dependencies like a user's pip would.
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", py, "install", "--quiet", "--no-compile")
    pip = (*pip, "-c", CONSTRAINTS)

    # `pip install qontak`: the SDK works, and the command says which extra it needs.
    _run(*pip, wheel)
    probe = (
        "import sys, qontak\n"
        "from qontak import Qontak, messages\n"
        "heavy = {'typer', 'rich', 'starlette', 'uvicorn', 'openpyxl', 'psycopg'}\n"
        "heavy &= set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "print(qontak.__version__)\n"
    )
    version = _run(py, "-c", probe).stdout.strip()
    assert version and version[0].isdigit()
    bare = _run(env_dir / "bin" / "qontak", "--help", check=False)
    assert bare.returncode == 2
    assert "pip install 'qontak[cli]'" in bare.stderr
    assert "Traceback" not in bare.stderr

    # `pip install qontak[cli]`: the command runs from the installed wheel; a command that
    # needs another extra says which one instead of a traceback.
    _run(*pip, f"{wheel}[cli]")
    helped = _run(env_dir / "bin" / "qontak", "--help")
    assert "Usage: qontak" in helped.stdout
    no_sandbox = _run(env_dir / "bin" / "qontak", "sandbox", "--port", "0", check=False)
    assert no_sandbox.returncode == 2, no_sandbox.stderr
    assert "pip install 'qontak[sandbox]'" in no_sandbox.stderr
    assert "Traceback" not in no_sandbox.stderr
