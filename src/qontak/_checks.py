"""Checks at the public boundary: every argument a caller hands us, before any work is done.

Each check raises :class:`~qontak.errors.ValidationError` (an input to one call) or, with
``setting=True``, :class:`~qontak.errors.ConfigurationError` (a client setting), naming the
argument and the rule, so nothing but our own errors escapes a public call and nothing odd
reaches the wire. Reasons never repeat the value: it may be a secret, or 70,000 characters.

>>> check_text("name", "Budi")
'Budi'
>>> check_text("name", "Bu\\x00di")
Traceback (most recent call last):
...
qontak.errors.ValidationError: name: contains a control character (U+0000) at position 2
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import NoReturn, TypeVar
from urllib.parse import urlsplit

import httpx
import pydantic

from .errors import ConfigurationError, ValidationError
from .models import (
    BodyParameter,
    ButtonParameter,
    DirectMessage,
    HeaderParam,
    HeaderParameter,
    Language,
    MessageParameters,
    QontakModel,
)

__all__ = [
    "MAX_ID_CHARS",
    "MAX_QUERY_CHARS",
    "MAX_RETRIES",
    "MAX_TEXT_CHARS",
    "MAX_TIMEOUT_SECONDS",
    "check_call_options",
    "check_choice_text",
    "check_date",
    "check_finite",
    "check_id",
    "check_json",
    "check_message_types",
    "check_query",
    "check_retries",
    "check_sendable_message",
    "check_text",
    "check_timeout",
    "check_url",
    "check_wait",
    "fail",
    "from_pydantic",
    "type_name",
]

#: Any one text value. Far above every WhatsApp limit (those are checked by ``validation``),
#: low enough that a runaway value is refused here rather than POSTed.
MAX_TEXT_CHARS = 65_536
#: An id that goes in a URL path (Qontak's are 36-character UUIDs).
MAX_ID_CHARS = 255
#: A whole query string, before percent-encoding (httpx refuses URLs over 64 KiB).
MAX_QUERY_CHARS = 16_384
#: Retries per call: more is a mistake (or NaN), not a policy.
MAX_RETRIES = 100
#: A timeout longer than a day is a unit mistake (milliseconds?), not a wish.
MAX_TIMEOUT_SECONDS = 86_400.0
#: Nesting of a JSON body given as a dict.
MAX_JSON_DEPTH = 32
#: An integer in a JSON body or a query: 64 bits, as every server reads them.
_INT_RANGE = (-(2**63), 2**64 - 1)

# C0 controls except tab/newline/carriage return, DEL, and the C1 block: never meaningful in
# a name, an id or a template value, and NUL in particular is cut or refused downstream.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAK = re.compile(r"[\t\n\r\u2028\u2029\x85]")
_Model = TypeVar("_Model", bound=QontakModel)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s")


def type_name(value: object) -> str:
    """``int``, ``NoneType``… for messages that never show the value itself."""
    return type(value).__name__


def fail(field: str, reason: str, code: str, *, setting: bool = False) -> NoReturn:
    """Raise the error for a bad input (``ValidationError``) or setting (``ConfigurationError``)."""
    if setting:
        raise ConfigurationError(f"{field}: {reason}", setting=field, reason=reason)
    raise ValidationError(field, reason, code=code)


def check_text(
    field: str,
    value: object,
    *,
    max_len: int = MAX_TEXT_CHARS,
    multiline: bool = True,
    empty: bool = True,
    setting: bool = False,
) -> str:
    """``value`` if it is a ``str`` that can go on the wire: valid Unicode (no lone
    surrogate), no control character (tab and line breaks only with ``multiline``), at most
    ``max_len`` characters, and not blank unless ``empty``."""
    if not isinstance(value, str):
        fail(field, f"expected text, got {type_name(value)}", "invalid_type", setting=setting)
    # str.__len__: a str subclass may answer len() with anything; JSON sends its real text.
    size = str.__len__(value)
    if size > max_len:
        fail(
            field,
            f"is {size} characters; at most {max_len}",
            "too_long",
            setting=setting,
        )
    bad = _SURROGATE.search(value)
    if bad:
        fail(
            field,
            f"contains a lone surrogate (U+{ord(bad.group()):04X}) at position {bad.start()}; "
            "not valid Unicode",
            "invalid_text",
            setting=setting,
        )
    bad = _CONTROL.search(value) or (None if multiline else _LINE_BREAK.search(value))
    if bad:
        fail(
            field,
            f"contains a control character (U+{ord(bad.group()):04X}) at position {bad.start()}",
            "control_character",
            setting=setting,
        )
    if not empty and not value.strip():
        fail(field, "must not be empty", "missing", setting=setting)
    return value


def check_id(field: str, value: object, *, setting: bool = False) -> str:
    """An id that goes in a URL path segment or names an object: text, 1 to
    :data:`MAX_ID_CHARS` characters, no whitespace, and not ``.``/``..`` (httpx would resolve
    those and change the path). Other characters are percent-encoded by ``path_segment``."""
    text = check_text(field, value, max_len=MAX_ID_CHARS, multiline=False, setting=setting)
    if not text:
        fail(field, "must not be empty", "missing", setting=setting)
    if _WHITESPACE.search(text):
        fail(field, "must not contain whitespace", "invalid_id", setting=setting)
    if text in (".", ".."):
        fail(field, "must not be '.' or '..'", "invalid_id", setting=setting)
    return text


def check_choice_text(field: str, value: object, *, max_len: int = 64) -> str:
    """A short code such as a language (``en_US``) or a header format (``IMAGE``)."""
    text = check_text(field, value, max_len=max_len, multiline=False)
    if not text.strip():
        fail(field, "must not be empty", "missing")
    if _WHITESPACE.search(text):
        fail(field, "must not contain whitespace", "invalid")
    return text


def check_finite(
    field: str,
    value: object,
    *,
    minimum: float = 0.0,
    maximum: float = MAX_TIMEOUT_SECONDS,
    inclusive_min: bool = True,
    setting: bool = False,
) -> float:
    """A real number (not ``bool``, not NaN/∞) in ``[minimum, maximum]`` (``(minimum, …]``
    when not ``inclusive_min``), as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        fail(field, f"expected a number, got {type_name(value)}", "invalid_type", setting=setting)
    if isinstance(value, int) and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
        # float() would raise OverflowError on 10**400.
        bound = f"at most {maximum:g}" if value > 0 else f"at least {minimum:g}"
        fail(field, f"must be {bound}", "out_of_range", setting=setting)
    number = float(value)
    if not math.isfinite(number):
        fail(field, "must be a finite number", "out_of_range", setting=setting)
    low_ok = number >= minimum if inclusive_min else number > minimum
    if not low_ok:
        bound = "at least" if inclusive_min else "greater than"
        fail(field, f"must be {bound} {minimum:g}", "out_of_range", setting=setting)
    if number > maximum:
        fail(field, f"must be at most {maximum:g}", "out_of_range", setting=setting)
    return number


def check_timeout(
    field: str, value: object, *, setting: bool = False
) -> httpx.Timeout | float | None:
    """``None``, seconds in ``(0, MAX_TIMEOUT_SECONDS]``, or an ``httpx.Timeout`` whose parts
    are each ``None`` (no limit) or such a number."""
    if value is None:
        return None
    if isinstance(value, httpx.Timeout):
        for part, seconds in value.as_dict().items():
            if seconds is not None:
                check_finite(
                    f"{field}.{part}",
                    seconds,
                    inclusive_min=False,
                    setting=setting,
                )
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(
            field,
            f"expected seconds > 0 or an httpx.Timeout, got {type_name(value)}",
            "invalid_type",
            setting=setting,
        )
    return check_finite(field, value, inclusive_min=False, setting=setting)


def check_retries(field: str, value: object, *, setting: bool = False) -> int:
    """A retry count: an ``int`` (not ``bool``, not a float such as NaN) from 0 to
    :data:`MAX_RETRIES`."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail(
            field,
            f"expected a whole number of retries, got {type_name(value)}",
            "invalid_type",
            setting=setting,
        )
    if not 0 <= value <= MAX_RETRIES:
        fail(field, f"must be 0 to {MAX_RETRIES}", "out_of_range", setting=setting)
    return value


def check_url(field: str, value: object, *, setting: bool = True) -> str:
    """An ``http(s)://host[:port][/path]`` URL without credentials, query or fragment.

    A user name or password in the URL is refused outright: httpx would send it as Basic
    auth in place of the HMAC ``Authorization`` header, and it would show up wherever the
    URL is printed. The messages never repeat the URL, so a password in it never leaks.
    """
    text = check_text(field, value, max_len=2048, multiline=False, setting=setting)
    text = text.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        fail(field, "is not a valid URL (bad host or port)", "invalid_url", setting=setting)
    if "@" in parts.netloc or ("@" in text and "://" not in text):
        fail(
            field,
            "must not contain a user name or password; Qontak authenticates with the client id "
            "and secret (HMAC), not with credentials in the URL",
            "invalid_url",
            setting=setting,
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(
            field,
            "expected an http(s) URL such as https://api.mekari.com",
            "invalid_url",
            setting=setting,
        )
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        fail(field, "must not have a query or fragment", "invalid_url", setting=setting)
    if port == 0:
        fail(field, "port must be 1 to 65535", "invalid_url", setting=setting)
    try:
        httpx.URL(text)
    except httpx.InvalidURL:
        fail(field, "is not a valid URL", "invalid_url", setting=setting)
    return text


def _scalar(field: str, value: object) -> int:
    """Check one query value; returns its length as text (for the total)."""
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            fail(field, "integer out of range", "out_of_range")
        return 20
    if isinstance(value, float):
        check_finite(field, value, minimum=-math.inf, maximum=math.inf)
        return 24
    if isinstance(value, str):
        return len(check_text(field, value, max_len=MAX_QUERY_CHARS, multiline=False))
    fail(field, f"expected text or a number, got {type_name(value)}", "invalid_type")


def check_query(params: object, field: str = "params") -> None:
    """Query parameters: text keys; values ``None``, text, numbers, booleans or a list of
    those; in all at most :data:`MAX_QUERY_CHARS` characters before encoding."""
    if params is None:
        return
    if not isinstance(params, Mapping):
        fail(field, f"expected a mapping, got {type_name(params)}", "invalid_type")
    total = 0
    for key, value in params.items():
        total += len(check_text(f"{field} key", key, max_len=256, multiline=False)) + 2
        where = f"{field}.{key}"
        if isinstance(value, list | tuple | set | frozenset):
            for item in value:
                total += len(key) + 3 + _scalar(where, item)
        else:
            total += _scalar(where, value)
        if total > MAX_QUERY_CHARS:
            fail(field, f"the query is longer than {MAX_QUERY_CHARS} characters", "too_long")


def check_json(field: str, value: object, *, _depth: int = 0) -> None:
    """A JSON body given as Python data: dicts with text keys, lists, text, finite numbers,
    booleans and ``None``; every text as :func:`check_text`. ``field`` prefixes the dotted
    path of the offending value (``parameters.body[0].value_text``)."""
    name = field or "body"
    if _depth > MAX_JSON_DEPTH:
        fail(name, f"nested deeper than {MAX_JSON_DEPTH} levels", "too_deep")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        check_text(name, value)
    elif isinstance(value, int):
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            fail(name, "integer out of range", "out_of_range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            fail(name, "must be a finite number (JSON has no NaN or Infinity)", "out_of_range")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_text(f"{name} key", key, max_len=256, multiline=False)
            check_json(f"{field}.{key}" if field else key, item, _depth=_depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(f"{name}[{i}]", item, _depth=_depth + 1)
    else:
        fail(name, f"{type_name(value)} cannot be sent as JSON", "invalid_type")


def from_pydantic(exc: pydantic.ValidationError, default: str = "message") -> ValidationError:
    """Our ``ValidationError`` for pydantic's first complaint (dotted field path kept)."""
    first = exc.errors()[0]
    loc = first.get("loc", ())
    field = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    code = "invalid_type" if str(first.get("type", "")).endswith("_type") else "invalid"
    return ValidationError(field or default, str(first.get("msg", "invalid")).lower(), code=code)


def check_sendable_message(message: DirectMessage) -> DirectMessage:
    """A direct message (built, parsed from a dict, or changed by hand since) that can go on
    the wire as it is: every field of the type Qontak documents, every text valid and free of
    control characters, extra keys JSON data, ids usable in a URL. Returns ``message``, or
    raises :class:`~qontak.errors.ValidationError` naming the first field that is not.

    (Not :func:`qontak.validation.check_message`, which lists a message's problems against
    WhatsApp's rules and never raises.)
    """
    if _plainly_sendable(message):
        return message
    return _check_sendable_in_full(message)


def _check_sendable_in_full(message: DirectMessage) -> DirectMessage:
    """:func:`check_sendable_message` for any message: dump it, check every value of the
    dump, and validate the dump strictly (attributes may have been reassigned since the
    model was validated, and pydantic does not re-check an assignment)."""
    _check_part_types(message)
    try:
        data = message.model_dump(exclude_none=True, by_alias=True, warnings=False)
    except Exception as exc:  # a part replaced by hand with something pydantic cannot dump
        fail(
            "message",
            f"a part of it is not of the type Qontak documents ({type_name(exc)})",
            "invalid_type",
        )
    check_json("", data)
    _check_plain_texts("", data)
    try:
        type(message).model_validate(data, strict=True)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc) from None
    check_id("message_template_id", message.message_template_id)
    check_id("channel_integration_id", message.channel_integration_id)
    check_text("to_name", message.to_name, multiline=False)
    check_choice_text("language.code", message.language.code)
    return message


def check_message_types(message: object) -> None:
    """Raise :class:`~qontak.errors.ValidationError` naming the first part of ``message``
    that is not of the type Qontak documents (changed by hand since it was built: pydantic
    does not check an assignment), so rules that read its texts can rely on them being
    ``str``. Only the types: what a text holds is for the caller's rules."""
    if not isinstance(message, DirectMessage):
        fail("message", f"expected a DirectMessage, got {type_name(message)}", "invalid_type")
    if _plainly_sendable(message):
        return
    _check_part_types(message)
    try:
        data = message.model_dump(exclude_none=True, by_alias=True, warnings=False)
    except Exception as exc:
        fail(
            "message",
            f"a part of it is not of the type Qontak documents ({type_name(exc)})",
            "invalid_type",
        )
    _check_plain_texts("", data)
    try:
        type(message).model_validate(data, strict=True)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc) from None


def _check_part_types(message: DirectMessage) -> None:
    """Each part of ``message`` is one of our models and each list a list of them, as the
    rules and the send read them (a dict or ``None`` put in by hand dumps to the same JSON,
    but ``message.language.code`` then raises ``AttributeError``, not our error)."""
    fields = message.__dict__
    _part("language", fields.get("language"), Language)
    parameters = _part("parameters", fields.get("parameters"), MessageParameters)
    parts = parameters.__dict__
    header = parts.get("header")
    if header is not None:
        _part("parameters.header", header, HeaderParameter)
        _items("parameters.header.params", header.__dict__.get("params"), HeaderParam)
    if parts.get("buttons") is not None:
        _items("parameters.buttons", parts.get("buttons"), ButtonParameter)
    if parts.get("body") is not None:
        _items("parameters.body", parts.get("body"), BodyParameter)


def _part(field: str, value: object, cls: type[_Model]) -> _Model:
    if not isinstance(value, cls):
        fail(field, f"expected {cls.__name__}, got {type_name(value)}", "invalid_type")
    return value


def _items(field: str, value: object, cls: type[QontakModel]) -> None:
    if not isinstance(value, list):
        fail(field, f"expected a list of {cls.__name__}, got {type_name(value)}", "invalid_type")
    for i, item in enumerate(value):
        _part(f"{field}[{i}]", item, cls)


def _check_plain_texts(field: str, value: object) -> None:
    """Every text of a message's dump is a ``str`` or a ``str`` enum member, not another
    ``str`` subclass: every rule reads a text through its methods, which a subclass can
    override to lie (a ``__len__`` of 1 on 70,000 characters passes every length limit,
    while the JSON encoder posts all of them). Models hold plain ``str`` once validated; a
    subclass gets in only by assignment, which pydantic does not check."""
    if isinstance(value, str):
        if type(value) is not str and not isinstance(value, Enum):
            fail(field or "body", f"expected text (str), got {type_name(value)}", "invalid_type")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_plain_texts(f"{field} key" if field else "body key", key)
            _check_plain_texts(f"{field}.{key}" if field else str(key), item)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain_texts(f"{field or 'body'}[{i}]", item)


# What check_text refuses in any text: a control character or a lone surrogate.
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Every field of each list item, from the models themselves: a field added later is looked at
# without anyone remembering to add it here.
_PARAM_FIELDS: dict[type[QontakModel], tuple[str, ...]] = {
    cls: tuple(cls.model_fields) for cls in (HeaderParam, ButtonParameter, BodyParameter)
}
# The fields the quick look reads from each other part. A field added to one of these models
# is not read, so it sends the message to the full check until the quick look learns it.
_KNOWN_FIELDS: dict[type[QontakModel], frozenset[str]] = {
    DirectMessage: frozenset(
        (
            "to_name",
            "to_number",
            "message_template_id",
            "channel_integration_id",
            "language",
            "parameters",
        )
    ),
    Language: frozenset(("code",)),
    MessageParameters: frozenset(("header", "buttons", "body")),
    HeaderParameter: frozenset(("format", "params")),
}
_QUICK_LOOK_COMPLETE = all(set(cls.model_fields) == names for cls, names in _KNOWN_FIELDS.items())


def _own(value: object, cls: type[QontakModel]) -> bool:
    """``value`` is exactly one of our models, with no extra keys."""
    return type(value) is cls and not value.__pydantic_extra__


def _texts(items: object, cls: type[QontakModel], out: list[object]) -> bool:
    """Append the text fields of a list of ``cls`` items to ``out``; False if it is not one."""
    if items is None:
        return True
    if type(items) is not list:
        return False
    names = _PARAM_FIELDS[cls]
    for item in items:
        if not _own(item, cls):
            return False
        values = item.__dict__
        out.extend(values.get(name) for name in names)
    return True


def _plainly_sendable(message: object) -> bool:
    """Whether :func:`_check_sendable_in_full` would surely pass ``message``, decided in a
    few microseconds (the full check costs ~30: a dump, a walk and a strict validation).

    True only for exactly our own classes, without extra keys, holding plain ``str`` values
    that are clean (no control character or lone surrogate, within every length rule):
    what every builder produces, and what a message changed by hand with good values
    still is. Anything else (a subclass, an extra key, a value of another type, a text
    with a control character…) is "not sure", and the full check decides and names the
    field. So a send never depends on how a message was made, only on what it holds now.
    """
    if not _QUICK_LOOK_COMPLETE:
        return False
    try:
        return _plain_parts(message)
    except Exception:  # a part changed in a way no model allows: the full check names it
        return False


def _plain_parts(message: object) -> bool:
    """:func:`_plainly_sendable`, which may raise on a message changed in odd ways."""
    if not _own(message, DirectMessage):
        return False
    fields = message.__dict__
    language, parameters = fields.get("language"), fields.get("parameters")
    if not (_own(language, Language) and _own(parameters, MessageParameters)):
        return False
    template_id = fields.get("message_template_id")
    channel_id = fields.get("channel_integration_id")
    to_name, code = fields.get("to_name"), language.__dict__.get("code")
    texts: list[object] = [to_name, fields.get("to_number"), template_id, channel_id, code]
    parts = parameters.__dict__
    header = parts.get("header")
    if header is not None:
        if not _own(header, HeaderParameter):
            return False
        texts.append(header.__dict__.get("format"))
        if header.__dict__.get("params") is None or not _texts(
            header.__dict__.get("params"), HeaderParam, texts
        ):
            return False
    if not (
        _texts(parts.get("buttons"), ButtonParameter, texts)
        and _texts(parts.get("body"), BodyParameter, texts)
    ):
        return False
    for text in texts:
        if type(text) is not str or len(text) > MAX_TEXT_CHARS:
            return False
    if _UNSAFE.search("".join(texts)):  # type: ignore[arg-type]
        return False
    return (
        _plain_id(template_id)
        and _plain_id(channel_id)
        and not _LINE_BREAK.search(to_name)  # type: ignore[arg-type]
        and 0 < len(code) <= 64  # type: ignore[arg-type]
        and not _WHITESPACE.search(code)  # type: ignore[arg-type]
    )


def _plain_id(value: object) -> bool:
    """What :func:`check_id` accepts, for a text already known to be clean."""
    assert isinstance(value, str)
    return (
        0 < len(value) <= MAX_ID_CHARS
        and value not in (".", "..")
        and not _WHITESPACE.search(value)
    )


def check_call_options(timeout: object, max_retries: object) -> None:
    """The per-call ``timeout`` / ``max_retries`` of a resource method."""
    check_timeout("timeout", timeout)
    if max_retries is not None:
        check_retries("max_retries", max_retries)


#: Epoch seconds a ``datetime`` can hold (years 1 to 9999).
_EPOCH_RANGE = (-62_135_596_800.0, 253_402_300_799.0)


def check_date(field: str, value: object) -> datetime | str | float | None:
    """A date filter: ``None``, ISO 8601 text, a ``datetime`` or epoch seconds."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return check_text(field, value, max_len=64, multiline=False)
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(
            field,
            f"expected a datetime, ISO 8601 text or epoch seconds, got {type_name(value)}",
            "invalid_type",
        )
    return check_finite(field, value, minimum=_EPOCH_RANGE[0], maximum=_EPOCH_RANGE[1])


def check_wait(until: object, timeout: object, interval: object) -> frozenset[str]:
    """The arguments of ``broadcasts.wait``: statuses (one text or several), a finite
    ``timeout`` (a NaN deadline is never reached) and a positive ``interval``."""
    check_finite("timeout", timeout)
    check_finite("interval", interval, inclusive_min=False, maximum=3600.0)
    if isinstance(until, str):
        until = (until,)
    if not isinstance(until, Iterable) or isinstance(until, bytes | bytearray | Mapping):
        fail("until", f"expected statuses, got {type_name(until)}", "invalid_type")
    return frozenset(check_choice_text("until", status) for status in until)
