"""The fast path of an import: a template's message compiled once into a "shape".

Building each row's message with the SDK's builders and checking it with
:func:`qontak.check_message` costs pydantic models and generic rule walks per row, most of
which answer the same thing for every row of a campaign (the template's id, language,
variable keys and labels, button indexes, whether it is approved…). A :class:`RowShape` is
made once per import by building and checking one *probe* message with the SDK itself,
whose per-row values (body variables, button values) are unique sentinel strings. Its wire
form, with the sentinels as slots, is what every row's ``parameters`` look like.

Per row only what depends on the row is looked at: the number (normalised by the SDK's
:func:`~qontak.validation.normalize_phone`), the name, the variable and button values and
the header media. For each, the shape holds a *sufficient* condition for the SDK's rules to
find nothing wrong (the same limits, read from :mod:`qontak.validation`). A row that meets
all of them gets its parameters from the shape; any other row (bad, unusual, or a header
not seen clean before) returns ``None`` and goes through the SDK's builders and checks,
which produce its errors. So errors always come from the SDK, and a fast row is one the SDK
would accept with the same parameters: ``tests/campaigns/test_import_fastpath.py`` checks
both paths give the same results.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError
from ..models import MEDIA_FORMATS, CopyCodeButton, DirectMessage, Template, URLButton
from ..models.template import PLACEHOLDER
from ..validation import (
    MAX_BODY_PARAM_CHARS,
    MAX_BODY_PARAM_CHARS_BODY_ONLY,
    MAX_HYDRATED_BODY_CHARS,
    MAX_NAME_CHARS,
    MAX_OTP_CODE_CHARS,
    MAX_PHONE_DIGITS,
    MAX_REQUEST_BYTES,
    MAX_URL_CHARS,
    MIN_PHONE_DIGITS,
    check_message,
    normalize_phone,
    request_size,
)
from ._mapping import ColumnMap

__all__ = ["RowShape"]

#: Distinct header media remembered as clean (a campaign usually has one image for all).
_HEADER_CACHE = 256
#: The number every probe is built for (any valid number would do).
_PROBE_NUMBER = "6281234567890"
_PROBE_MEDIA = {"IMAGE": "probe.jpg", "VIDEO": "probe.mp4", "DOCUMENT": "probe.pdf"}
# A string's JSON form (ensure_ascii=False) is at most 6 bytes per character ("\u0000").
_JSON_BYTES_PER_CHAR = 6
_HEADER = object()

#: Builds a row's parameters from its slot values and its header's wire form.
_Make = Callable[[list[str], Any], Any]


def _sentinel(k: int) -> str:
    # Letters and digits only, short: a clean body value, URL suffix and coupon code.
    return f"zq{k}slotqz"


@dataclass
class _Slot:
    column: str
    body_limit: int | None = None
    otp: bool = False
    url_static: list[int] = field(default_factory=list)
    """Per dynamic URL button: (length of the URL without its placeholders, their count)."""
    url_count: list[int] = field(default_factory=list)
    coupon: bool = False
    button: bool = False
    occurrences: int = 0


class RowShape:
    """One template's message with the per-row values as slots; see the module docstring."""

    def __init__(self) -> None:
        self._slots: list[_Slot] = []
        self._make: _Make = lambda values, header: {}
        self._to = ""
        self._name: str | None = None
        self._header: str | None = None
        self._header_filename: str | None = None
        self._headers: dict[tuple[str, str], tuple[Any, int]] = {}
        self._hydrated_static = 0
        self._hydrated_slots: list[int] = []
        self._size = 0
        self._region = ""

    @classmethod
    def compile(
        cls,
        *,
        template: Template,
        mapping: ColumnMap,
        region: str,
        build: Callable[[dict[str, str]], DirectMessage],
    ) -> RowShape | None:
        """The shape of ``template``'s messages, or None when the fast path cannot be used
        (the probe message has a problem, e.g. the template is not approved: then every row
        is built and checked by the SDK and reports it)."""
        shape = cls()
        shape._region = region
        to = mapping.column("to_number")
        if not to:
            return None
        shape._to = to
        shape._name = mapping.column("to_name")
        fields = list(mapping.body_fields(template))
        if not (template.is_authentication and len(fields) == 1):
            # (An OTP's button takes the body's code: build_row reads no button column.)
            fields += [f"button.{i}" for i, b in enumerate(template.buttons) if b.is_dynamic]
        probe: dict[str, str] = {to: _PROBE_NUMBER}
        if shape._name:
            probe[shape._name] = "Probe"
        fmt = template.header_format
        if fmt in MEDIA_FORMATS:
            shape._header = mapping.column("header")
            shape._header_filename = mapping.column("header_filename")
            if not shape._header:
                return None
            probe[shape._header] = f"https://probe.invalid/{_PROBE_MEDIA[str(fmt)]}"
            if shape._header_filename:
                probe[shape._header_filename] = ""
        sentinels: dict[str, int] = {}
        for f in fields:
            column = mapping.column(f)
            if column is None:
                return None
            sentinels[_sentinel(len(shape._slots))] = len(shape._slots)
            probe[column] = _sentinel(len(shape._slots))
            shape._slots.append(_Slot(column))
        used = [to, shape._name, shape._header, shape._header_filename]
        used += [s.column for s in shape._slots]
        columns = [c for c in used if c]
        if len(set(columns)) != len(columns):
            return None  # one column feeding two fields: not a shape this handles
        try:
            message = build(probe)
        except ValidationError:
            return None
        if check_message(message, template):
            return None
        shape._size = request_size(message)
        parameters = message.to_wire().get("parameters", {})
        found = shape._locate(parameters, template, sentinels)
        if found is None:
            return None
        shape._make = found
        return shape

    def _locate(
        self, parameters: dict[str, Any], template: Template, sentinels: dict[str, int]
    ) -> _Make | None:
        """Attach the rules to the slots from where their sentinels sit; compile the maker.
        None when a sentinel sits anywhere but a body value or a button value."""
        body = parameters.get("body") or []
        keys: dict[str, int] = {}
        limit = (
            MAX_BODY_PARAM_CHARS
            if template.parameterised_outside_body
            else MAX_BODY_PARAM_CHARS_BODY_ONLY
        )
        for i, item in enumerate(body):
            k = sentinels.get(item.get("value_text", ""))
            if k is None:
                return None
            slot = self._slots[k]
            slot.body_limit = limit
            slot.otp = slot.otp or (i == 0 and template.is_authentication)
            keys[item["key"]] = k
        for item in parameters.get("buttons") or []:
            k = sentinels.get(item.get("value", ""))
            if k is None:
                return None
            slot = self._slots[k]
            slot.button = True
            i = int(item["index"])
            button = template.buttons[i] if i < len(template.buttons) else None
            if isinstance(button, URLButton) and button.is_dynamic:
                url = button.url or ""
                matches = list(PLACEHOLDER.finditer(url))
                slot.url_static.append(len(url) - sum(len(m.group(0)) for m in matches))
                slot.url_count.append(len(matches))
            elif isinstance(button, CopyCodeButton) and i != template.code_button_index:
                slot.coupon = True
        matches = list(PLACEHOLDER.finditer(template.body or ""))
        self._hydrated_static = len(template.body or "") - sum(len(m.group(0)) for m in matches)
        for m in matches:
            if m.group(1) not in keys:
                return None
            self._hydrated_slots.append(keys[m.group(1)])
        if "header" in parameters:
            parameters = {**parameters, "header": _HEADER}
        expression = self._source(parameters, sentinels)
        if expression is None:
            return None
        # The parameters of a row as one Python expression of literals and slot lookups,
        # compiled once: building a row's dict is then a single call (a recursive builder
        # cost a fifth of the import). Constants are repr()s of JSON values (str, int,
        # bool, None), which read back as equal values.
        make: _Make = eval(f"lambda values, header: {expression}", {"__builtins__": {}})
        return make

    def _source(self, node: Any, sentinels: dict[str, int]) -> str | None:
        if node is _HEADER:
            return "header"
        if isinstance(node, str):
            if node in sentinels:
                k = sentinels[node]
                self._slots[k].occurrences += 1
                return f"values[{k}]"
            if any(s in node for s in sentinels):
                return None
            return repr(node)
        if isinstance(node, dict):
            items = []
            for key, value in node.items():
                part = self._source(value, sentinels)
                if part is None or not isinstance(key, str):
                    return None
                items.append(f"{key!r}: {part}")
            return "{" + ", ".join(items) + "}"
        if isinstance(node, list):
            parts = [self._source(value, sentinels) for value in node]
            if any(p is None for p in parts):
                return None
            return "[" + ", ".join(p for p in parts if p is not None) + "]"
        if node is None or isinstance(node, bool | int):
            return repr(node)
        return None

    def learn_header(self, values: dict[str, str], header: Any) -> None:
        """Remember the wire form of a row's header media that the SDK found clean (only
        for media given as URLs: a local file's URL depends on its upload)."""
        if self._header is None or header is None:
            return
        key = self._header_key(values)
        if not key[0].startswith(("http://", "https://")) or key in self._headers:
            return
        if len(self._headers) >= _HEADER_CACHE:
            self._headers.pop(next(iter(self._headers)))
        text = json.dumps(header, ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode("utf-8", "surrogatepass"))
        self._headers[key] = (header, size)

    def _header_key(self, values: dict[str, str]) -> tuple[str, str]:
        source = values.get(self._header, "") if self._header else ""
        name = values.get(self._header_filename, "") if self._header_filename else ""
        return source, name

    def build(self, values: dict[str, str]) -> tuple[str, str, dict[str, Any]] | None:
        """``(to_number, to_name, parameters)`` of a row the SDK would accept as it is, or
        None when the row needs the SDK's builders and checks."""
        to = values.get(self._to, "")
        if not to:
            return None
        try:
            number = normalize_phone(to, self._region)
        except ValidationError:
            return None
        if not (
            number.isdigit()
            and number.isascii()
            and number[0] != "0"
            and MIN_PHONE_DIGITS <= len(number) <= MAX_PHONE_DIGITS
        ):
            return None
        name = values.get(self._name, "") if self._name else ""
        if name:
            if len(name) > MAX_NAME_CHARS or not name.isprintable() or not name.strip():
                return None  # isprintable: no control characters, no lone surrogates
        else:
            name = number
        header: Any = None
        # The probe's size is a floor for every row's: add what this row's values can add.
        size = self._size + len(number) + _JSON_BYTES_PER_CHAR * len(name)
        if self._header is not None:
            found = self._headers.get(self._header_key(values))
            if found is None:
                return None
            header, header_size = found
            size += header_size
        slot_values: list[str] = []
        for slot in self._slots:
            v = values.get(slot.column, "")
            if not v.isprintable():
                return None  # control characters, lone surrogates…: the SDK's checks decide
            if slot.body_limit is not None and not (
                v.strip()
                and len(v) <= slot.body_limit
                and "\n" not in v
                and "\r" not in v
                and "\t" not in v
                and "     " not in v
            ):
                return None
            if slot.otp and len(v) > MAX_OTP_CODE_CHARS:
                return None
            if slot.button:
                if v.split() != [v]:
                    return None  # empty, or whitespace in a value that goes in a URL
                for static, count in zip(slot.url_static, slot.url_count, strict=True):
                    if static + count * len(v) > MAX_URL_CHARS:
                        return None
                if slot.coupon and not (len(v) <= MAX_OTP_CODE_CHARS and v.isalnum()):
                    return None
            size += _JSON_BYTES_PER_CHAR * len(v) * slot.occurrences
            slot_values.append(v)
        hydrated = self._hydrated_static
        for k in self._hydrated_slots:
            hydrated += len(slot_values[k])
        if hydrated > MAX_HYDRATED_BODY_CHARS or size > MAX_REQUEST_BYTES:
            return None
        return number, name, self._make(slot_values, header)
