"""The ``--env`` choices, in a module of their own so the root command (and ``--help``) can
be built without importing the SDK."""

from __future__ import annotations

from enum import Enum

__all__ = ["Env"]


class Env(str, Enum):
    """Named environments for ``--env``."""

    production = "production"
    staging = "staging"
    sandbox = "sandbox"
