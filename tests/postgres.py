"""A throw-away PostgreSQL cluster for the tests: Debian's server binaries, started and stopped.

No Docker and no shared server: ``initdb`` into a fresh temp directory, ``pg_ctl start`` on a Unix
socket in that directory (no TCP port, so nothing clashes with TIME_WAIT ports after load tests),
``pg_ctl stop`` when the session ends. The binaries refuse to run as root (CI runs as root), so
they run as the ``postgres`` user on a directory it owns.

``make test`` installs the ``postgresql`` package when it is missing; where it still cannot be
found the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresCluster", "find_bindir", "throwaway_cluster"]


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb`` and ``pg_ctl``."""

    def version(initdb: str) -> int:
        name = Path(initdb).parent.parent.name
        return int(name) if name.isdigit() else 0

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    for initdb in reversed(candidates):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists():
            return bindir
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


@dataclass(frozen=True)
class PostgresCluster:
    """Where the running test cluster listens."""

    socket_dir: Path
    user: str
    dbname: str
    data_dir: Path | None = None
    options: str = ""

    @property
    def url(self) -> str:
        """A libpq URL over the Unix socket, e.g. for ``--db`` or ``psycopg.connect``."""
        return f"postgresql://{self.user}@/{self.dbname}?host={self.socket_dir}"

    @property
    def conninfo(self) -> str:
        return f"host={self.socket_dir} user={self.user} dbname={self.dbname}"

    def createdb(self, name: str) -> str:
        """Create another database in the cluster and return its URL (one per test if needed)."""
        _as_owner(
            [str(_BINDIR_CACHE[0] / "createdb"), "-h", str(self.socket_dir), "-U", self.user, name]
        )
        return f"postgresql://{self.user}@/{name}?host={self.socket_dir}"

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``: like a crash; clients lose their
        connections mid-transaction)."""
        _as_owner([*self._pg_ctl(), "-m", "immediate", "-w", "stop"])

    def start(self) -> None:
        """Start the server again on the same data and socket."""
        _as_owner(
            [
                *self._pg_ctl(),
                "-l",
                str(self.socket_dir / "log"),
                "-o",
                self.options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def restart(self, down: float = 0.0) -> None:
        """Stop the server, stay down ``down`` seconds, start it again: what a failover or
        a reboot of the database looks like to its clients."""
        self.stop()
        time.sleep(down)
        self.start()

    def _pg_ctl(self) -> list[str]:
        if self.data_dir is None:
            raise RuntimeError("this cluster was not started by throwaway_cluster()")
        return [str(_BINDIR_CACHE[0] / "pg_ctl"), "-D", str(self.data_dir)]


_BINDIR_CACHE: list[Path] = []


def _owner() -> str | None:
    """Run the server binaries as ``postgres`` when we are root (they refuse root)."""
    return "postgres" if os.geteuid() == 0 else None


def _as_owner(cmd: list[str]) -> None:
    owner = _owner()
    if owner is not None:
        cmd = ["runuser", "-u", owner, "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}… failed: {proc.stderr.strip()[-800:]}")


@contextmanager
def throwaway_cluster() -> Iterator[PostgresCluster]:
    """Start a fresh cluster in a temp dir; stop it and delete everything afterwards."""
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    _BINDIR_CACHE[:] = [bindir]
    # Under /tmp directly: pytest's tmp dirs are mode 700 and the postgres user cannot enter them.
    root = Path(tempfile.mkdtemp(prefix="qontak-pg-"))
    owner = _owner()
    if owner is not None:
        shutil.chown(root, owner)
    data = root / "data"
    user = "qontak"
    try:
        _as_owner(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                user,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ]
        )
        options = (
            f"-c listen_addresses='' -k {root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        _as_owner(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        try:
            cluster = PostgresCluster(
                socket_dir=root, user=user, dbname="postgres", data_dir=data, options=options
            )
            yield cluster
        finally:
            subprocess.run(
                (["runuser", "-u", owner, "--"] if owner else [])
                + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
