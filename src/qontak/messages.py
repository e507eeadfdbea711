"""Builders for every kind of direct message, producing exactly the JSON Qontak documents.

Each builder returns a :class:`~qontak.models.DirectMessage`; ``msg.to_wire()`` is byte for byte
the body the Node client's README shows for that kind of message (key order and the presence or
absence of ``buttons`` included), so code ported from Node sends the same request.

>>> msg = otp("0812-3456-7890", "123456", template="tpl-id", channel="ch-id", language="id",
...           name="Budi")
>>> msg.to_json()  # doctest: +NORMALIZE_WHITESPACE
'{"to_name": "Budi", "to_number": "6281234567890", "message_template_id": "tpl-id",
  "channel_integration_id": "ch-id", "language": {"code": "id"}, "parameters": {"buttons":
  [{"index": "0", "type": "url", "value": "123456"}], "body": [{"key": "1", "value_text":
  "123456", "value": "otp"}]}}'

Common arguments of every builder:

- ``to``: the recipient's number as people write it (``0812-3456-7890``, ``+62 812…``);
  normalised with :func:`qontak.validation.normalize_phone` (``region`` picks the country of
  numbers written without a country code).
- ``template`` / ``channel``: a :class:`Template` / :class:`Channel` model or just its id. Given
  a model, the message remembers it (``msg.template``) so the client can validate the message
  and render a preview without fetching the template again.
- ``language``: defaults to the template's language; required when ``template`` is an id.
- ``name``: the recipient's name (``to_name``); defaults to the number, as other clients do.
- ``variables``: the body's ``{{…}}`` values (see :data:`Variables`).

Builders do not check the message against the template (so a preview can show what is
missing); the client does that before sending, or call :func:`qontak.validation.validate_message`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import PurePosixPath
from typing import TypeAlias
from urllib.parse import unquote, urlsplit

import pydantic

from ._checks import (
    check_choice_text,
    check_id,
    check_sendable_message,
    check_text,
    from_pydantic,
    type_name,
)
from .errors import ValidationError
from .models import (
    BodyParameter,
    ButtonParameter,
    Channel,
    DirectMessage,
    HeaderParam,
    HeaderParameter,
    Language,
    MessageParameters,
    Template,
    placeholders,
)
from .validation import DEFAULT_REGION, MAX_URL_CHARS, is_auth_button, normalize_phone

__all__ = [
    "ButtonSpec",
    "Variables",
    "cta_phone",
    "cta_url",
    "document",
    "image",
    "media_header",
    "otp",
    "template_message",
    "text",
    "url_button",
    "video",
]

#: Body values, in one of three shapes:
#:
#: - a sequence of strings ``["Budi", "#123"]``: keys ``"1"``, ``"2"``… (or the template's named
#:   placeholders, in order); each label (Qontak's ``value``) is the key itself, since Qontak only
#:   stores the label and the recipient never sees it;
#: - a mapping ``{label: text}`` in placeholder order: ``{"name": "Budi"}`` gives
#:   ``{"key": "1", "value_text": "Budi", "value": "name"}``;
#: - ``(label, text)`` pairs, for labels that repeat (the README's video example labels two
#:   variables ``"company"``), or ready-made :class:`BodyParameter` items.
#:
#: A single string is one value, not a sequence of characters.
Variables: TypeAlias = Mapping[str, str] | Sequence[str | tuple[str, str] | BodyParameter] | str

#: A button parameter: a :class:`ButtonParameter`, or ``(index, value)`` for a URL button.
ButtonSpec: TypeAlias = ButtonParameter | tuple[int | str, str]


#: Longest integer accepted as a value (a 77-digit number is already no one's OTP or price).
_MAX_INT_BITS = 256
#: A media file's name.
_MAX_FILENAME_CHARS = 255


# --- Small public helpers -------------------------------------------------------------------------


def _text(value: object, field: str) -> str:
    """A parameter value as text: finite numbers are accepted (an order total, a count),
    anything else is a ValidationError naming the field rather than a traceback from deep
    inside, or worse, wrong text on the wire (``nan``, the numbers of a ``bytes``)."""
    if isinstance(value, str):
        return check_text(field, value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _MAX_INT_BITS:
            raise ValidationError(field, "number is too large", code="out_of_range")
        return str(value)
    if isinstance(value, float | Decimal):
        if not (math.isfinite(value) if isinstance(value, float) else value.is_finite()):
            raise ValidationError(field, "must be a finite number", code="out_of_range")
        return str(value)
    raise ValidationError(field, f"expected text, got {type_name(value)}", code="invalid_type")


def _code(value: object) -> str:
    """An OTP code: text, or an ``int``. A float is refused: ``123456.0`` and ``nan`` are not
    codes, and a code with a leading zero cannot be a number at all."""
    if isinstance(value, float | Decimal):
        raise ValidationError(
            "code", f"give the code as text, not {type_name(value)}", code="invalid_type"
        )
    return _text(value, "code")


def _label(value: object, field: str) -> str:
    """A variable's label (Qontak's ``value``): text, or an int such as ``1``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return check_text(field, value, max_len=256, multiline=False)


def _index(value: object) -> str:
    """A button index: ``0``…``9`` as an int or as text (the range is checked on send)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _MAX_INT_BITS:
            raise ValidationError(
                "parameters.buttons.index", "number is too large", code="out_of_range"
            )
        return str(value)
    return check_choice_text("parameters.buttons.index", value)


def url_button(value: str, index: int | str = 0, *, type: str = "url") -> ButtonParameter:
    """The value of a dynamic URL button (the suffix after its base URL, or an OTP code).

    >>> url_button("track/123").model_dump()
    {'index': '0', 'type': 'url', 'value': 'track/123'}
    """
    return ButtonParameter(
        index=_index(index),
        type=check_choice_text("parameters.buttons.type", type),
        value=_text(value, "parameters.buttons"),
    )


def media_header(kind: str, url: str, filename: str | None = None) -> HeaderParameter:
    """An IMAGE/VIDEO/DOCUMENT header; ``filename`` defaults to the URL's last path segment.

    >>> media_header("image", "https://cdn.example.com/a/Gojo_copy.jpeg").model_dump()
    {'format': 'IMAGE', 'params': [{'key': 'url', 'value': 'https://cdn.example.com/a/Gojo_copy.jpeg'}, {'key': 'filename', 'value': 'Gojo_copy.jpeg'}]}
    """  # noqa: E501
    kind = check_choice_text("parameters.header.format", kind)
    if not url:
        raise ValidationError("parameters.header", f"a {kind.upper()} header needs a url")
    check_text("url", url, max_len=MAX_URL_CHARS, multiline=False)
    if filename is not None:
        check_text("filename", filename, max_len=_MAX_FILENAME_CHARS, multiline=False)
    else:
        filename = PurePosixPath(unquote(urlsplit(url).path)).name
        if not filename:
            raise ValidationError(
                "parameters.header",
                f"cannot take a filename from {url!r}; pass filename=",
            )
        try:  # "%00" or "%0A" in the URL decode into the name
            check_text("filename", filename, max_len=_MAX_FILENAME_CHARS, multiline=False)
        except ValidationError as exc:
            raise ValidationError(
                "url", f"the file name taken from it {exc.reason}; pass filename=", code=exc.code
            ) from None
    # Qontak's examples always send url first, then filename.
    return HeaderParameter(
        format=kind.upper(),
        params=[HeaderParam(key="url", value=url), HeaderParam(key="filename", value=filename)],
    )


# --- Builders -------------------------------------------------------------------------------------


def otp(
    to: str,
    code: str,
    *,
    template: Template | str,
    channel: Channel | str,
    name: str | None = None,
    language: str | None = None,
    region: str = DEFAULT_REGION,
) -> DirectMessage:
    """An authentication (OTP) message: the code goes in body ``{{1}}`` (label ``"otp"``) and in
    button ``"0"`` of type ``"url"``, as WhatsApp requires and the README shows.

    >>> otp("6281234567890", "123456", template="t", channel="c", language="id").to_wire()[
    ...     "parameters"]
    {'buttons': [{'index': '0', 'type': 'url', 'value': '123456'}], 'body': [{'key': '1', 'value_text': '123456', 'value': 'otp'}]}
    """  # noqa: E501
    code_text = _code(code)
    return template_message(
        to,
        template=template,
        channel=channel,
        variables=[("otp", code_text)],
        buttons=[url_button(code_text, _otp_button_index(template))],
        name=name,
        language=language,
        region=region,
    )


def text(
    to: str,
    variables: Variables = (),
    *,
    template: Template | str,
    channel: Channel | str,
    name: str | None = None,
    language: str | None = None,
    region: str = DEFAULT_REGION,
) -> DirectMessage:
    """A text template. With variables the parameters are ``{"buttons": [], "body": […]}`` (the
    README's text-with-variable example); without any they are ``{}`` (the OpenAPI file's
    text-without-variable example).

    >>> text("6281234567890", {"name": "Test User"}, template="t", channel="c",
    ...      language="id").to_wire()["parameters"]
    {'buttons': [], 'body': [{'key': '1', 'value_text': 'Test User', 'value': 'name'}]}
    >>> text("6281234567890", template="t", channel="c", language="id").to_wire()["parameters"]
    {}
    """
    has_vars = bool(_body(variables, template))
    return template_message(
        to,
        template=template,
        channel=channel,
        variables=variables if has_vars else None,
        buttons=() if has_vars else None,
        name=name,
        language=language,
        region=region,
    )


def image(
    to: str,
    url: str,
    *,
    filename: str | None = None,
    template: Template | str,
    channel: Channel | str,
    variables: Variables = (),
    buttons: Sequence[ButtonSpec] | None = (),
    name: str | None = None,
    language: str | None = None,
    region: str = DEFAULT_REGION,
) -> DirectMessage:
    """A template with an IMAGE header (jpeg/png). ``buttons`` defaults to ``[]`` because the
    README's image example sends ``"buttons": []``; pass ``None`` to leave the key out.

    >>> image("6281234567890", "https://x.co/a/cat.png", template="t", channel="c",
    ...       language="id").to_wire()["parameters"]["header"]["params"][1]
    {'key': 'filename', 'value': 'cat.png'}
    """
    return _media("IMAGE", to, url, filename, template, channel, variables, buttons, name,
                  language, region)  # fmt: skip


def document(
    to: str,
    url: str,
    *,
    filename: str | None = None,
    template: Template | str,
    channel: Channel | str,
    variables: Variables = (),
    buttons: Sequence[ButtonSpec] | None = None,
    name: str | None = None,
    language: str | None = None,
    region: str = DEFAULT_REGION,
) -> DirectMessage:
    """A template with a DOCUMENT header (PDF only, §1.2). ``buttons`` defaults to ``None`` (no
    ``"buttons"`` key) because the README's document example has none.

    >>> document("6281234567890", "https://x.co/f/abc.pdf", filename="invoice.pdf",
    ...          template="t", channel="c", language="id").to_wire()["parameters"]
    {'header': {'format': 'DOCUMENT', 'params': [{'key': 'url', 'value': 'https://x.co/f/abc.pdf'}, {'key': 'filename', 'value': 'invoice.pdf'}]}, 'body': []}
    """  # noqa: E501
    return _media("DOCUMENT", to, url, filename, template, channel, variables, buttons, name,
                  language, region)  # fmt: skip


def video(
    to: str,
    url: str,
    *,
    filename: str | None = None,
    template: Template | str,
    channel: Channel | str,
    variables: Variables = (),
    buttons: Sequence[ButtonSpec] | None = None,
    name: str | None = None,
    language: str | None = None,
    region: str = DEFAULT_REGION,
) -> DirectMessage:
    """A template with a VIDEO header (mp4/3gpp). ``buttons`` defaults to ``None`` (no
    ``"buttons"`` key) because the README's video example has none.

    >>> video("6281234567890", "https://x.co/v/clip.mp4", template="t", channel="c",
    ...       language="id", variables=["Valent"]).to_wire()["parameters"]["body"]
    [{'key': '1', 'value_text': 'Valent', 'value': '1'}]
    """
    return _media("VIDEO", to, url, filename, template, channel, variables, buttons, name,
                  language, region)  # fmt: skip


def cta_url(
    to: str,
    suffix: str,
    *,
    template: Template | str,
    channel: Channel | str,
    variables: Variables = (),
    index: int | None = None,
    name: str | None = None,
    language: str | None = None,
    region: str = DEFAULT_REGION,
) -> DirectMessage:
    """A template whose URL button ends in a variable (``https://x.co/{{1}}``): ``suffix`` is
    what replaces it. The button ``index`` defaults to the template's first dynamic URL button
    (``0`` when only the template id is known). The type is ``"URL"`` as in the README example.

    >>> cta_url("6281234567890", "fitur/report", template="t", channel="c",
    ...         language="id").to_wire()["parameters"]
    {'buttons': [{'index': '0', 'type': 'URL', 'value': 'fitur/report'}], 'body': []}
    """
    if index is None:
        index = _dynamic_button_index(template)
    return template_message(
        to,
        template=template,
        channel=channel,
        variables=variables,
        buttons=[url_button(suffix, index, type="URL")],
        name=name,
        language=language,
        region=region,
    )


def cta_phone(
    to: str,
    *,
    template: Template | str,
    channel: Channel | str,
    variables: Variables = (),
    name: str | None = None,
    language: str | None = None,
    region: str = DEFAULT_REGION,
) -> DirectMessage:
    """A template with static call-to-action buttons (phone number, fixed URL): nothing to fill
    in the buttons, so ``"buttons": []`` as in the README example.

    >>> cta_phone("628117661000", template="t", channel="c", language="id").to_wire()[
    ...     "parameters"]
    {'buttons': [], 'body': []}
    """
    return template_message(
        to,
        template=template,
        channel=channel,
        variables=variables,
        buttons=(),
        name=name,
        language=language,
        region=region,
    )


def template_message(
    to: str,
    *,
    template: Template | str,
    channel: Channel | str,
    variables: Variables | None = None,
    header: HeaderParameter | None = None,
    buttons: Sequence[ButtonSpec] | None = None,
    name: str | None = None,
    language: str | None = None,
    region: str = DEFAULT_REGION,
) -> DirectMessage:
    """Any template message. ``None`` leaves a part out of ``parameters`` entirely (so the bare
    call gives ``"parameters": {}``); an empty sequence sends an empty list.

    >>> template_message("6281234567890", template="t", channel="c", language="id",
    ...     variables=[("otp", "123454321")], buttons=[(0, "123456")]).to_wire()["parameters"]
    {'buttons': [{'index': '0', 'type': 'url', 'value': '123456'}], 'body': [{'key': '1', 'value_text': '123454321', 'value': 'otp'}]}
    """  # noqa: E501
    number = normalize_phone(to, region)
    template_id = template.id if isinstance(template, Template) else check_id("template", template)
    channel_id = channel.id if isinstance(channel, Channel) else check_id("channel", channel)
    if language is None:
        if not isinstance(template, Template):
            raise ValidationError("language", "give language= when the template is given by its id")
        language = template.language
    language = check_choice_text("language", language)
    if name is not None:
        check_text("name", name, multiline=False)
    if header is not None and not isinstance(header, HeaderParameter):
        raise ValidationError(
            "header", f"expected a HeaderParameter, got {type_name(header)}", code="invalid_type"
        )
    try:
        message = DirectMessage(
            to_name=name if name else number,
            to_number=number,
            message_template_id=template_id,
            channel_integration_id=channel_id,
            language=Language(code=language),
            parameters=MessageParameters(
                header=header,
                buttons=None if buttons is None else [_button(b) for b in _buttons(buttons)],
                body=None if variables is None else _body(variables, template),
            ),
        )
    except pydantic.ValidationError as exc:  # a ready-made part that was changed by hand
        raise from_pydantic(exc) from None
    # Ready-made parts (BodyParameter, header…) are checked like everything else.
    check_sendable_message(message)
    return message.with_template(template if isinstance(template, Template) else None)


# --- Internals ------------------------------------------------------------------------------------


def _media(
    kind: str,
    to: str,
    url: str,
    filename: str | None,
    template: Template | str,
    channel: Channel | str,
    variables: Variables,
    buttons: Sequence[ButtonSpec] | None,
    name: str | None,
    language: str | None,
    region: str,
) -> DirectMessage:
    # Media examples in the README always carry "body" (maybe empty).
    return template_message(
        to,
        template=template,
        channel=channel,
        variables=variables,
        header=media_header(kind, url, filename),
        buttons=buttons,
        name=name,
        language=language,
        region=region,
    )


def _buttons(buttons: object) -> Sequence[object]:
    if isinstance(buttons, str | bytes | bytearray) or not isinstance(buttons, Sequence):
        raise ValidationError(
            "buttons",
            f"expected a list of buttons, got {type_name(buttons)}",
            code="invalid_type",
        )
    return buttons


def _button(spec: object) -> ButtonParameter:
    if isinstance(spec, ButtonParameter):
        return spec
    if not isinstance(spec, tuple | list) or len(spec) != 2:
        raise ValidationError("parameters.buttons", "each button is (index, value)")
    index, value = spec
    return url_button(value, index)


def _keys(template: Template | str, count: int) -> list[str]:
    """Placeholder keys for ``count`` values: the template's (numbered ones in numeric order)
    when known, else ``"1"``, ``"2"``…; values beyond the template's get the next numbers so
    that validation can report them."""
    names = placeholders(template.body) if isinstance(template, Template) else []
    if names and all(n.isdigit() for n in names):
        names = sorted(names, key=int)
    keys = list(names[:count])
    keys += [str(n) for n in range(len(keys) + 1, count + 1)]
    return keys


def _item(value: object, position: int) -> tuple[str | None, str] | BodyParameter:
    """One element of a variables sequence: text, (label, text) or a BodyParameter."""
    if isinstance(value, BodyParameter):
        return value
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValidationError(f"variables[{position}]", "a pair must be (label, text)")
        return _label(value[0], f"variables[{position}]"), _text(value[1], f"variables[{position}]")
    return None, _text(value, f"variables[{position}]")


def _body(variables: Variables | None, template: Template | str) -> list[BodyParameter]:
    if variables is None:
        return []
    if isinstance(variables, str):
        variables = [variables]
    if isinstance(variables, bytes | bytearray | memoryview):
        # A bytes object is a sequence of numbers: b"AB" would be sent as "65", "66".
        raise ValidationError(
            "variables",
            f"expected text values, got {type_name(variables)}; decode it first",
            code="invalid_type",
        )
    if not isinstance(variables, Mapping | Sequence):
        raise ValidationError(
            "variables",
            f"expected a list or a mapping of values, got {type_name(variables)}",
            code="invalid_type",
        )
    if isinstance(variables, Mapping):
        names = placeholders(template.body) if isinstance(template, Template) else []
        if names and set(names) == set(variables) and not all(n.isdigit() for n in names):
            # A named template and a mapping by placeholder name: key = label = name.
            return [
                BodyParameter(key=n, value_text=_text(variables[n], f"variables.{n}"), value=n)
                for n in names
            ]
        items: list[tuple[str | None, str] | BodyParameter] = [
            (_label(label, "variables key"), _text(v, f"variables.{label}"))
            for label, v in variables.items()
        ]
    else:
        items = [_item(v, i) for i, v in enumerate(variables, start=1)]
    keys = _keys(template, len(items))
    body: list[BodyParameter] = []
    for key, item in zip(keys, items, strict=True):
        if isinstance(item, BodyParameter):
            body.append(item)
            continue
        label, value = item
        body.append(BodyParameter(key=key, value_text=value, value=label if label else key))
    return body


def _dynamic_button_index(template: Template | str) -> int:
    """The first template button that takes a value; 0 when unknown."""
    if isinstance(template, Template):
        for i, button in enumerate(template.buttons):
            if button.is_dynamic:
                return i
    return 0


def _otp_button_index(template: Template | str) -> int:
    """The authentication template's code button; 0 when unknown (always 0 in practice)."""
    if isinstance(template, Template):
        for i, button in enumerate(template.buttons):
            if button.is_dynamic or is_auth_button(template, button):
                return i
    return 0
