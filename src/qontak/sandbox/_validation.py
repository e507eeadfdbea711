"""The server's own checks of ``POST /broadcasts/whatsapp/direct``.

Written independently of the SDK's validators, so a client-side bug still shows up here as
the error Qontak would give. Every failure is ``{"status":"error","error":{"code":…,
"messages":[…]}}``; the texts are:

=====  ==========================================================================
code   messages
=====  ==========================================================================
400    ``Invalid JSON payload`` (not JSON, ``NaN``/``Infinity``, nested more than
       100 levels, or not a JSON object; see :mod:`._json`)
413    ``Request Entity Too Large`` (body over 1 MiB)
422    ``<param> is missing`` for each absent required field: ``to_name``,
       ``to_number``, ``message_template_id``, ``channel_integration_id``,
       ``language``, ``language.code``, ``parameters`` (all reported together)
422    ``<param> is invalid`` (wrong JSON type; every parameter field —
       ``body[i].key/value_text/value``, ``buttons[i].index/type/value``,
       ``header.format`` — must be a string, and a ``header.params`` item
       whose ``key`` or ``value`` is not a string makes
       ``parameters.header.params is invalid``)
422    ``to_number is invalid, use digits only with the country code and no +
       (e.g. 6281234567890)``
422    ``Couldn't find channel integration with 'id'=<id>`` / ``Channel integration
       <id> is not active`` / ``… is not a WhatsApp channel``
422    ``Couldn't find message template with 'id'=<id>``
422    ``Message template <name> is not approved (status: <STATUS>)``
422    ``Language code <code> does not match the message template language <lang>``
422    ``Message Template has N variable, please adjust your payload.``
422    ``parameters.body[i].<field> is missing`` / ``… can't be blank`` /
       ``… cannot have new-line/tab characters or more than 4 consecutive spaces`` /
       ``… is too long (maximum is 1024 characters)``
422    ``Message Template has <FORMAT> header, please add header parameters.``
422    ``parameters.header.format <X> does not match the message template header <Y>``
422    ``parameters.header.params url is missing`` / ``… url is invalid``
422    ``Message Template has no header, please remove header parameters.``
422    ``Message Template has a URL button with a variable at index <i>, please add
       it to buttons parameters.``
422    ``parameters.buttons[i].index <i> does not match a URL button with a variable``
=====  ==========================================================================

A ``message_template_id``/``channel_integration_id`` that does not exist is a **422**
(Rails' "Couldn't find … with 'id'=…" text), because the id is a field of the body; a
missing resource in the *path* (``GET /templates/<id>/whatsapp``) is a 404
``Resource not found.``. Missing fields are reported together; after that the first group
of problems found is reported (channel, then template, then parameters).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ._render import MEDIA_FORMATS, placeholders, render

__all__ = ["SendRejected", "ValidSend", "check_send"]

_PHONE = re.compile(r"^[1-9][0-9]{7,14}$")
_BAD_WHITESPACE = re.compile(r"[\n\r\t]| {5,}")
_MAX_PARAM = 1024
_MAX_URL = 2000
_REQUIRED = ("to_name", "to_number", "message_template_id", "channel_integration_id")


class SendRejected(Exception):
    """A send the server refuses: HTTP status and Qontak's messages."""

    def __init__(self, status: int, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.status = status
        self.messages = messages


@dataclass(frozen=True)
class ValidSend:
    """A send that passed every check, with what the recipient will see."""

    to_name: str
    to_number: str
    template: dict[str, Any]
    channel: dict[str, Any]
    parameters: Any
    rendered: dict[str, Any]
    body_values: dict[str, str]
    header_values: dict[str, str]
    button_values: dict[int, str]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text_problem(label: str, value: Any, *, limit: int = _MAX_PARAM) -> str | None:
    if not isinstance(value, str):
        return f"{label} is invalid"
    if not value.strip():
        return f"{label} can't be blank"
    if _BAD_WHITESPACE.search(value):
        return f"{label} cannot have new-line/tab characters or more than 4 consecutive spaces"
    if len(value) > limit:
        return f"{label} is too long (maximum is {limit} characters)"
    return None


def _required_fields(payload: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for name in _REQUIRED:
        value = payload.get(name)
        if _blank(value):
            problems.append(f"{name} is missing")
        elif not isinstance(value, str):
            problems.append(f"{name} is invalid")
    language = payload.get("language")
    if language is None:
        problems.append("language is missing")
    elif not isinstance(language, dict):
        problems.append("language is invalid")
    elif _blank(language.get("code")):
        problems.append("language.code is missing")
    elif not isinstance(language.get("code"), str):
        problems.append("language.code is invalid")
    parameters = payload.get("parameters")
    if parameters is None:
        problems.append("parameters is missing")
    elif not isinstance(parameters, dict):
        problems.append("parameters is invalid")
    return problems


def _check_body(template: dict[str, Any], body: Any) -> tuple[dict[str, str], list[str]]:
    expected = placeholders(template.get("body"))
    if body is None:
        body = []
    if not isinstance(body, list):
        return {}, ["parameters.body is invalid"]
    values: dict[str, str] = {}
    problems: list[str] = []
    for i, item in enumerate(body):
        label = f"parameters.body[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{label} is invalid")
            continue
        missing = [f for f in ("key", "value_text", "value") if item.get(f) is None]
        problems.extend(f"{label}.{f} is missing" for f in missing)
        if missing:
            continue
        # key and value are echoed back in the broadcast and the log: only strings, so
        # what is stored is what Qontak's own (string) columns would hold.
        wrong = [f for f in ("key", "value") if not isinstance(item[f], str)]
        problems.extend(f"{label}.{f} is invalid" for f in wrong)
        problem = _text_problem(f"{label}.value_text", item["value_text"])
        if problem:
            problems.append(problem)
        if wrong or problem:
            continue
        values[item["key"]] = item["value_text"]
    if problems:
        return values, problems
    if len(body) != len(expected) or set(values) != set(expected):
        return values, [
            f"Message Template has {len(expected)} variable, please adjust your payload."
        ]
    return values, []


def _check_header(template: dict[str, Any], header: Any) -> tuple[dict[str, str], list[str]]:
    t_header = template.get("header")
    t_format = str(t_header.get("format", "")).upper() if isinstance(t_header, dict) else ""
    given = header not in (None, {})
    if not t_format:
        if given:
            return {}, ["Message Template has no header, please remove header parameters."]
        return {}, []
    if t_format == "TEXT":
        return _check_text_header(t_header, header if given else None)
    if t_format not in MEDIA_FORMATS:
        # LOCATION and other headers Qontak does not document: nothing to check.
        return {}, []
    if not given:
        return {}, [f"Message Template has {t_format} header, please add header parameters."]
    if not isinstance(header, dict):
        return {}, ["parameters.header is invalid"]
    fmt = header.get("format")
    if _blank(fmt):
        return {}, ["parameters.header.format is missing"]
    if not isinstance(fmt, str):
        return {}, ["parameters.header.format is invalid"]
    if fmt.upper() != t_format:
        return {}, [
            f"parameters.header.format {fmt} does not match the message template header {t_format}"
        ]
    values = _params_dict(header.get("params"))
    if values is None:
        return {}, ["parameters.header.params is invalid"]
    url = values.get("url")
    if _blank(url):
        return values, ["parameters.header.params url is missing"]
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.netloc or len(str(url)) > _MAX_URL:
        return values, ["parameters.header.params url is invalid"]
    return values, []


def _check_text_header(t_header: Any, header: Any) -> tuple[dict[str, str], list[str]]:
    # TEXT headers are not in Qontak's docs; the sandbox accepts Meta's rule (at most one
    # variable) sent as {"format": "TEXT", "params": [{"key": "1", "value": "…"}]}.
    expected = placeholders(t_header.get("text"))
    if not expected:
        return {}, []
    if not isinstance(header, dict):
        return {}, ["Message Template has TEXT header, please add header parameters."]
    values = _params_dict(header.get("params"))
    if values is None:
        return {}, ["parameters.header.params is invalid"]
    if set(values) != set(expected):
        return values, ["Message Template header has 1 variable, please adjust your payload."]
    problem = _text_problem("parameters.header.params value", values[expected[0]], limit=60)
    return values, [problem] if problem else []


def _params_dict(params: Any) -> dict[str, str] | None:
    """``[{"key": k, "value": v}, …]`` as a dict; None when the shape or a type is wrong.

    A missing or null ``value`` counts as empty, so the caller reports it as missing.
    """
    if params is None:
        return {}
    if not isinstance(params, list):
        return None
    values: dict[str, str] = {}
    for item in params:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            return None
        value = item.get("value")
        if value is not None and not isinstance(value, str):
            return None
        values[item["key"]] = value or ""
    return values


def _check_buttons(template: dict[str, Any], buttons: Any) -> tuple[dict[int, str], list[str]]:
    dynamic = {
        index: button
        for index, button in enumerate(template.get("buttons") or [])
        if str(button.get("type", "")).upper() == "URL" and placeholders(button.get("url"))
    }
    if buttons is None:
        buttons = []
    if not isinstance(buttons, list):
        return {}, ["parameters.buttons is invalid"]
    values: dict[int, str] = {}
    problems: list[str] = []
    for i, item in enumerate(buttons):
        label = f"parameters.buttons[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{label} is invalid")
            continue
        if _blank(item.get("index")):
            problems.append(f"{label}.index is missing")
            continue
        raw_index = item["index"]
        # Qontak documents the index as a string ("0"); a JSON number is refused too.
        try:
            if not isinstance(raw_index, str):
                raise ValueError(raw_index)
            index = int(raw_index)
        except ValueError:
            problems.append(f"{label}.index is invalid")
            continue
        if index not in dynamic:
            problems.append(
                f"{label}.index {item['index']} does not match a URL button with a variable"
            )
            continue
        kind = item.get("type")
        if kind is not None and not isinstance(kind, str):
            problems.append(f"{label}.type is invalid")
            continue
        if kind is not None and kind.lower() != "url":
            problems.append(f"{label}.type {kind} does not match the message template button URL")
            continue
        if item.get("value") is None:
            problems.append(f"{label}.value is missing")
            continue
        problem = _text_problem(f"{label}.value", item["value"], limit=_MAX_URL)
        if problem:
            problems.append(problem)
            continue
        values[index] = item["value"]
    if problems:
        return values, problems
    for index in dynamic:
        if index not in values:
            problems.append(
                f"Message Template has a URL button with a variable at index {index}, "
                "please add it to buttons parameters."
            )
    return values, problems


def check_send(
    payload: Any,
    *,
    find_template: Callable[[str], dict[str, Any] | None],
    find_channel: Callable[[str], dict[str, Any] | None],
) -> ValidSend:
    """Check one direct-send body; raise :class:`SendRejected` with Qontak's error.

    ``find_template`` / ``find_channel`` map an id to the stored object or None.
    """
    if not isinstance(payload, dict):
        raise SendRejected(400, ["Invalid JSON payload"])
    problems = _required_fields(payload)
    if problems:
        raise SendRejected(422, problems)
    to_number = payload["to_number"]
    if not _PHONE.match(to_number):
        raise SendRejected(
            422,
            [
                "to_number is invalid, use digits only with the country code and no + "
                "(e.g. 6281234567890)"
            ],
        )
    channel_id = payload["channel_integration_id"]
    channel = find_channel(channel_id)
    if channel is None:
        raise SendRejected(422, [f"Couldn't find channel integration with 'id'={channel_id}"])
    if not channel.get("is_active", True):
        raise SendRejected(422, [f"Channel integration {channel_id} is not active"])
    if channel.get("target_channel") not in ("wa", "wa_cloud"):
        raise SendRejected(422, [f"Channel integration {channel_id} is not a WhatsApp channel"])
    template_id = payload["message_template_id"]
    template = find_template(template_id)
    if template is None:
        raise SendRejected(422, [f"Couldn't find message template with 'id'={template_id}"])
    if template.get("status") != "APPROVED":
        raise SendRejected(
            422,
            [
                f"Message template {template.get('name')} is not approved "
                f"(status: {template.get('status')})"
            ],
        )
    code = payload["language"]["code"]
    if code != template.get("language"):
        raise SendRejected(
            422,
            [
                f"Language code {code} does not match the message template language "
                f"{template.get('language')}"
            ],
        )
    parameters: dict[str, Any] = payload["parameters"]
    body_values, body_problems = _check_body(template, parameters.get("body"))
    header_values, header_problems = _check_header(template, parameters.get("header"))
    button_values, button_problems = _check_buttons(template, parameters.get("buttons"))
    problems = body_problems + header_problems + button_problems
    if problems:
        raise SendRejected(422, problems)
    rendered = render(
        template,
        body_values=body_values,
        header_values=header_values,
        button_values=button_values,
    )
    return ValidSend(
        to_name=payload["to_name"],
        to_number=to_number,
        template=template,
        channel=channel,
        parameters=parameters,
        rendered=rendered,
        body_values=body_values,
        header_values=header_values,
        button_values=button_values,
    )
