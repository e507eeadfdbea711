"""What importing qontak (and running ``qontak --help``) pulls in: only what is used.

Each check runs in a fresh interpreter, since this test process has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer.main
import typer.testing
from typer.testing import CliRunner

import qontak
from qontak.cli import COMMANDS, app
from qontak.cli._app import QontakGroup

HEAVY_FOR_SDK = ("qontak.sandbox", "qontak.cli", "typer", "rich", "starlette", "uvicorn")


def _modules_after(code: str) -> set[str]:
    """Top-level and qontak module names loaded by ``code`` in a fresh interpreter."""
    probe = (
        "import sys, json, contextlib\n"
        f"{code}\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.__stderr__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def test_import_qontak_loads_no_cli_sandbox_or_frameworks() -> None:
    modules = _modules_after("import qontak")
    assert _loaded(modules, HEAVY_FOR_SDK) == []
    # Not even the HTTP stack or the models: they load with the first name that needs them.
    assert _loaded(modules, ("httpx", "pydantic", "qontak.models")) == []


def test_the_sdk_client_loads_no_cli_or_sandbox() -> None:
    modules = _modules_after("from qontak import Qontak, AsyncQontak, messages")
    # rich is left out: httpx imports it for its own command line when it is installed.
    assert _loaded(modules, tuple(m for m in HEAVY_FOR_SDK if m != "rich")) == []
    assert "qontak._client" in modules


def test_help_loads_neither_the_sdk_nor_the_commands() -> None:
    code = (
        "sys.argv = ['qontak', '--help']\n"
        "from qontak.cli import main\n"
        "with contextlib.redirect_stdout(None), contextlib.suppress(SystemExit):\n"
        "    main()\n"
    )
    modules = _modules_after(code)
    heavy = ("httpx", "pydantic", "qontak._client", "qontak.sandbox", "starlette", "uvicorn")
    assert _loaded(modules, heavy) == []
    assert [m for m in modules if m.startswith("qontak.cli.") and m[11:] in COMMANDS] == []


def test_a_command_loads_only_its_own_module() -> None:
    code = (
        "sys.argv = ['qontak', 'channels', '--help']\n"
        "from qontak.cli import main\n"
        "with contextlib.redirect_stdout(None), contextlib.suppress(SystemExit):\n"
        "    main()\n"
    )
    modules = _modules_after(code)
    assert "qontak.cli.channels" in modules
    assert _loaded(modules, ("qontak.cli.demo", "qontak.sandbox", "starlette")) == []


def test_every_exported_name_resolves() -> None:
    for name in qontak.__all__:
        assert getattr(qontak, name) is not None, name
    assert set(qontak.__all__) <= set(dir(qontak))


def _group() -> QontakGroup:
    group = typer.main.get_command(app)
    assert isinstance(group, QontakGroup)
    return group


def test_lazy_summaries_are_the_commands_own_help() -> None:
    group = _group()
    group.load_all()
    assert list(group.commands) == list(COMMANDS)
    for name, lazy in COMMANDS.items():
        real = group.commands[name]
        assert real.help is not None
        assert lazy.summary == real.help.split("\n\n")[0].strip(), name
        # A command runs its callback; a group (campaign, optout, webhooks) has subcommands.
        assert real.callback is not None or getattr(real, "commands", None), name


def test_root_help_is_the_same_lazy_or_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    lazy, loaded = _group(), _group()
    loaded.load_all()
    texts = []
    for group in (lazy, loaded):
        # The runner builds a fresh group from the app; hand it this one instead.
        monkeypatch.setattr(typer.testing, "_get_command", lambda _app, g=group: g)
        result = CliRunner().invoke(app, ["--help"])
        assert result.exit_code == 0, result.output
        texts.append(result.output)
    assert texts[0] == texts[1]
    assert all(f" {name} " in texts[0] for name in COMMANDS)
    assert lazy.commands == {}  # drawing the help loaded nothing
