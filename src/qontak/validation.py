"""Pure pre-send checks: phone numbers, and a direct message against its template.

Nothing here does I/O. Every rule comes from ``whatsapp-rules.md`` §1.2 and §7 and prevents a
send that Qontak or WhatsApp would refuse (the WhatsApp error code is named next to each rule),
so a caller learns about it before a request is made and before a broadcast id is spent. What is
merely suspicious but accepted (an OTP whose body and button codes differ, as in the Node
README's own example) is not refused: it is a :class:`~qontak.errors.QontakWarning`, emitted by
:func:`validate_message`, listed by :func:`check_notes` and shown in previews.

Every :class:`~qontak.errors.ValidationError` raised here carries a stable ``code`` (see
:data:`ERROR_CODES`), so callers branch on ``err.code`` and ``err.field``, never on the text:

======================  =========================================================================
code                    meaning
======================  =========================================================================
``missing``             a required value is absent or empty (a field, a variable, the header
                        media, a button value, a local file's name)
``invalid_type``        a value of the wrong type (text expected, a binary file expected…)
``invalid_value``       a value outside the allowed set (header format ``AUDIO``…)
``invalid_phone``       ``to_number`` is not a phone number in Qontak's format
``invalid_character``   ``to_name`` holds a new line or another control character
``invalid_whitespace``  a parameter holds a new line, a tab or 5+ spaces in a row (132018)
``invalid_url``         a media URL that is not http(s)
``invalid_index``       a button index outside ``"0"``–``"9"``
``invalid_code``        a coupon code that is not 1–15 letters and digits
``too_long``            text over its limit (parameters, hydrated body, URL, code, ``to_name``)
``too_large``           the request body (:data:`MAX_REQUEST_BYTES`) or a media file is too big
``not_approved``        the template is not ``APPROVED`` (132001 / 132015 / 132016)
``mismatch``            a value disagrees with the template (id, language, header format,
                        variable count); as a warning: an OTP's body and button codes differ
``duplicate``           the same variable key or button index twice
``unexpected``          a value the template has no place for (variable, header, button)
``wrong_media_type``    header media of a type that header does not take (sniffed or by name)
``not_found``           a local file to upload does not exist
======================  =========================================================================

>>> normalize_phone("0812-3456-7890")
'6281234567890'
>>> check_message(DirectMessage(to_name="Budi", to_number="0812", message_template_id="t",
...     channel_integration_id="c", language=Language(code="id")))[0].code
'invalid_phone'
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import phonenumbers

from ._checks import check_message_types
from ._media import HEADER_EXTENSIONS
from .errors import QontakWarning, ValidationError
from .models import (
    MEDIA_FORMATS,
    BodyParameter,
    ButtonParameter,
    CopyCodeButton,
    DirectMessage,
    HeaderFormat,
    HeaderParameter,
    Language,  # noqa: F401  (used by the doctests)
    OTPButton,
    Template,
    TemplateButton,
    URLButton,
)
from .models.template import PLACEHOLDER

__all__ = [
    "DEFAULT_REGION",
    "ERROR_CODES",
    "MAX_BODY_PARAM_CHARS",
    "MAX_BODY_PARAM_CHARS_BODY_ONLY",
    "MAX_BUTTON_INDEX",
    "MAX_HEADER_PARAM_CHARS",
    "MAX_HYDRATED_BODY_CHARS",
    "MAX_NAME_CHARS",
    "MAX_OTP_CODE_CHARS",
    "MAX_PHONE_DIGITS",
    "MAX_REQUEST_BYTES",
    "MAX_URL_CHARS",
    "MIN_PHONE_DIGITS",
    "check_message",
    "check_notes",
    "fill_placeholders",
    "is_auth_button",
    "normalize_phone",
    "request_size",
    "validate_encoded",
    "validate_message",
]

#: The stable ``code`` of every ValidationError (and QontakWarning) this module gives.
ERROR_CODES: Mapping[str, str] = {
    "missing": "a required value is absent or empty",
    "invalid_type": "a value of the wrong type",
    "invalid_value": "a value outside the allowed set",
    "invalid_phone": "to_number is not a phone number in Qontak's format",
    "invalid_character": "to_name holds a new line or another control character",
    "invalid_whitespace": "a parameter holds a new line, a tab or 5+ spaces in a row (132018)",
    "invalid_url": "a media URL that is not http(s)",
    "invalid_index": "a button index outside '0'-'9'",
    "invalid_code": "a coupon code that is not 1-15 letters and digits",
    "too_long": "text over its limit",
    "too_large": "the request body or a media file is too big",
    "not_approved": "the template is not APPROVED",
    "mismatch": "a value disagrees with the template (a warning for OTP codes)",
    "duplicate": "the same variable key or button index twice",
    "unexpected": "a value the template has no place for",
    "wrong_media_type": "header media of a type that header does not take",
    "not_found": "a local file to upload does not exist",
}

# --- Limits (whatsapp-rules.md §1.2, §1.3, §5, §7) -------------------------------------------

#: Region used to read numbers written without a country code (``0812…``). Indonesia, because
#: Qontak is an Indonesian BSP and its examples are all ``62…`` numbers.
DEFAULT_REGION = "ID"
#: E.164 allows at most 15 digits. The floor is the shortest number phonenumbers knows to be
#: possible anywhere (country code + shortest national number: Austria, Germany and Iran
#: have 4-digit ones), so no valid number is refused: Niue's ``683 4002`` and Tokelau's
#: ``690 7290`` have 7 digits. (A test derives it from phonenumbers' metadata again.)
MIN_PHONE_DIGITS = 6
MAX_PHONE_DIGITS = 15
#: A body text parameter when another component (header, button) also takes parameters.
MAX_BODY_PARAM_CHARS = 1024
#: A body text parameter when the body is the only component with parameters.
MAX_BODY_PARAM_CHARS_BODY_ONLY = 32768
#: A header text parameter.
MAX_HEADER_PARAM_CHARS = 60
#: The body with its variables filled in (error 132005; the exact ceiling is assumed, §8).
MAX_HYDRATED_BODY_CHARS = 1024
#: An authentication code (body {{1}} and the OTP button).
MAX_OTP_CODE_CHARS = 15
#: The final URL of a URL button (base + suffix).
MAX_URL_CHARS = 2000
#: Button indexes are "0"–"9" (at most 10 buttons).
MAX_BUTTON_INDEX = 9
#: ``to_name`` is the contact's name in Qontak's inbox and broadcast log
#: (``contact_full_name``). Qontak documents no limit; 128 characters holds any real person's
#: or business's name with room to spare, while a pasted document (a 100,000-character name
#: was accepted once and flooded ``qontak log``) is stopped before it is stored for good.
MAX_NAME_CHARS = 128
#: The whole JSON body of a direct send. Qontak documents no limit; 1 MiB is the common
#: gateway default (nginx ``client_max_body_size``) and the sandbox's 413 threshold, and the
#: largest valid message (one 32,768-character body parameter) is far below it, so anything
#: bigger is a mistake better caught before the upload than answered by a 413.
MAX_REQUEST_BYTES = 1024 * 1024

#: Error 132018: "Param text cannot have new-line/tab characters or more than 4 consecutive spaces".
_BAD_WHITESPACE = re.compile(r"[\n\r\t]| {5,}")
# Characters people write in phone numbers; anything else (letters!) is rejected up front,
# because phonenumbers would otherwise happily turn "1-800-FLOWERS" into digits.
_PHONE_CHARS = re.compile(r"^[\d\s()+\-./]+$")
_PHONE_SEPARATORS = re.compile(r"[\s()\-./]")
# Control characters (new lines, NUL…) and lone surrogates: never part of a name. These are
# exactly Unicode's categories Cc and Cs (a test checks it against ``unicodedata``); one
# regex search instead of a category lookup per character.
_BAD_NAME_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


# --- Phone numbers ------------------------------------------------------------------------------


def normalize_phone(number: str, region: str | None = DEFAULT_REGION) -> str:
    """Turn a phone number as people write it into Qontak's ``to_number``: digits with the
    country code and no ``+``.

    Numbers without a country code are read as numbers of ``region``. A leading ``00`` is taken
    as the international prefix (phonenumbers would not, since Indonesia dials ``008``/``009``).
    Raises ``ValidationError("to_number", …)`` when the text is not a valid phone number.

    >>> normalize_phone("+62 0812 3456 7890")
    '6281234567890'
    >>> normalize_phone("(0812) 3456 7890")
    '6281234567890'
    >>> normalize_phone("00 62 812-3456-7890")
    '6281234567890'
    >>> normalize_phone("650 253 0000", region="US")
    '16502530000'
    >>> normalize_phone("62812345678")  # already Qontak's format: kept as it is
    '62812345678'
    """
    # region=None: no default country, so only numbers that carry their country code pass.
    if region is not None and not isinstance(region, str):
        raise ValidationError(
            "region",
            f"expected a region code such as 'ID', got {type(region).__name__}",
            code="invalid_type",
        )
    if not isinstance(number, str):
        # Named by its type only: its repr may hold anything (a 70,000-character text).
        raise ValidationError(
            "to_number", f"expected text, got {type(number).__name__}", code="invalid_type"
        )
    if len(number) > 64:
        # Refused before it is repeated in the message (a 70,000-character "number").
        raise ValidationError(
            "to_number", f"is {len(number)} characters; not a phone number", code="too_long"
        )
    text = number.strip()
    if not text or not _PHONE_CHARS.match(text) or not any(c.isdigit() for c in text):
        raise ValidationError(
            "to_number", f"{number!r} is not a phone number", code="invalid_phone"
        )
    compact = _PHONE_SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if compact.count("+") > 1 or "+" in compact[1:]:
        raise ValidationError(
            "to_number", f"{number!r} is not a phone number", code="invalid_phone"
        )
    digits = compact.lstrip("+")
    if len(digits) > MAX_PHONE_DIGITS + 1:  # +1: a national trunk "0" is not part of E.164
        raise ValidationError(
            "to_number",
            f"{number!r} is too long (at most {MAX_PHONE_DIGITS} digits)",
            code="invalid_phone",
        )

    # Qontak's own format is "6281…" without "+", so a bare number is tried both ways: as an
    # international number and as a national number of `region`; a valid reading wins. When the
    # digits start with the region's own country code the international reading goes first,
    # or "62812345678" (already Qontak's format) would become "6262812345678".
    region = region.upper() if region else None
    if region == "ID" and (fast := _indonesian_mobile(compact)) is not None:
        return fast
    country_code = str(phonenumbers.country_code_for_region(region) or "") if region else ""
    if compact.startswith("+"):
        candidates = [compact]
    elif country_code and digits.startswith(country_code):
        candidates = ["+" + compact, compact]
    else:
        candidates = [compact, "+" + compact]
    first: phonenumbers.PhoneNumber | None = None
    for candidate in candidates:
        try:
            parsed = phonenumbers.parse(candidate, None if candidate[0] == "+" else region)
        except phonenumbers.NumberParseException:
            continue
        if first is None:
            first = parsed
        if phonenumbers.is_valid_number(parsed):
            e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            return e164.lstrip("+")
    raise ValidationError("to_number", _phone_reason(number, first, region), code="invalid_phone")


# Indonesian mobile numbers are almost every number a campaign file holds, and parsing them
# with phonenumbers is most of the cost of importing one. For the three ways they are written
# ("+62 8…", "62 8…", "0 8…" with separators already removed) the answer phonenumbers gives is
# known without parsing: the national number is what follows the prefix, and it is valid when
# it matches phonenumbers' own patterns (general, and mobile) for Indonesia, read from its
# metadata so an update of phonenumbers moves both paths together. Anything else, and any
# number these patterns do not accept, goes through phonenumbers below; a property test
# (tests/campaigns/test_import_fastpath.py) checks both paths agree.
_ID_METADATA = phonenumbers.PhoneMetadata.metadata_for_region("ID")


def _desc_pattern(desc: phonenumbers.PhoneNumberDesc | None) -> tuple[re.Pattern[str], set[int]]:
    if desc is None or desc.national_number_pattern is None:
        return re.compile(r"(?!)"), set()
    return re.compile(desc.national_number_pattern), set(desc.possible_length or ())


_ID_GENERAL = _desc_pattern(_ID_METADATA.general_desc if _ID_METADATA else None)
_ID_MOBILE = _desc_pattern(_ID_METADATA.mobile if _ID_METADATA else None)
# The shortcut assumes how phonenumbers strips Indonesia's trunk prefix; off if that changes.
_ID_FAST = (
    _ID_METADATA is not None
    and _ID_METADATA.country_code == 62
    and _ID_METADATA.national_prefix_for_parsing == "0"
    and _ID_METADATA.national_prefix_transform_rule is None
)


def _indonesian_mobile(compact: str) -> str | None:
    """``62`` + the national number when ``compact`` is an Indonesian mobile number written
    ``+628…``, ``628…`` or ``08…`` that phonenumbers would find valid; else None."""
    if not _ID_FAST:
        return None
    if compact.startswith("+62"):
        nsn = compact[3:]
    elif compact.startswith("62"):
        nsn = compact[2:]
    elif compact.startswith("0"):
        nsn = compact[1:]
    else:
        return None
    if not (nsn.isascii() and nsn.isdigit()) or nsn[0] == "0":
        return None
    for pattern, lengths in (_ID_GENERAL, _ID_MOBILE):
        if (lengths and len(nsn) not in lengths) or not pattern.fullmatch(nsn):
            return None
    return "62" + nsn


def _phone_reason(number: str, parsed: phonenumbers.PhoneNumber | None, region: str | None) -> str:
    """Say why a number was rejected, in the caller's terms."""
    if parsed is None:
        return f"{number!r} is not a phone number (no country code and region {region!r} unknown)"
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason == phonenumbers.ValidationResult.TOO_SHORT:
        return f"{number!r} is too short"
    if reason == phonenumbers.ValidationResult.TOO_LONG:
        return f"{number!r} is too long"
    if reason == phonenumbers.ValidationResult.INVALID_COUNTRY_CODE:
        return f"{number!r} has an unknown country code"
    where = phonenumbers.region_code_for_number(parsed) or f"+{parsed.country_code}"
    return f"{number!r} is not a valid phone number for {where}"


# --- Small pure helpers shared with render.py ----------------------------------------------------


def fill_placeholders(text: str, values: dict[str, str], missing: str = "{{%s}}") -> str:
    """Substitute ``{{name}}`` placeholders; unfilled ones become ``missing % name``.

    >>> fill_placeholders("Hi {{1}}, order {{2}}", {"1": "Budi"}, "<{{%s}}?>")
    'Hi Budi, order <{{2}}?>'
    """
    return PLACEHOLDER.sub(
        lambda m: values[m.group(1)] if m.group(1) in values else missing % m.group(1), text
    )


def is_auth_button(template: Template, button: TemplateButton) -> bool:
    """Whether ``button`` carries the one-time code of an authentication template.

    Kept for callers of earlier versions: the rule is :attr:`Template.code_button_index`
    (an OTP button, or the URL button Meta stores it as).
    """
    if isinstance(button, OTPButton):
        return True
    index = template.code_button_index
    return index is not None and template.buttons[index] is button


def request_size(message: DirectMessage) -> int:
    """The size in bytes of ``message``'s JSON body as sent (``json.dumps`` layout, UTF-8:
    the bytes a send posts)."""
    text = json.dumps(message.to_wire(), ensure_ascii=False)
    # surrogatepass: a lone surrogate is reported by its own rule, not by a crash here.
    return len(text.encode("utf-8", "surrogatepass"))


# --- Message checks ------------------------------------------------------------------------------


def validate_message(message: DirectMessage, template: Template | None = None) -> None:
    """Raise the first problem of ``message`` as a ``ValidationError``; return if it is fine.

    ``template`` defaults to the one the message was built with (``message.template``); without
    one only the template-independent rules run. When the message is fine but something in it
    looks wrong though Qontak and WhatsApp accept it (see :func:`check_notes`), each note is
    emitted as a :class:`~qontak.errors.QontakWarning` and the message passes.

    >>> msg = DirectMessage(to_name="Budi", to_number="6281234567890",
    ...     message_template_id="t", channel_integration_id="c", language=Language(code="id"))
    >>> validate_message(msg)
    >>> validate_message(msg.model_copy(update={"to_number": "+62 812"}))
    Traceback (most recent call last):
    ...
    qontak.errors.ValidationError: to_number: must be digits only with the country code, no '+'
    """
    validate_encoded(message, template, None)


def validate_encoded(
    message: DirectMessage,
    template: Template | None,
    body: bytes | None,
    *,
    types_checked: bool = False,
) -> None:
    """:func:`validate_message` for a message already encoded as the request ``body`` it
    will be sent as: the size rule measures those bytes rather than encoding it again.
    (The send path encodes a message once, then checks and posts those same bytes.)
    ``types_checked``: the caller has just checked the message's types (the send path's
    ``check_sendable_message``), so that is not done again."""
    size = None if body is None else len(body)
    for problem in _problems(message, template, size, types_checked=types_checked):
        raise problem
    for note in check_notes(message, template):
        _warn(note)


def _warn(note: QontakWarning) -> None:
    """Warn at the caller's own line: the first frame outside this package (a send reaches
    here through the client and the resource, which would otherwise be blamed)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame = sys._getframe(0)
    level = 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        package + os.sep
    ):
        frame = frame.f_back
        level += 1
    warnings.warn(note, stacklevel=level)


def check_message(
    message: DirectMessage, template: Template | None = None
) -> list[ValidationError]:
    """Every problem of ``message`` (against ``template`` when known), in a stable order.

    >>> msg = DirectMessage(to_name="", to_number="62812", message_template_id="t",
    ...     channel_integration_id="c", language=Language(code="id"))
    >>> [str(e) for e in check_message(msg)]
    ['to_name: must not be empty', 'to_number: must have 6 to 15 digits, got 5']
    """
    return list(_problems(message, template))


def _type_problem(message: DirectMessage) -> ValidationError | None:
    # A message changed by hand may hold anything (pydantic does not check assignments);
    # the rules below read its texts as ``str``, so a wrong type is the one problem reported.
    try:
        check_message_types(message)
    except ValidationError as exc:
        return exc
    return None


def check_notes(message: DirectMessage, template: Template | None = None) -> list[QontakWarning]:
    """What looks wrong in ``message`` but is accepted by Qontak and WhatsApp, so it is sent
    anyway: each a :class:`~qontak.errors.QontakWarning` with ``field``, ``reason``, ``code``.

    Today: an authentication message whose body code and button code differ (the Node README's
    own example does this; the recipient reads one code and the button copies the other).
    """
    if _type_problem(message) is not None:
        return []
    template = template if template is not None else message.template
    if template is None or not template.is_authentication:
        return []
    return list(_otp_notes(message, template))


def _problems(
    message: DirectMessage,
    template: Template | None,
    size: int | None = None,
    *,
    types_checked: bool = False,
) -> Iterator[ValidationError]:
    wrong_type = None if types_checked else _type_problem(message)
    if wrong_type is not None:
        yield wrong_type
        return
    template = template if template is not None else message.template
    yield from _check_required(message)
    yield from _check_name(message.to_name)
    yield from _check_number(message.to_number)
    if template is not None:
        yield from _check_template(message, template)
    yield from _check_header(message.parameters.header, template)
    yield from _check_body(message, template)
    yield from _check_buttons(message, template)
    if template is not None and template.is_authentication:
        yield from _check_otp(message, template)
    yield from _check_size(message, size)


def _check_required(message: DirectMessage) -> Iterator[ValidationError]:
    # Qontak requires all of these (OAS `PostBroadcastDirect`); pydantic only checks presence.
    for name in ("to_name", "to_number", "message_template_id", "channel_integration_id"):
        if not str(getattr(message, name)).strip():
            yield ValidationError(name, "must not be empty", code="missing")
    if not message.language.code.strip():
        yield ValidationError("language.code", "must not be empty", code="missing")


def _check_name(name: str) -> Iterator[ValidationError]:
    if len(name) > MAX_NAME_CHARS:
        yield ValidationError(
            "to_name",
            f"is {len(name)} characters; at most {MAX_NAME_CHARS}",
            code="too_long",
        )
    found = _BAD_NAME_CHAR.search(name)
    if found is not None:
        bad = found.group()
        yield ValidationError(
            "to_name",
            f"cannot contain new lines or control characters (found {bad!r})",
            code="invalid_character",
        )


def _check_number(number: str) -> Iterator[ValidationError]:
    if not number:
        return  # already reported as empty
    if not number.isdigit() or not number.isascii():
        yield ValidationError(
            "to_number", "must be digits only with the country code, no '+'", code="invalid_phone"
        )
    elif number.startswith("0"):
        # "0812…" is a national number: WhatsApp would read "08" as a country code (131026).
        yield ValidationError(
            "to_number",
            "must start with the country code (e.g. 62812…), not a trunk '0'",
            code="invalid_phone",
        )
    elif not MIN_PHONE_DIGITS <= len(number) <= MAX_PHONE_DIGITS:
        yield ValidationError(
            "to_number",
            f"must have {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} digits, got {len(number)}",
            code="invalid_phone",
        )


def _check_template(message: DirectMessage, template: Template) -> Iterator[ValidationError]:
    if message.message_template_id and message.message_template_id != template.id:
        yield ValidationError(
            "message_template_id",
            f"message is for template {message.message_template_id!r} "
            f"but was checked against {template.id!r}",
            code="mismatch",
        )
    if template.status is not None and not template.is_approved:
        # 132001 (PENDING/REJECTED), 132015 (PAUSED), 132016 (DISABLED).
        yield ValidationError(
            "message_template_id",
            f"template {template.name!r} is {template.status}; only APPROVED templates can be sent",
            code="not_approved",
        )
    code = message.language.code
    if code.strip() and code != template.language:
        # 132001: the template must exist in exactly this language code.
        yield ValidationError(
            "language.code",
            f"{code!r} does not match the template's language {template.language!r}",
            code="mismatch",
        )


def _check_text_value(field: str, value: str, limit: int, what: str) -> Iterator[ValidationError]:
    """The §1.2 value rules shared by body and header text parameters."""
    if not value.strip():
        yield ValidationError(field, f"{what} must not be empty", code="missing")  # 132000/131008
    elif _BAD_WHITESPACE.search(value):
        yield ValidationError(
            field,
            f"{what} cannot contain new lines, tabs or more than 4 consecutive spaces",  # 132018
            code="invalid_whitespace",
        )
    if len(value) > limit:
        yield ValidationError(
            field, f"{what} is {len(value)} characters; at most {limit}", code="too_long"
        )


def _check_header(
    header: HeaderParameter | None, template: Template | None
) -> Iterator[ValidationError]:
    expected = template.header_format if template is not None else None
    given = HeaderFormat.of(header.format) if header is not None else None
    if template is not None:
        if template.has_media_header and header is None:
            # 132012 "Format mismatch, expected IMAGE, received UNKNOWN": media on every send.
            yield ValidationError(
                "parameters.header",
                f"template has a {expected} header; the message must give its url",
                code="missing",
            )
            return
        if header is not None and not template.has_media_header and given != HeaderFormat.TEXT:
            yield ValidationError(
                "parameters.header",
                f"template has no media header, got {header.format}",
                code="unexpected",
            )
            return
    if header is None:
        return
    if given == HeaderFormat.TEXT:
        # Qontak documents no wire format for text-header variables; check the values only.
        for i, param in enumerate(header.params):
            yield from _check_text_value(
                f"parameters.header.params[{i}].value",
                param.value,
                MAX_HEADER_PARAM_CHARS,
                "header text",
            )
        return
    if not isinstance(given, HeaderFormat) or given not in MEDIA_FORMATS:
        yield ValidationError(
            "parameters.header.format",
            f"must be IMAGE, VIDEO or DOCUMENT, got {header.format!r}",
            code="invalid_value",
        )
        return
    if expected in MEDIA_FORMATS and given != expected:
        yield ValidationError(
            "parameters.header.format", f"expected {expected}, got {given}", code="mismatch"
        )
        return
    keys = [p.key for p in header.params]
    if "url" not in keys:
        yield ValidationError(
            "parameters.header.params", f"{given} header needs a 'url' param", code="missing"
        )
        return
    i = keys.index("url")
    url = header.params[i].value
    field = f"parameters.header.params[{i}].value"
    if urlsplit(url).scheme.lower() not in ("http", "https") or not urlsplit(url).netloc:
        yield ValidationError(field, f"media url must be http(s), got {url!r}", code="invalid_url")
        return
    if len(url) > MAX_URL_CHARS:
        yield ValidationError(
            field, f"media url is {len(url)} characters; at most {MAX_URL_CHARS}", code="too_long"
        )
    # The file type: the filename when given (signed URLs often have no extension), else the URL.
    # (A local file's real type is sniffed from its bytes before upload: see qontak._media.)
    filename = header.get("filename")
    name = filename if filename else PurePosixPath(unquote(urlsplit(url).path)).name
    ext = PurePosixPath(name).suffix.lower()
    where = f"parameters.header.params[{keys.index('filename')}].value" if filename else field
    if given == HeaderFormat.DOCUMENT and ext != ".pdf":
        # Meta: "Only PDF documents are supported for media-based message templates".
        yield ValidationError(
            where, f"a DOCUMENT header must be a PDF, got {name!r}", code="wrong_media_type"
        )
    elif ext and ext not in HEADER_EXTENSIONS[given]:
        allowed = ", ".join(sorted(HEADER_EXTENSIONS[given]))
        yield ValidationError(
            where,
            f"an {given} header must be one of {allowed}, got {name!r}",
            code="wrong_media_type",
        )


def _body_limit(message: DirectMessage, template: Template | None) -> int:
    """1024 per body parameter, or 32768 when the body is the only parameterised component."""
    if template is not None:
        others = template.parameterised_outside_body
    else:
        p = message.parameters
        others = p.header is not None or bool(p.buttons)
    return MAX_BODY_PARAM_CHARS if others else MAX_BODY_PARAM_CHARS_BODY_ONLY


def _check_body(message: DirectMessage, template: Template | None) -> Iterator[ValidationError]:
    body: list[BodyParameter] = message.parameters.body or []
    limit = _body_limit(message, template)
    seen: set[str] = set()
    expected = template.placeholders if template is not None else None
    for i, param in enumerate(body):
        path = f"parameters.body[{i}]"
        if not param.key.strip():
            yield ValidationError(f"{path}.key", "must not be empty", code="missing")
        elif param.key in seen:
            yield ValidationError(  # 132000
                f"{path}.key", f"duplicate key {param.key!r}", code="duplicate"
            )
        elif expected is not None and param.key not in expected:
            yield ValidationError(
                f"{path}.key",
                f"template body has no placeholder {{{{{param.key}}}}}",
                code="unexpected",
            )
        seen.add(param.key)
        yield from _check_text_value(f"{path}.value_text", param.value_text, limit, "value")
        if not param.value.strip():
            # Qontak requires the label.
            yield ValidationError(f"{path}.value", "label must not be empty", code="missing")
    if expected is None or template is None:
        return
    if len(body) != len(expected):
        # Qontak's own wording for 132000.
        yield ValidationError(
            "parameters.body",
            f"template has {len(expected)} variables, got {len(body)}",
            code="mismatch",
        )
    missing = [name for name in expected if name not in seen]
    if missing:
        names = ", ".join(f"{{{{{m}}}}}" for m in missing)
        yield ValidationError("parameters.body", f"no value for {names}", code="missing")
    if _hydrated_at_most(template.body, body) <= MAX_HYDRATED_BODY_CHARS:
        return  # (filling it in costs more than the rest of the rule)
    hydrated = fill_placeholders(template.body, message.body_values)
    if len(hydrated) > MAX_HYDRATED_BODY_CHARS:
        yield ValidationError(
            "parameters.body",
            f"the body with its variables filled in is {len(hydrated)} characters; "
            f"at most {MAX_HYDRATED_BODY_CHARS}",  # 132005
            code="too_long",
        )


def _hydrated_at_most(text: str, body: list[BodyParameter]) -> int:
    """A bound on the length of ``text`` with its placeholders filled in: each placeholder is
    at least five characters (``{{1}}``) and is replaced by one value at most this long."""
    longest = max((len(p.value_text) for p in body), default=0)
    return len(text) + (len(text) // 5) * longest


def _check_buttons(message: DirectMessage, template: Template | None) -> Iterator[ValidationError]:
    buttons: list[ButtonParameter] = message.parameters.buttons or []
    by_index: dict[str, int] = {}
    for j, param in enumerate(buttons):
        path = f"parameters.buttons[{j}]"
        if not (param.index.isascii() and param.index.isdigit()) or (
            int(param.index) > MAX_BUTTON_INDEX
        ):
            yield ValidationError(
                f"{path}.index", f"must be '0' to '9', got {param.index!r}", code="invalid_index"
            )
            continue
        if param.index in by_index:
            yield ValidationError(
                f"{path}.index", f"duplicate index {param.index!r}", code="duplicate"
            )
            continue
        by_index[param.index] = j
        if not param.type.strip():
            yield ValidationError(f"{path}.type", "must not be empty", code="missing")
        if not param.value.strip():
            yield ValidationError(f"{path}.value", "must not be empty", code="missing")
        elif any(c.isspace() for c in param.value):
            # The value ends up in a URL (suffix or OTP link): 131009 otherwise.
            yield ValidationError(
                f"{path}.value",
                "cannot contain whitespace (it goes in a URL)",
                code="invalid_whitespace",
            )
    if template is None:
        return
    for i in template.value_button_indexes:
        if str(i) not in by_index:
            button = template.buttons[i]
            what = getattr(button, "url", None) or button.text or button.type
            yield ValidationError(
                "parameters.buttons",
                f"template button {i} ({what}) needs a value at index '{i}'",
                code="missing",
            )
    for index, j in by_index.items():
        yield from _check_button_value(template, int(index), buttons[j], f"parameters.buttons[{j}]")


def _check_button_value(
    template: Template, i: int, param: ButtonParameter, path: str
) -> Iterator[ValidationError]:
    if i >= len(template.buttons):
        if not (template.is_authentication and i == 0):
            # (Qontak's template list may omit an authentication template's code button.)
            yield ValidationError(f"{path}.index", f"template has no button {i}", code="unexpected")
        return
    button = template.buttons[i]
    if not template.button_takes_value(i):
        yield ValidationError(
            f"{path}.index",
            f"template button {i} ({button.type}) takes no value",
            code="unexpected",
        )
    elif isinstance(button, URLButton) and button.is_dynamic:
        final = button.final_url(param.value)
        if len(final) > MAX_URL_CHARS:
            yield ValidationError(
                f"{path}.value",
                f"the button's final URL is {len(final)} characters; at most {MAX_URL_CHARS}",
                code="too_long",
            )
    elif isinstance(button, CopyCodeButton) and i != template.code_button_index:
        # §1.3: a marketing coupon code is alphanumeric, at most 15 characters.
        coupon = param.value
        if len(coupon) > MAX_OTP_CODE_CHARS or not coupon.isalnum():
            yield ValidationError(
                f"{path}.value",
                f"a coupon code is letters and digits only, at most "
                f"{MAX_OTP_CODE_CHARS} characters, got {coupon!r}",
                code="invalid_code",
            )


def _code_button(message: DirectMessage, template: Template) -> tuple[int, ButtonParameter] | None:
    """The message's value for the template's code button (index "0" when the template data
    lists none) and its position in ``parameters.buttons``."""
    index = str(template.code_button_index or 0)
    for j, param in enumerate(message.parameters.buttons or []):
        if param.index == index:
            return j, param
    return None


def _check_otp(message: DirectMessage, template: Template) -> Iterator[ValidationError]:
    """AUTHENTICATION: the code goes in body {{1}} and in button 0, ≤ 15 characters."""
    body = message.parameters.body or []
    if not body:
        return  # the count rule already reported it
    code = body[0].value_text
    if len(code) > MAX_OTP_CODE_CHARS:
        yield ValidationError(
            "parameters.body[0].value_text",
            f"a verification code is at most {MAX_OTP_CODE_CHARS} characters, got {len(code)}",
            code="too_long",
        )
    if not template.buttons and _code_button(message, template) is None:
        # (When the template lists its buttons, _check_buttons has reported this already.)
        yield ValidationError(
            "parameters.buttons",
            "an authentication message needs the code in button '0' too",
            code="missing",
        )


def _otp_notes(message: DirectMessage, template: Template) -> Iterator[QontakWarning]:
    """Body and button codes that differ: accepted by Qontak (the Node README's own example
    does it), but the recipient reads one code and the button copies the other."""
    body = message.parameters.body or []
    found = _code_button(message, template)
    if not body or found is None:
        return
    j, param = found
    code = body[0].value_text
    if param.value != code:
        yield QontakWarning(
            f"parameters.buttons[{j}].value",
            f"the button's code {param.value!r} differs from the code in the body {code!r}: "
            "the recipient reads one and the copy button copies the other",
            code="mismatch",
        )


def _check_size(message: DirectMessage, size: int | None) -> Iterator[ValidationError]:
    if size is None:
        size = request_size(message)
    if size > MAX_REQUEST_BYTES:
        yield ValidationError(
            "message",
            f"the request body is {size:,} bytes; at most {MAX_REQUEST_BYTES:,}",
            code="too_large",
        )
