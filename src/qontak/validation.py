"""Pure pre-send checks: phone numbers, and a direct message against its template.

Nothing here does I/O. Every rule comes from ``whatsapp-rules.md`` §1.2 and §7 and prevents a
send that Qontak or WhatsApp would refuse (the WhatsApp error code is named next to each rule),
so a caller learns about it before a request is made and before a broadcast id is spent.

>>> normalize_phone("0812-3456-7890")
'6281234567890'
>>> check_message(DirectMessage(to_name="Budi", to_number="0812", message_template_id="t",
...     channel_integration_id="c", language=Language(code="id")))[0].field
'to_number'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import phonenumbers

from .errors import ValidationError
from .models import (
    MEDIA_FORMATS,
    BodyParameter,
    ButtonParameter,
    DirectMessage,
    HeaderParameter,
    Language,  # noqa: F401  (used by the doctests)
    Template,
    TemplateButton,
    placeholders,
)

__all__ = [
    "DEFAULT_REGION",
    "MAX_BODY_PARAM_CHARS",
    "MAX_BODY_PARAM_CHARS_BODY_ONLY",
    "MAX_BUTTON_INDEX",
    "MAX_HEADER_PARAM_CHARS",
    "MAX_HYDRATED_BODY_CHARS",
    "MAX_OTP_CODE_CHARS",
    "MAX_PHONE_DIGITS",
    "MAX_URL_CHARS",
    "MIN_PHONE_DIGITS",
    "check_message",
    "fill_placeholders",
    "is_auth_button",
    "normalize_phone",
    "validate_message",
]

# --- Limits (whatsapp-rules.md §1.2, §1.3, §5, §7) -------------------------------------------

#: Region used to read numbers written without a country code (``0812…``). Indonesia, because
#: Qontak is an Indonesian BSP and its examples are all ``62…`` numbers.
DEFAULT_REGION = "ID"
#: E.164 allows at most 15 digits; 8 is a floor below which no real mobile number exists.
MIN_PHONE_DIGITS = 8
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

#: Error 132018: "Param text cannot have new-line/tab characters or more than 4 consecutive spaces".
_BAD_WHITESPACE = re.compile(r"[\n\r\t]| {5,}")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
# Characters people write in phone numbers; anything else (letters!) is rejected up front,
# because phonenumbers would otherwise happily turn "1-800-FLOWERS" into digits.
_PHONE_CHARS = re.compile(r"^[\d\s()+\-./]+$")
_PHONE_SEPARATORS = re.compile(r"[\s()\-./]")
_MEDIA_EXTENSIONS = {
    # §1.5: only these types are accepted as template header media.
    "IMAGE": frozenset({".jpg", ".jpeg", ".png"}),
    "VIDEO": frozenset({".mp4", ".3gp", ".3gpp"}),
    "DOCUMENT": frozenset({".pdf"}),
}
_OTP_BUTTON_TYPES = frozenset({"OTP", "COPY_CODE"})


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
    if isinstance(number, str) and len(number) > 64:
        # Refused before it is repeated in the message (a 70,000-character "number").
        raise ValidationError(
            "to_number", f"is {len(number)} characters; not a phone number", code="too_long"
        )
    text = number.strip() if isinstance(number, str) else ""
    if not text or not _PHONE_CHARS.match(text) or not any(c.isdigit() for c in text):
        raise ValidationError("to_number", f"{number!r} is not a phone number")
    compact = _PHONE_SEPARATORS.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if compact.count("+") > 1 or "+" in compact[1:]:
        raise ValidationError("to_number", f"{number!r} is not a phone number")
    digits = compact.lstrip("+")
    if len(digits) > MAX_PHONE_DIGITS + 1:  # +1: a national trunk "0" is not part of E.164
        raise ValidationError(
            "to_number", f"{number!r} is too long (at most {MAX_PHONE_DIGITS} digits)"
        )

    # Qontak's own format is "6281…" without "+", so a bare number is tried both ways: as an
    # international number and as a national number of `region`; a valid reading wins. When the
    # digits start with the region's own country code the international reading goes first,
    # or "62812345678" (already Qontak's format) would become "6262812345678".
    region = region.upper() if region else None
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
    raise ValidationError("to_number", _phone_reason(number, first, region))


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
    return _PLACEHOLDER.sub(
        lambda m: values[m.group(1)] if m.group(1) in values else missing % m.group(1), text
    )


def is_auth_button(template: Template, button: TemplateButton) -> bool:
    """Whether ``button`` carries the one-time code of an authentication template.

    Meta stores an OTP button as type URL (§1.4), Qontak's typing adds ``otp_type``; any of the
    three marks the code button.
    """
    kind = button.type.upper()
    if kind in _OTP_BUTTON_TYPES or button.otp_type:
        return True
    return _is_auth(template) and kind == "URL"


def _final_url(url: str, suffix: str) -> str:
    """A URL button's address with its (single, trailing) variable replaced by ``suffix``."""
    return _PLACEHOLDER.sub(lambda _m: suffix, url)


def _is_auth(template: Template | None) -> bool:
    return template is not None and (template.category or "").upper() == "AUTHENTICATION"


def _needs_value(template: Template, button: TemplateButton) -> bool:
    """Whether a send must supply a value for this template button."""
    return button.is_dynamic or is_auth_button(template, button)


# --- Message checks ------------------------------------------------------------------------------


def validate_message(message: DirectMessage, template: Template | None = None) -> None:
    """Raise the first problem of ``message`` as a ``ValidationError``; return if it is fine.

    ``template`` defaults to the one the message was built with (``message.template``); without
    one only the template-independent rules run.

    >>> msg = DirectMessage(to_name="Budi", to_number="6281234567890",
    ...     message_template_id="t", channel_integration_id="c", language=Language(code="id"))
    >>> validate_message(msg)
    >>> validate_message(msg.model_copy(update={"to_number": "+62 812"}))
    Traceback (most recent call last):
    ...
    qontak.errors.ValidationError: to_number: must be digits only with the country code, no '+'
    """
    for problem in _problems(message, template):
        raise problem


def check_message(
    message: DirectMessage, template: Template | None = None
) -> list[ValidationError]:
    """Every problem of ``message`` (against ``template`` when known), in a stable order.

    >>> msg = DirectMessage(to_name="", to_number="62812", message_template_id="t",
    ...     channel_integration_id="c", language=Language(code="id"))
    >>> [str(e) for e in check_message(msg)]
    ['to_name: must not be empty', 'to_number: must have 8 to 15 digits, got 5']
    """
    return list(_problems(message, template))


def _problems(message: DirectMessage, template: Template | None) -> Iterator[ValidationError]:
    template = template if template is not None else message.template
    yield from _check_required(message)
    yield from _check_number(message.to_number)
    if template is not None:
        yield from _check_template(message, template)
    yield from _check_header(message.parameters.header, template)
    yield from _check_body(message, template)
    yield from _check_buttons(message, template)
    if template is not None and _is_auth(template):
        yield from _check_otp(message, template)


def _check_required(message: DirectMessage) -> Iterator[ValidationError]:
    # Qontak requires all of these (OAS `PostBroadcastDirect`); pydantic only checks presence.
    for name in ("to_name", "to_number", "message_template_id", "channel_integration_id"):
        if not str(getattr(message, name)).strip():
            yield ValidationError(name, "must not be empty")
    if not message.language.code.strip():
        yield ValidationError("language.code", "must not be empty")


def _check_number(number: str) -> Iterator[ValidationError]:
    if not number:
        return  # already reported as empty
    if not number.isdigit() or not number.isascii():
        yield ValidationError("to_number", "must be digits only with the country code, no '+'")
    elif number.startswith("0"):
        # "0812…" is a national number: WhatsApp would read "08" as a country code (131026).
        yield ValidationError(
            "to_number", "must start with the country code (e.g. 62812…), not a trunk '0'"
        )
    elif not MIN_PHONE_DIGITS <= len(number) <= MAX_PHONE_DIGITS:
        yield ValidationError(
            "to_number",
            f"must have {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} digits, got {len(number)}",
        )


def _check_template(message: DirectMessage, template: Template) -> Iterator[ValidationError]:
    if message.message_template_id and message.message_template_id != template.id:
        yield ValidationError(
            "message_template_id",
            f"message is for template {message.message_template_id!r} "
            f"but was checked against {template.id!r}",
        )
    if template.status is not None and not template.is_approved:
        # 132001 (PENDING/REJECTED), 132015 (PAUSED), 132016 (DISABLED).
        yield ValidationError(
            "message_template_id",
            f"template {template.name!r} is {template.status.upper()}; "
            "only APPROVED templates can be sent",
        )
    code = message.language.code
    if code.strip() and code != template.language:
        # 132001: the template must exist in exactly this language code.
        yield ValidationError(
            "language.code",
            f"{code!r} does not match the template's language {template.language!r}",
        )


def _check_text_value(field: str, value: str, limit: int, what: str) -> Iterator[ValidationError]:
    """The §1.2 value rules shared by body and header text parameters."""
    if not value.strip():
        yield ValidationError(field, f"{what} must not be empty")  # 132000 / 131008
    elif _BAD_WHITESPACE.search(value):
        yield ValidationError(
            field,
            f"{what} cannot contain new lines, tabs or more than 4 consecutive spaces",  # 132018
        )
    if len(value) > limit:
        yield ValidationError(field, f"{what} is {len(value)} characters; at most {limit}")


def _check_header(
    header: HeaderParameter | None, template: Template | None
) -> Iterator[ValidationError]:
    expected = template.header_format if template is not None else None
    if template is not None:
        if expected in MEDIA_FORMATS and header is None:
            # 132012 "Format mismatch, expected IMAGE, received UNKNOWN": media on every send.
            yield ValidationError(
                "parameters.header",
                f"template has a {expected} header; the message must give its url",
            )
            return
        if header is not None and expected not in MEDIA_FORMATS and header.format.upper() != "TEXT":
            yield ValidationError(
                "parameters.header", f"template has no media header, got {header.format}"
            )
            return
    if header is None:
        return
    fmt = header.format.upper()
    if fmt == "TEXT":
        # Qontak documents no wire format for text-header variables; check the values only.
        for i, param in enumerate(header.params):
            yield from _check_text_value(
                f"parameters.header.params[{i}].value",
                param.value,
                MAX_HEADER_PARAM_CHARS,
                "header text",
            )
        return
    if fmt not in MEDIA_FORMATS:
        yield ValidationError(
            "parameters.header.format", f"must be IMAGE, VIDEO or DOCUMENT, got {header.format!r}"
        )
        return
    if expected in MEDIA_FORMATS and fmt != expected:
        yield ValidationError("parameters.header.format", f"expected {expected}, got {fmt}")
        return
    keys = [p.key for p in header.params]
    if "url" not in keys:
        yield ValidationError("parameters.header.params", f"{fmt} header needs a 'url' param")
        return
    i = keys.index("url")
    url = header.params[i].value
    field = f"parameters.header.params[{i}].value"
    if urlsplit(url).scheme.lower() not in ("http", "https") or not urlsplit(url).netloc:
        yield ValidationError(field, f"media url must be http(s), got {url!r}")
        return
    if len(url) > MAX_URL_CHARS:
        yield ValidationError(field, f"media url is {len(url)} characters; at most {MAX_URL_CHARS}")
    # The file type: the filename when given (signed URLs often have no extension), else the URL.
    filename = header.get("filename")
    name = filename if filename else PurePosixPath(unquote(urlsplit(url).path)).name
    ext = PurePosixPath(name).suffix.lower()
    where = f"parameters.header.params[{keys.index('filename')}].value" if filename else field
    if fmt == "DOCUMENT" and ext != ".pdf":
        # Meta: "Only PDF documents are supported for media-based message templates".
        yield ValidationError(where, f"a DOCUMENT header must be a PDF, got {name!r}")
    elif ext and ext not in _MEDIA_EXTENSIONS[fmt]:
        allowed = ", ".join(sorted(_MEDIA_EXTENSIONS[fmt]))
        yield ValidationError(where, f"an {fmt} header must be one of {allowed}, got {name!r}")


def _body_limit(message: DirectMessage, template: Template | None) -> int:
    """1024 per body parameter, or 32768 when the body is the only parameterised component."""
    if template is not None:
        others = template.header_format in MEDIA_FORMATS or bool(
            placeholders(template.header.text if template.header else None)
        )
        others = others or any(_needs_value(template, b) for b in template.buttons)
    else:
        p = message.parameters
        others = p.header is not None or bool(p.buttons)
    return MAX_BODY_PARAM_CHARS if others else MAX_BODY_PARAM_CHARS_BODY_ONLY


def _check_body(message: DirectMessage, template: Template | None) -> Iterator[ValidationError]:
    body: list[BodyParameter] = message.parameters.body or []
    limit = _body_limit(message, template)
    seen: set[str] = set()
    expected = template.body_placeholders if template is not None else None
    for i, param in enumerate(body):
        path = f"parameters.body[{i}]"
        if not param.key.strip():
            yield ValidationError(f"{path}.key", "must not be empty")
        elif param.key in seen:
            yield ValidationError(f"{path}.key", f"duplicate key {param.key!r}")  # 132000
        elif expected is not None and param.key not in expected:
            yield ValidationError(
                f"{path}.key", f"template body has no placeholder {{{{{param.key}}}}}"
            )
        seen.add(param.key)
        yield from _check_text_value(f"{path}.value_text", param.value_text, limit, "value")
        if not param.value.strip():
            yield ValidationError(f"{path}.value", "label must not be empty")  # Qontak requires it
    if expected is None or template is None:
        return
    if len(body) != len(expected):
        # Qontak's own wording for 132000.
        yield ValidationError(
            "parameters.body", f"template has {len(expected)} variables, got {len(body)}"
        )
    missing = [name for name in expected if name not in seen]
    if missing:
        names = ", ".join(f"{{{{{m}}}}}" for m in missing)
        yield ValidationError("parameters.body", f"no value for {names}")
    hydrated = fill_placeholders(template.body, message.body_values)
    if len(hydrated) > MAX_HYDRATED_BODY_CHARS:
        yield ValidationError(
            "parameters.body",
            f"the body with its variables filled in is {len(hydrated)} characters; "
            f"at most {MAX_HYDRATED_BODY_CHARS}",  # 132005
        )


def _check_buttons(message: DirectMessage, template: Template | None) -> Iterator[ValidationError]:
    buttons: list[ButtonParameter] = message.parameters.buttons or []
    by_index: dict[str, int] = {}
    for j, param in enumerate(buttons):
        path = f"parameters.buttons[{j}]"
        if not (param.index.isdigit() and int(param.index) <= MAX_BUTTON_INDEX):
            yield ValidationError(f"{path}.index", f"must be '0' to '9', got {param.index!r}")
            continue
        if param.index in by_index:
            yield ValidationError(f"{path}.index", f"duplicate index {param.index!r}")
            continue
        by_index[param.index] = j
        if not param.type.strip():
            yield ValidationError(f"{path}.type", "must not be empty")
        if not param.value.strip():
            yield ValidationError(f"{path}.value", "must not be empty")
        elif any(c.isspace() for c in param.value):
            # The value ends up in a URL (suffix or OTP link): 131009 otherwise.
            yield ValidationError(f"{path}.value", "cannot contain whitespace (it goes in a URL)")
    if template is None:
        return
    for i, button in enumerate(template.buttons):
        if _needs_value(template, button) and str(i) not in by_index:
            what = button.url or button.text or button.type
            yield ValidationError(
                "parameters.buttons", f"template button {i} ({what}) needs a value at index '{i}'"
            )
    for index, j in by_index.items():
        i = int(index)
        path = f"parameters.buttons[{j}]"
        if i < len(template.buttons):
            button = template.buttons[i]
            if not _needs_value(template, button):
                yield ValidationError(
                    f"{path}.index", f"template button {i} ({button.type}) takes no value"
                )
            elif button.url and button.is_dynamic:
                final = _final_url(button.url, buttons[j].value)
                if len(final) > MAX_URL_CHARS:
                    yield ValidationError(
                        f"{path}.value",
                        f"the button's final URL is {len(final)} characters; at most "
                        f"{MAX_URL_CHARS}",
                    )
            elif button.type.upper() == "COPY_CODE" and not _is_auth(template):
                # §1.3: a marketing coupon code is alphanumeric, at most 15 characters.
                coupon = buttons[j].value
                if len(coupon) > MAX_OTP_CODE_CHARS or not coupon.isalnum():
                    yield ValidationError(
                        f"{path}.value",
                        f"a coupon code is letters and digits only, at most "
                        f"{MAX_OTP_CODE_CHARS} characters, got {coupon!r}",
                    )
        elif not (_is_auth(template) and i == 0):
            # Qontak's template list may omit an authentication template's code button.
            yield ValidationError(f"{path}.index", f"template has no button {i}")


def _check_otp(message: DirectMessage, template: Template) -> Iterator[ValidationError]:
    """AUTHENTICATION: the code goes in body {{1}} and in button 0, identical, ≤ 15 chars."""
    body = message.parameters.body or []
    if not body:
        return  # the count rule already reported it
    code = body[0].value_text
    if len(code) > MAX_OTP_CODE_CHARS:
        yield ValidationError(
            "parameters.body[0].value_text",
            f"a verification code is at most {MAX_OTP_CODE_CHARS} characters, got {len(code)}",
        )
    buttons = message.parameters.buttons or []
    for j, param in enumerate(buttons):
        if param.index == "0" and param.value != code:
            yield ValidationError(
                f"parameters.buttons[{j}].value",
                f"must equal the code in the body ({code!r}), got {param.value!r}",
            )
            return
    if not template.buttons and not any(p.index == "0" for p in buttons):
        # (When the template lists its buttons, _check_buttons has reported this already.)
        yield ValidationError(
            "parameters.buttons", "an authentication message needs the code in button '0' too"
        )
