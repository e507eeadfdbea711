"""The ``qontak`` command line: channels, templates, send/preview, logs, sandbox, doctor, demo.

Every command takes ``--json`` (stable shapes, documented on each command) and exits with the
codes of :mod:`qontak.cli.exit_codes`: 0 ok, 1 API error, 2 usage/validation, 3 auth,
4 rate limited, 5 outcome unknown.

>>> from typer.testing import CliRunner
>>> from qontak.cli import app
>>> CliRunner().invoke(app, ["--env", "sandbox", "channels", "--json"])  # doctest: +SKIP
"""

from __future__ import annotations

from . import broadcasts, channels, demo, doctor, sandbox, send, templates
from ._app import app, use_qontak_classes
from .exit_codes import ExitCode, exit_code_for

__all__ = ["ExitCode", "app", "exit_code_for", "main"]

for _module in (channels, templates, send, broadcasts, sandbox, doctor, demo):
    _module.register(app)
use_qontak_classes(app)


def main() -> None:
    """Entry point of the ``qontak`` script."""
    app()
