"""``python -m qontak`` and the ``qontak`` command.

The SDK installs with only what it needs (``pip install qontak``); the command line, the
sandbox and the other faces live in extras. When one is missing, say which extra brings it
instead of showing a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

# Top-level module name -> the extra that installs it (see pyproject.toml).
_EXTRA_FOR_MODULE = {
    "typer": "cli",
    "click": "cli",
    "rich": "cli",
    "shellingham": "cli",
    "openpyxl": "xlsx",
    "starlette": "sandbox",
    "uvicorn": "sandbox",
    "multipart": "sandbox",
    "python_multipart": "sandbox",
    "yaml": "sandbox",
    "aiohttp": "aiohttp",
    "httpx_aiohttp": "aiohttp",
    "psycopg": "postgres",
}


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra that provides the module ``exc`` could not import, if it is one of ours."""
    top = (exc.name or "").split(".")[0]
    return _EXTRA_FOR_MODULE.get(top)


def main() -> int:
    """Run the ``qontak`` command; exit 2 with an install hint when an extra is missing."""
    try:
        from qontak.cli import main as cli_main

        cli_main()
        return 0
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc)
        if extra is None:
            raise
        print(
            f"qontak: this needs the '{extra}' extra ({exc.name} is not installed): "
            f"pip install 'qontak[{extra}]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
