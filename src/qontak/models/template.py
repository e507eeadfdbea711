"""WhatsApp message templates (``GET /templates/whatsapp``) and the rules they carry.

Template facts are asked in one place: the status, category, header format and button type are
enums (:class:`TemplateStatus`, :class:`Category`, :class:`HeaderFormat`, :class:`ButtonType`),
each button type has its own class (:class:`URLButton`, :class:`QuickReplyButton`…, chosen from
``type`` when a template is read, as pywa does), and the questions validation, rendering and the
CLI share are properties: :attr:`Template.placeholders`, :attr:`Template.is_authentication`,
:attr:`TemplateButton.takes_value`, :attr:`Template.code_button_index`.

The enums are ``str`` enums, so ``template.status == "APPROVED"`` still holds and they serialise
as the plain string. A value Qontak adds later (a status or button type not listed here) is kept
as the raw string rather than refused: a new server value must not break reading templates.

>>> t = Template.model_validate({"id": "t", "name": "otp", "language": "id",
...     "body": "*{{1}}* is your code.", "category": "authentication",
...     "buttons": [{"type": "URL", "text": "Copy code", "url": "https://wa.me/otp?c={{1}}"}]})
>>> t.category is Category.AUTHENTICATION, t.is_authentication, t.placeholders
(True, True, ['1'])
>>> type(t.buttons[0]).__name__, t.buttons[0].takes_value, t.code_button_index
('URLButton', True, 0)
>>> TemplateStatus.of("FLAGGED_FOR_REVIEW")  # unknown: the raw string is kept
'FLAGGED_FOR_REVIEW'
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any, TypeVar

from pydantic import Discriminator, Field, Tag, field_validator

from ._base import QontakModel

__all__ = [
    "MEDIA_FORMATS",
    "AnyButton",
    "ButtonType",
    "Category",
    "CopyCodeButton",
    "HeaderFormat",
    "OTPButton",
    "OTPType",
    "PhoneNumberButton",
    "QuickReplyButton",
    "Template",
    "TemplateButton",
    "TemplateCategory",
    "TemplateHeader",
    "TemplateStatus",
    "URLButton",
    "button_class",
    "placeholders",
]

#: The one placeholder pattern: ``{{1}}`` (positional) or ``{{name}}`` (named), as pywa reads
#: them; spaces inside the braces are tolerated because Qontak's editor lets them through.
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def placeholders(text: str | None) -> list[str]:
    """The distinct placeholder names in ``text``, in order of first appearance.

    >>> placeholders("Hi {{1}}, your order {{2}} ({{1}})")
    ['1', '2']
    """
    seen: dict[str, None] = {}
    for match in PLACEHOLDER.finditer(text or ""):
        seen.setdefault(match.group(1), None)
    return list(seen)


# --- Enums ----------------------------------------------------------------------------------------

_E = TypeVar("_E", bound="_WireEnum")


class _WireEnum(str, Enum):
    """A string value of the API: compares and serialises as the string, matches any case."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        # Qontak and Meta write these upper case; accept any case rather than fail on "url".
        if isinstance(value, str):
            upper = value.strip().upper()
            for member in cls:
                if member.value == upper:
                    return member
        return None

    @classmethod
    def of(cls: type[_E], value: str) -> _E | str:
        """The member for ``value`` (any case), or ``value`` itself when it is not one."""
        try:
            return cls(value)
        except ValueError:
            return value

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        # Python 3.11 changed format() of mixed-in enums to "Class.MEMBER"; keep the value.
        return format(str(self.value), spec)


class TemplateStatus(_WireEnum):
    """A template's review status (``status``). Only ``APPROVED`` can be sent (§2)."""

    APPROVED = "APPROVED"
    PENDING = "PENDING"
    REJECTED = "REJECTED"
    PAUSED = "PAUSED"
    DISABLED = "DISABLED"
    IN_APPEAL = "IN_APPEAL"
    REINSTATED = "REINSTATED"
    FLAGGED = "FLAGGED"
    PENDING_DELETION = "PENDING_DELETION"
    DELETED = "DELETED"
    ARCHIVED = "ARCHIVED"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    LOCKED = "LOCKED"


class Category(_WireEnum):
    """A template's category (``category``, §1.4)."""

    AUTHENTICATION = "AUTHENTICATION"
    MARKETING = "MARKETING"
    UTILITY = "UTILITY"


class HeaderFormat(_WireEnum):
    """A template header's format (``header.format``, §1.1)."""

    TEXT = "TEXT"
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    DOCUMENT = "DOCUMENT"
    LOCATION = "LOCATION"
    GIF = "GIF"
    PRODUCT = "PRODUCT"

    @property
    def is_media(self) -> bool:
        """Whether a send must give this header's media (IMAGE, VIDEO, DOCUMENT)."""
        return self in MEDIA_FORMATS


class ButtonType(_WireEnum):
    """A template button's type (``buttons[].type``, §1.3)."""

    QUICK_REPLY = "QUICK_REPLY"
    URL = "URL"
    PHONE_NUMBER = "PHONE_NUMBER"
    COPY_CODE = "COPY_CODE"
    OTP = "OTP"
    FLOW = "FLOW"
    CATALOG = "CATALOG"
    MPM = "MPM"
    VOICE_CALL = "VOICE_CALL"


class OTPType(_WireEnum):
    """How an authentication code button works (``otp_type``, §1.4)."""

    COPY_CODE = "COPY_CODE"
    ONE_TAP = "ONE_TAP"
    ZERO_TAP = "ZERO_TAP"


#: Header formats whose media a send must supply (Qontak's ``parameters.header``).
MEDIA_FORMATS: frozenset[HeaderFormat] = frozenset(
    {HeaderFormat.IMAGE, HeaderFormat.VIDEO, HeaderFormat.DOCUMENT}
)


def _enum_field(default: Any = None) -> Any:
    # Left to right: the enum first (any case), then the raw string for values we do not know.
    return Field(default=default, union_mode="left_to_right")


# --- Header ---------------------------------------------------------------------------------------


class TemplateHeader(QontakModel):
    """A template header: ``format`` is IMAGE, VIDEO, DOCUMENT or TEXT (or LOCATION…)."""

    format: HeaderFormat | str = _enum_field(...)
    example: str | None = None
    text: str | None = None

    @property
    def is_media(self) -> bool:
        """Whether a send must give this header's media (IMAGE, VIDEO, DOCUMENT)."""
        return self.format in MEDIA_FORMATS

    @property
    def placeholders(self) -> list[str]:
        """Placeholder names of a TEXT header (at most one, §1.1)."""
        return placeholders(self.text) if self.format == HeaderFormat.TEXT else []


# --- Buttons --------------------------------------------------------------------------------------


class TemplateButton(QontakModel):
    """A template button. Reading a template gives the class of its type (:class:`URLButton`,
    :class:`PhoneNumberButton`, :class:`QuickReplyButton`, :class:`CopyCodeButton`,
    :class:`OTPButton`), and so does ``TemplateButton(type="URL", …)``; a type this library
    does not know stays a plain ``TemplateButton`` with its fields kept.

    >>> type(TemplateButton(type="PHONE_NUMBER", text="Call", phone_number="+62811")).__name__
    'PhoneNumberButton'
    """

    type: ButtonType | str = _enum_field(...)
    text: str | None = None

    def __new__(cls, *args: Any, **data: Any) -> TemplateButton:
        # Built by hand from the base class: hand back the class of the button's type, as
        # parsing a template does, so its rules (takes_value…) are the same either way.
        if cls is TemplateButton and "type" in data:
            return super().__new__(button_class(data["type"], data.get("otp_type")))
        return super().__new__(cls)

    @property
    def takes_value(self) -> bool:
        """Whether a send must supply a value for this button (URL suffix, code…)."""
        return False

    @property
    def is_dynamic(self) -> bool:
        """Whether this is a URL button whose address ends in a variable."""
        return False

    @property
    def copies_code(self) -> bool:
        """Whether WhatsApp shows this button as "copy code" (OTP or coupon)."""
        return False


class URLButton(TemplateButton):
    """A link; a ``{{1}}`` at the end of ``url`` is filled per send (§1.3)."""

    type: ButtonType | str = _enum_field(ButtonType.URL)
    url: str | None = None
    example: str | list[str] | None = None

    @property
    def is_dynamic(self) -> bool:
        """Whether the address ends in a variable filled per send."""
        return bool(placeholders(self.url))

    @property
    def takes_value(self) -> bool:
        """Only a URL with a variable takes a value (its suffix)."""
        return self.is_dynamic

    def final_url(self, suffix: str) -> str:
        """The address with its variable replaced by ``suffix``."""
        return PLACEHOLDER.sub(lambda _m: suffix, self.url or "")


class PhoneNumberButton(TemplateButton):
    """A call button: fixed number, no value at send time."""

    type: ButtonType | str = _enum_field(ButtonType.PHONE_NUMBER)
    phone_number: str | None = None


class QuickReplyButton(TemplateButton):
    """A quick reply: its label is sent back as the user's answer; no value at send time."""

    type: ButtonType | str = _enum_field(ButtonType.QUICK_REPLY)


class CopyCodeButton(TemplateButton):
    """A marketing coupon: the code (≤ 15 letters and digits) is given per send (§1.3)."""

    type: ButtonType | str = _enum_field(ButtonType.COPY_CODE)
    example: str | list[str] | None = None

    @property
    def takes_value(self) -> bool:
        """The coupon code is given per send."""
        return True

    @property
    def copies_code(self) -> bool:
        """Shown as a copy-code button."""
        return True


class OTPButton(TemplateButton):
    """An authentication template's code button (``otp_type`` COPY_CODE, ONE_TAP or ZERO_TAP).

    Meta stores it as type URL once approved (§1.4), so a URL button of an authentication
    template is its code button too: see :attr:`Template.code_button_index`.
    """

    type: ButtonType | str = _enum_field(ButtonType.OTP)
    otp_type: OTPType | str | None = _enum_field()
    url: str | None = None
    example: str | list[str] | None = None

    @property
    def takes_value(self) -> bool:
        """The code is given per send."""
        return True

    @property
    def copies_code(self) -> bool:
        """Shown as a copy-code (or autofill) button."""
        return True

    @property
    def autofill(self) -> bool:
        """Whether WhatsApp shows "Autofill" (one-tap / zero-tap) instead of "Copy code"."""
        return self.otp_type in (OTPType.ONE_TAP, OTPType.ZERO_TAP)


_BUTTON_CLASSES: dict[ButtonType, type[TemplateButton]] = {
    ButtonType.URL: URLButton,
    ButtonType.PHONE_NUMBER: PhoneNumberButton,
    ButtonType.QUICK_REPLY: QuickReplyButton,
    ButtonType.COPY_CODE: CopyCodeButton,
    ButtonType.OTP: OTPButton,
}


def button_class(kind: object, otp_type: object = None) -> type[TemplateButton]:
    """The button class for a ``type`` value (any case); unknown types get the base class.

    A button with an ``otp_type`` is an authentication code button whatever its type says
    (Qontak adds ``otp_type`` to the URL button Meta stores).
    """
    parsed = ButtonType.of(kind) if isinstance(kind, str) else None
    if otp_type and parsed in (ButtonType.URL, ButtonType.OTP):
        return OTPButton
    if isinstance(parsed, ButtonType):
        return _BUTTON_CLASSES.get(parsed, TemplateButton)
    return TemplateButton


def _button_tag(value: Any) -> str:
    if isinstance(value, dict):
        cls = button_class(value.get("type"), value.get("otp_type"))
    else:
        cls = button_class(getattr(value, "type", None), getattr(value, "otp_type", None))
    return cls.__name__


#: A template button of any type, parsed into the class of its type.
AnyButton = Annotated[
    Annotated[URLButton, Tag("URLButton")]
    | Annotated[PhoneNumberButton, Tag("PhoneNumberButton")]
    | Annotated[QuickReplyButton, Tag("QuickReplyButton")]
    | Annotated[CopyCodeButton, Tag("CopyCodeButton")]
    | Annotated[OTPButton, Tag("OTPButton")]
    | Annotated[TemplateButton, Tag("TemplateButton")],
    Discriminator(_button_tag),
]


# --- Template -------------------------------------------------------------------------------------


class Template(QontakModel):
    """An approved (or not) WhatsApp template; ``id`` is the ``message_template_id``."""

    id: str
    name: str
    language: str
    organization_id: str | None = None
    header: TemplateHeader | None = None
    body: str = ""
    footer: str | None = None
    buttons: list[AnyButton] = Field(default_factory=list)
    status: TemplateStatus | str | None = _enum_field()
    category: Category | str | None = _enum_field()
    quality_rating: str | None = None
    quality_rating_text: str | None = None
    type: str | None = None

    @field_validator("buttons", mode="before")
    @classmethod
    def _rebuild_buttons(cls, value: Any) -> Any:
        # A button instance of another class than its type's (e.g. from
        # TemplateButton.model_validate) is re-read so it gets its type's class and rules.
        if not isinstance(value, list):
            return value
        return [
            b.model_dump(by_alias=True, exclude_unset=True)
            if isinstance(b, TemplateButton) and type(b) is not button_class(b.type, _otp(b))
            else b
            for b in value
        ]

    @property
    def placeholders(self) -> list[str]:
        """Placeholder names in the body (``['1', '2']`` for ``{{1}} … {{2}}``)."""
        return placeholders(self.body)

    @property
    def body_placeholders(self) -> list[str]:
        """Same as :attr:`placeholders` (the body's placeholder names)."""
        return placeholders(self.body)

    @property
    def header_format(self) -> HeaderFormat | str | None:
        """``IMAGE``/``VIDEO``/``DOCUMENT``/``TEXT``…, or ``None`` without a header."""
        return self.header.format if self.header else None

    @property
    def has_media_header(self) -> bool:
        """Whether every send must give the header's media (IMAGE, VIDEO, DOCUMENT)."""
        return self.header is not None and self.header.is_media

    @property
    def is_approved(self) -> bool:
        """Whether WhatsApp will accept sends of this template."""
        return self.status == TemplateStatus.APPROVED

    @property
    def is_authentication(self) -> bool:
        """Whether this is an AUTHENTICATION (one-time code) template."""
        return self.category == Category.AUTHENTICATION

    @property
    def code_button_index(self) -> int | None:
        """The button that carries an authentication template's code: its OTP button, or the
        URL (or copy-code) button Meta stores it as; ``None`` for other templates or when
        Qontak's data lists no such button (the code then goes at index 0)."""
        if not self.is_authentication:
            return None
        for wanted in (OTPButton, URLButton, CopyCodeButton):
            for i, button in enumerate(self.buttons):
                if isinstance(button, wanted):
                    return i
        return None

    def button_takes_value(self, index: int) -> bool:
        """Whether a send must give a value for button ``index``."""
        return self.buttons[index].takes_value or index == self.code_button_index

    @property
    def value_button_indexes(self) -> list[int]:
        """The buttons a send must give a value for, by position."""
        return [i for i in range(len(self.buttons)) if self.button_takes_value(i)]

    @property
    def parameterised_outside_body(self) -> bool:
        """Whether a component other than the body takes parameters (media or text header,
        a button): it lowers a body parameter's limit from 32768 to 1024 characters (§1.2)."""
        header = self.header
        if header is not None and (header.is_media or header.placeholders):
            return True
        return bool(self.value_button_indexes)


def _otp(button: TemplateButton) -> object:
    return getattr(button, "otp_type", None) or (button.model_extra or {}).get("otp_type")


class TemplateCategory(QontakModel):
    """An item of ``GET /templates/category``."""

    name: str | None = None
    value: str | None = None
