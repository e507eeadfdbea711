"""The ``qontak`` command line: channels, templates, send/preview, logs, sandbox, doctor, demo.

Every command takes ``--json`` (stable shapes, documented on each command) and exits with the
codes of :mod:`qontak.cli.exit_codes`: 0 ok, 1 API error, 2 usage/validation, 3 auth,
4 rate limited, 5 outcome unknown. Errors are one red line on stderr; with ``--json`` the
error is also printed on stdout as below (``send --wait`` puts it in its own document, as
``"error"``, when the delivery failed; stdout always holds one JSON document)::

    {"error": {"type": "DeliveryUnknownError", "message": "<the line>", "exit_code": 5,
               "to_number": ..., "message_template_id": ..., "sent_at": "<UTC ISO 8601>",
               "status_code": ..., "request_id": ...}}

(``to_number`` … ``request_id`` for an unknown outcome only; ``status_code`` and
``request_id`` for any HTTP error or undocumented 2xx, ``field`` and ``code`` for a
validation error, ``setting`` for a configuration error; never a secret).

>>> from typer.testing import CliRunner
>>> from qontak.cli import app
>>> CliRunner().invoke(app, ["--env", "sandbox", "channels", "--json"])  # doctest: +SKIP
"""

from __future__ import annotations

from ._app import COMMANDS, app
from .exit_codes import ExitCode, exit_code_for

# Command modules are imported when a command runs (see ._app.COMMANDS); a new command
# goes into COMMANDS with the module whose register(app) adds it.
__all__ = ["COMMANDS", "ExitCode", "app", "exit_code_for", "main"]


def main() -> None:
    """Entry point of the ``qontak`` script."""
    app()
