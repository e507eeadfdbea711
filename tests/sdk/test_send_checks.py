"""The quick check of a message before a send agrees with the full one.

``check_sendable_message`` skips the full check (a dump, a walk, a strict validation: most of
a send's own CPU) when a quick look proves the message is exactly what our models hold after
validation. Messages are built, then changed by hand at any depth with good and hostile
values; whatever the change, the quick check must answer exactly as the full one does: pass
the same messages, and refuse the others with the same error.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from qontak import ValidationError, messages
from qontak._checks import _check_sendable_in_full, _plainly_sendable, check_sendable_message
from qontak.models import (
    BodyParameter,
    ButtonParameter,
    DirectMessage,
    HeaderParam,
    HeaderParameter,
    Language,
)


def built() -> DirectMessage:
    """A message with every part: a media header, a button value and body variables."""
    return messages.template_message(
        "0812-3456-7890",
        template="d3e1083c-66ea-410b-b807-1d84182ffa82",
        channel="56b60c3c-0123-46af-958b-32f3ad12ee37",
        language="id",
        variables=[("name", "Budi"), ("order", "INV-1")],
        buttons=[(0, "abc123")],
        header=HeaderParameter(
            format="IMAGE", params=[HeaderParam(key="url", value="https://x.co/a.jpg")]
        ),
    )


PATHS: list[tuple[Any, ...]] = [
    ("to_name",),
    ("to_number",),
    ("message_template_id",),
    ("channel_integration_id",),
    ("language",),
    ("language", "code"),
    ("parameters",),
    ("parameters", "header"),
    ("parameters", "header", "format"),
    ("parameters", "header", "params"),
    ("parameters", "header", "params", 0),
    ("parameters", "header", "params", 0, "key"),
    ("parameters", "header", "params", 0, "value"),
    ("parameters", "buttons"),
    ("parameters", "buttons", 0),
    ("parameters", "buttons", 0, "index"),
    ("parameters", "buttons", 0, "value"),
    ("parameters", "body"),
    ("parameters", "body", 0),
    ("parameters", "body", 1, "key"),
    ("parameters", "body", 1, "value_text"),
    ("parameters", "body", 0, "value"),
    # A name no model has becomes an extra key.
    ("extra_key",),
    ("language", "extra_key"),
    ("parameters", "body", 0, "extra_key"),
]


class Text(str):
    """A ``str`` subclass: not what our models hold after validation."""


TEXTS = st.one_of(
    st.sampled_from(
        [
            "Budi",
            "",
            " ",
            ".",
            "..",
            "a b",
            "a\nb",
            "a\tb",
            "\u2028",
            "\x85",
            "\x00",
            "\x7f",
            "\x9f",
            "a\ud800b",
            "x" * 64,
            "x" * 65,
            "x" * 255,
            "x" * 256,
            "é" * 65_536,
            "x" * 65_537,
            "😀",
        ]
    ),
    st.text(max_size=8),
    st.lists(st.integers(0, 0x10FFFF), max_size=6).map(lambda cps: "".join(map(chr, cps))),
)
VALUES = st.one_of(
    TEXTS,
    TEXTS.map(Text),
    st.none(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.binary(max_size=3),
    st.lists(TEXTS, max_size=2),
    st.tuples(TEXTS),
    st.dictionaries(TEXTS, TEXTS, max_size=2),
    st.builds(Language, code=st.sampled_from(["id", "en_US"])),
    st.builds(BodyParameter, key=st.just("1"), value_text=TEXTS, value=st.just("v")),
    st.builds(ButtonParameter, index=st.just("0"), type=st.just("url"), value=TEXTS),
    st.builds(HeaderParam, key=st.just("url"), value=TEXTS),
    st.just([]),
    st.just({"code": "id"}),
    st.just([{"key": "1", "value_text": "a", "value": "b"}]),
)


def change(message: DirectMessage, path: tuple[Any, ...], value: Any) -> None:
    """Set ``value`` at ``path`` as a caller can by hand (no model re-checks assignments)."""
    target: Any = message
    for step in path[:-1]:
        if isinstance(step, int):
            if not isinstance(target, list) or len(target) <= step:
                return  # an earlier change removed this part
            target = target[step]
        elif not hasattr(target, step) or getattr(target, step) is None:
            return
        else:
            target = getattr(target, step)
    last = path[-1]
    if isinstance(last, int):
        if isinstance(target, list) and len(target) > last:
            target[last] = value
    elif hasattr(target, "__pydantic_fields__"):
        setattr(target, last, value)


def outcome(check: Any, message: DirectMessage) -> tuple[str, ...]:
    try:
        check(message)
    except ValidationError as exc:
        return ("refused", exc.field, exc.code or "", exc.reason)
    except Exception as exc:  # the same, whatever it is
        return ("raised", type(exc).__name__, str(exc))
    return ("passed",)


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.tuples(st.sampled_from(PATHS), VALUES), max_size=3))
def test_the_quick_check_answers_as_the_full_check(
    changes: list[tuple[tuple[Any, ...], Any]],
) -> None:
    message = built()
    for path, value in changes:
        change(message, path, value)
    quick = outcome(check_sendable_message, message)
    full = outcome(_check_sendable_in_full, message)
    event(f"quick path {'taken' if _plainly_sendable(message) else 'not taken'}: {quick[0]}")
    assert quick == full
    assert quick[0] != "raised", f"not our error: {quick}"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("to_name",), "Budi\x00"),
        (("to_name",), "Budi\nX"),
        (("to_number",), "62\ud800"),
        (("message_template_id",), "a b"),
        (("message_template_id",), ".."),
        (("channel_integration_id",), ""),
        (("channel_integration_id",), "x" * 256),
        (("language", "code"), "en US"),
        (("language", "code"), "x" * 65),
        (("parameters", "body", 1, "value_text"), "x" * 65_537),
        (("parameters", "body", 1, "value_text"), 7),
        (("parameters", "body", 1, "value_text"), Text("ok")),
        (("parameters", "header", "params", 0, "value"), "\x1b[31m"),
        (("parameters", "buttons", 0, "value"), None),
        (("parameters", "body"), ("not", "a", "list")),
        (("extra_key",), "kept"),
        (("language",), {"code": "id"}),
        (("parameters",), None),
        (("parameters",), {"body": []}),
        (("parameters", "header", "params"), None),
        (("parameters", "body", 0), {"key": "1", "value_text": "a", "value": "b"}),
        # Never initialised (``object.__new__``): no ``__pydantic_extra__`` to look at.
        (("parameters", "body", 0), object.__new__(BodyParameter)),
        (("language",), object.__new__(Language)),
    ],
)
def test_the_quick_check_leaves_every_doubt_to_the_full_check(
    path: tuple[Any, ...], value: Any
) -> None:
    """Each of these is either refused or merely unusual; the quick check must not vouch for
    any of them (if it did, a refused value could reach the wire)."""
    message = built()
    assert _plainly_sendable(message)  # what every builder makes takes the quick path
    change(message, path, value)
    assert not _plainly_sendable(message)
    result = outcome(check_sendable_message, message)
    assert result == outcome(_check_sendable_in_full, message)
    assert result[0] != "raised", f"not our error: {result}"


def test_builders_and_parsed_dicts_take_the_quick_path() -> None:
    message = built()
    assert _plainly_sendable(message)
    assert _plainly_sendable(DirectMessage.model_validate(message.to_wire()))
    assert check_sendable_message(message) is message


def text_paths(model: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every text field of a built message, at any depth, found from the models' own field
    lists (a field added to a model later is covered without editing this test)."""
    paths: list[tuple[Any, ...]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            path = (*prefix, name) if index is None else (*prefix, name, index)
            if isinstance(item, str):
                paths.append(path)
            elif isinstance(item, BaseModel):
                paths.extend(text_paths(item, path))
    return paths


# Each kind of value some rule refuses somewhere (C0, DEL, C1, surrogates, line breaks,
# Unicode spaces in ids, every length limit), and a few that pass.
HOSTILE_TEXTS: list[Any] = [
    *("\x00", "\x08", "\x0b", "\x0c", "\x1f", "\x7f", "\x80", "\x85", "\x9f"),
    *("\ud800", "\udfff", "a\udc80b", "\n", "\r", "\t", "\u2028", "\u2029"),
    *("", " ", ".", "..", "a b", "\u00a0", "\u3000", "a\u200bb", "é", "😀"),
    *("x" * 64, "x" * 65, "x" * 255, "x" * 256, "x" * 65_536, "x" * 65_537),
    Text("ok"),
    None,
    5,
]


def test_every_text_field_with_every_hostile_value() -> None:
    """Exhaustive where the fuzz test samples: every text field of every part, each set to
    each value above; the quick check vouches only for what the full check passes."""
    paths = text_paths(built())
    assert len(paths) >= 14, paths  # 4 top-level, language, header (3), button (3), body (2×3)
    for path in paths:
        for value in HOSTILE_TEXTS:
            message = built()
            change(message, path, value)
            full = outcome(_check_sendable_in_full, message)
            assert outcome(check_sendable_message, message) == full, (path, value)
            if full[0] != "passed":
                assert not _plainly_sendable(message), (path, value, full)


def test_a_str_subclass_cannot_hide_its_length_from_a_json_body() -> None:
    from qontak._checks import check_json

    class Liar(str):
        def __len__(self) -> int:
            return 1

    with pytest.raises(ValidationError) as caught:
        check_json("", {"note": Liar("x" * 70_000)})
    assert caught.value.field == "note" and caught.value.code == "too_long"
