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

It also refuses strings holding a lone surrogate (``"\ud800"`` with no low half): the escape
is valid JSON syntax but names no character, so the text cannot be encoded as UTF-8 to be
stored or served again (it used to reach SQLite and end in a 500 with a traceback).

:func:`read_body` reads a request body with a cap, for every route that reads one: it stops
(:class:`BodyTooLarge`) as soon as the cap is passed, whether the client declared a
``Content-Length`` or streams a chunked body, so a huge body is never held in memory.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

__all__ = ["MAX_NESTING", "BodyTooLarge", "InvalidJson", "parse_json", "read_body"]

#: Deepest nesting accepted (Ruby's ``JSON.parse`` default ``max_nesting``).
MAX_NESTING = 100


class InvalidJson(ValueError):
    """The body is not strict JSON, or is nested too deeply."""


class BodyTooLarge(ValueError):
    """A request body is larger than the route accepts (answer 413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body of ``request``, or :class:`BodyTooLarge` once it passes ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before reading anything; a
    chunked (or lying) body is refused at the first chunk that passes the limit.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not valid JSON")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _problem(value: Any, limit: int) -> str | None:
    """Why a decoded document cannot be kept (too deep, a lone surrogate), or None."""
    # Iterative on purpose: a recursive walk would hit the same recursion limit.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _encodable(item):
                return "a string holds a lone surrogate escape"
            continue
        if isinstance(item, dict):
            if not all(_encodable(key) for key in item):
                return "a key holds a lone surrogate escape"
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return f"nested more than {limit} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


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
    problem = _problem(value, MAX_NESTING)
    if problem is not None:
        raise InvalidJson(problem)
    return value
