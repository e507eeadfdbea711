"""A message changed between its check and its send is checked again before it is posted.

``send_direct`` checks the message, may then fetch its template (other tasks run meanwhile,
and the HTTP client's event hooks run too), and only then encodes the body. Whatever changed
the message in between, a bad value must still be refused with a ``ValidationError`` naming
the field, and nothing posted. Real sandbox in process; the change is made by an httpx
event hook on the template fetch (a hook is caller code that runs there).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from qontak import AsyncQontak, DirectMessage, Language, Qontak, ValidationError
from qontak.models import BodyParameter, MessageParameters
from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    RateLimitConfig,
    Sandbox,
    SandboxConfig,
    SyncASGITransport,
)
from qontak.testing import SANDBOX_BASE_URL, SANDBOX_HOST, sandbox_client
from qontak.validation import check_message, check_notes, validate_message

TO = "6281234567890"
CHANNEL = "56b60c3c-0123-46af-958b-32f3ad12ee37"
TEXT_TEMPLATE = "d3e1083c-66ea-410b-b807-1d84182ffa82"  # order_update/id: {{1}}, {{2}}


def message() -> DirectMessage:
    """No template attached: a validated send fetches it first."""
    return DirectMessage(
        to_name="Budi",
        to_number=TO,
        message_template_id=TEXT_TEMPLATE,
        channel_integration_id=CHANNEL,
        language=Language(code="id"),
        parameters=MessageParameters(
            body=[
                BodyParameter(key="1", value_text="Budi", value="name"),
                BodyParameter(key="2", value_text="INV-1", value="order"),
            ]
        ),
    )


def _extra_key(msg: DirectMessage) -> None:
    msg.note = "\x00"  # an extra key: posted as is, and no WhatsApp rule looks at it


def _body_value(msg: DirectMessage) -> None:
    assert msg.parameters.body is not None
    msg.parameters.body[0].value_text = "Bu\x00di"


def _name_type(msg: DirectMessage) -> None:
    msg.to_name = 5  # type: ignore[assignment]


CHANGES: list[tuple[Callable[[DirectMessage], None], str]] = [
    (_extra_key, "note"),
    (_body_value, "parameters.body[0].value_text"),
    (_name_type, "to_name"),
]


def _sandbox() -> Sandbox:
    return Sandbox(SandboxConfig(rate_limits=RateLimitConfig(enabled=False)))


def _options(box: Sandbox) -> dict[str, Any]:
    return {"base_url": SANDBOX_BASE_URL, "env_file": None, "clock": box.now}


@pytest.mark.parametrize(("change", "field"), CHANGES)
def test_a_message_changed_while_its_template_is_fetched_is_refused(
    change: Callable[[DirectMessage], None], field: str
) -> None:
    msg = message()
    posts: list[bytes] = []

    def on_request(request: httpx.Request) -> None:
        if request.method == "POST":
            posts.append(request.content)

    def on_response(response: httpx.Response) -> None:
        if response.request.method == "GET":
            change(msg)

    box = _sandbox()
    http = httpx.Client(
        transport=SyncASGITransport(box.app),
        base_url=SANDBOX_HOST,
        event_hooks={"request": [on_request], "response": [on_response]},
    )
    client = Qontak(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        http_client=http,
        sleep=box.advance,
        **_options(box),
    )
    try:
        with pytest.raises(ValidationError) as caught:
            client.broadcasts.send_direct(msg)
        assert caught.value.field == field
        assert posts == [], "refused, yet posted"
        assert box.messages() == []
    finally:
        client.close()
        http.close()
        box.close()


@pytest.mark.anyio
@pytest.mark.parametrize(("change", "field"), CHANGES)
async def test_async_a_message_changed_while_its_template_is_fetched_is_refused(
    change: Callable[[DirectMessage], None], field: str
) -> None:
    msg = message()
    posts: list[bytes] = []

    async def on_request(request: httpx.Request) -> None:
        if request.method == "POST":
            posts.append(request.content)

    async def on_response(response: httpx.Response) -> None:
        if response.request.method == "GET":
            change(msg)  # as another task could, while send_direct awaits the template

    box = _sandbox()

    async def advance(seconds: float) -> None:
        box.advance(seconds)

    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=box.app),
        base_url=SANDBOX_HOST,
        event_hooks={"request": [on_request], "response": [on_response]},
    )
    client = AsyncQontak(
        SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, http_client=http, sleep=advance, **_options(box)
    )
    try:
        with pytest.raises(ValidationError) as caught:
            await client.broadcasts.send_direct(msg)
        assert caught.value.field == field
        assert posts == [], "refused, yet posted"
        assert box.messages() == []
    finally:
        await client.aclose()
        await http.aclose()
        box.close()


def test_a_message_reused_after_a_change_is_checked_again() -> None:
    """Sent once, changed by hand (C1 control, extra key, shared list), sent again: each
    second send is refused; the first ones went out exactly once."""
    box = _sandbox()
    http = httpx.Client(transport=SyncASGITransport(box.app), base_url=SANDBOX_HOST)
    client = Qontak(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        http_client=http,
        sleep=box.advance,
        **_options(box),
    )
    try:
        first = message()
        client.broadcasts.send_direct(first)
        first.to_name = "Budi\x85"  # NEL: a C1 control, a line break in a name
        with pytest.raises(ValidationError, match="to_name"):
            client.broadcasts.send_direct(first)

        second = message()
        copy = second.model_copy()  # shallow: the parameter lists are shared
        client.broadcasts.send_direct(copy)
        assert second.parameters.body is not None
        second.parameters.body.append(BodyParameter.model_construct(key="3", value_text="\x9f"))
        with pytest.raises(ValidationError) as caught:
            client.broadcasts.send_direct(copy)
        assert caught.value.field.startswith("parameters.body[2]")

        third = message()
        client.broadcasts.send_direct(third)
        third.language.extra = "\ud800"  # an extra key on a nested part
        with pytest.raises(ValidationError) as caught:
            client.broadcasts.send_direct(third)
        assert caught.value.field == "language.extra"
        assert len(box.messages()) == 3
    finally:
        client.close()
        http.close()
        box.close()


class LyingText(str):
    """A ``str`` whose ``len`` says 1 whatever it holds (the JSON encoder posts it all)."""

    def __len__(self) -> int:
        return 1


def _lying_value(msg: DirectMessage) -> None:
    assert msg.parameters.body is not None
    msg.parameters.body[0].value_text = LyingText("x" * 70_000)


def _lying_name(msg: DirectMessage) -> None:
    msg.to_name = LyingText("B\x00")


def _parameters_none(msg: DirectMessage) -> None:
    msg.parameters = None  # type: ignore[assignment]


def _language_dict(msg: DirectMessage) -> None:
    msg.language = {"code": "id"}  # type: ignore[assignment]


def _body_item_dict(msg: DirectMessage) -> None:
    assert msg.parameters.body is not None
    msg.parameters.body[1] = {"key": "2", "value_text": "a", "value": "b"}  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_lying_value, "parameters.body[0].value_text"),
        (_lying_name, "to_name"),
        (_parameters_none, "parameters"),
        (_language_dict, "language"),
        (_body_item_dict, "parameters.body[1]"),
    ],
)
@pytest.mark.parametrize("validate", [True, False])
def test_parts_changed_by_hand_to_other_types_are_refused_by_name(
    change: Callable[[DirectMessage], None], field: str, validate: bool
) -> None:
    """A ``str`` subclass lying about its length (70,000 characters passed every length
    rule and were posted) and parts replaced by a dict or ``None`` (``AttributeError`` from
    the rules) are each a ``ValidationError`` naming the part; nothing is posted."""
    box = _sandbox()
    http = httpx.Client(transport=SyncASGITransport(box.app), base_url=SANDBOX_HOST)
    client = Qontak(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        http_client=http,
        sleep=box.advance,
        **_options(box),
    )
    try:
        msg = message()
        change(msg)
        with pytest.raises(ValidationError) as caught:
            client.broadcasts.send_direct(msg, validate=validate)
        assert caught.value.field == field
        assert box.messages() == []
    finally:
        client.close()
        http.close()
        box.close()


def test_a_str_enum_member_is_still_sent_as_its_value() -> None:
    class Lang(str, enum.Enum):
        ID = "id"

    with sandbox_client() as (client, box):
        msg = message()
        msg.language.code = Lang.ID  # type: ignore[assignment]
        client.broadcasts.send_direct(msg)
        [sent] = box.messages()
        assert sent["template"]["language"] == "id"


BAD_VALUES: list[Any] = [None, 5, b"x", ("a",), {"a": 1}, [], LyingText("x" * 2000)]
PATHS: list[tuple[Any, ...]] = [
    ("to_name",),
    ("to_number",),
    ("message_template_id",),
    ("channel_integration_id",),
    ("language",),
    ("language", "code"),
    ("parameters",),
    ("parameters", "body"),
    ("parameters", "body", 0),
    ("parameters", "body", 0, "key"),
    ("parameters", "body", 0, "value_text"),
    ("parameters", "body", 0, "value"),
]


def _set(msg: DirectMessage, path: tuple[Any, ...], value: Any) -> None:
    target: Any = msg
    for step in path[:-1]:
        target = target[step] if isinstance(step, int) else getattr(target, step)
    if isinstance(path[-1], int):
        target[path[-1]] = value
    else:
        setattr(target, path[-1], value)


def test_the_public_rules_report_a_wrong_type_instead_of_crashing() -> None:
    """``check_message`` lists problems and never raises; ``validate_message`` raises only
    ``ValidationError``; ``check_notes`` lists notes. A message changed by hand to hold a
    wrong type made them raise ``TypeError``/``AttributeError``."""
    for path in PATHS:
        for value in BAD_VALUES:
            msg = message()
            _set(msg, path, value)
            problems = check_message(msg)
            assert all(isinstance(p, ValidationError) for p in problems)
            if path == ("parameters", "body") and value in (None, []):
                assert problems == []  # no body variables: a legal message
                continue
            assert problems, (path, value)
            with pytest.raises(ValidationError):
                validate_message(msg)
            check_notes(msg)
    with pytest.raises(ValidationError) as caught:
        validate_message({"to_name": "Budi"})  # type: ignore[arg-type]
    assert caught.value.field == "message"
