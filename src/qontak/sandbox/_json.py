"""Strict JSON parsing of request bodies (sends and admin routes).

Python's :func:`json.loads` is more lenient than a JSON server should be, in two ways that
hurt the sandbox:

- It accepts ``NaN``, ``Infinity`` and ``-Infinity``. They are not JSON (RFC 8259), and a
  stored one made every later response that echoes it fail: Starlette's ``JSONResponse``
  refuses to serialize them (``allow_nan=False``).
- Its C decoder recurses once per nesting level, so ``[[[[…`` a few thousand deep raises
  :class:`RecursionError` (not a ``ValueError``) well under the 1 MiB body limit.

:func:`parse_json` turns both into :class:`InvalidJson` (a ``ValueError``), and also refuses
documents nested deeper than :data:`MAX_NESTING`: Rails' JSON parser stops at 100 levels,
so Qontak would not accept deeper bodies either, and a shallow stored body can always be
serialized again.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_NESTING", "InvalidJson", "parse_json"]

#: Deepest nesting accepted (Ruby's ``JSON.parse`` default ``max_nesting``).
MAX_NESTING = 100


class InvalidJson(ValueError):
    """The body is not strict JSON, or is nested too deeply."""


def _reject_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not valid JSON")


def _depth_exceeds(value: Any, limit: int) -> bool:
    # Iterative on purpose: a recursive walk would hit the same recursion limit.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(raw: bytes) -> Any:
    """Decode a request body, or raise :class:`InvalidJson`."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidJson(f"nested more than {MAX_NESTING} levels deep") from None
    except InvalidJson:
        raise
    except ValueError as exc:  # includes UnicodeDecodeError
        raise InvalidJson(str(exc)) from None
    if _depth_exceeds(value, MAX_NESTING):
        raise InvalidJson(f"nested more than {MAX_NESTING} levels deep")
    return value
