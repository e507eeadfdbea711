"""Template facts live on the models: enums, one class per button type, shared properties."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from qontak import messages
from qontak.models import (
    ButtonType,
    Category,
    CopyCodeButton,
    HeaderFormat,
    OTPButton,
    OTPType,
    PhoneNumberButton,
    QuickReplyButton,
    Template,
    TemplateButton,
    TemplateHeader,
    TemplateStatus,
    URLButton,
)
from qontak.render import render
from qontak.validation import check_message

TO = "6281234567890"


def tpl(**kw: Any) -> Template:
    base: dict[str, Any] = {"id": "t", "name": "n", "language": "id", "status": "APPROVED"}
    base.update(kw)
    return Template.model_validate(base)


# --- enums ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enum", "raw", "member"),
    [
        (TemplateStatus, "APPROVED", TemplateStatus.APPROVED),
        (TemplateStatus, "approved", TemplateStatus.APPROVED),
        (Category, "Authentication", Category.AUTHENTICATION),
        (HeaderFormat, "image", HeaderFormat.IMAGE),
        (ButtonType, "url", ButtonType.URL),
        (ButtonType, "quick_reply", ButtonType.QUICK_REPLY),
    ],
)
def test_enums_read_any_case(enum: Any, raw: str, member: Any) -> None:
    assert enum.of(raw) is member
    assert member == member.value  # a str enum: compares as its string


def test_enums_keep_unknown_server_values_as_the_raw_string() -> None:
    t = tpl(status="IN_REVIEW_V2", category="SERVICE", header={"format": "CAROUSEL"})
    assert t.status == "IN_REVIEW_V2" and not isinstance(t.status, TemplateStatus)
    assert t.category == "SERVICE" and not t.is_authentication
    assert t.header_format == "CAROUSEL" and not t.has_media_header
    assert not t.is_approved
    assert t.model_dump(mode="json")["status"] == "IN_REVIEW_V2"
    # An unknown status is still refused for sending, with the server's own word in the reason.
    msg = messages.text(TO, template=t, channel="c")
    [error] = check_message(msg, t)
    assert error.code == "not_approved" and "IN_REVIEW_V2" in error.reason


def test_enums_serialise_and_format_as_their_value() -> None:
    t = tpl(status="approved", category="utility", header={"format": "video"})
    assert isinstance(t.status, TemplateStatus)
    dumped = t.model_dump(mode="json")
    assert (dumped["status"], dumped["category"], dumped["header"]["format"]) == (
        "APPROVED",
        "UTILITY",
        "VIDEO",
    )
    assert json.dumps(t.status) == '"APPROVED"'
    assert f"{t.status}" == str(t.status) == "APPROVED"  # not "TemplateStatus.APPROVED"
    assert f"{t.header_format:>7}" == "  VIDEO"


# --- buttons --------------------------------------------------------------------------------------

API_BUTTONS = [
    {"type": "URL", "text": "Track", "url": "https://x.co/t/{{1}}"},
    {"type": "URL", "text": "Site", "url": "https://x.co"},
    {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "+62811"},
    {"type": "QUICK_REPLY", "text": "Yes"},
    {"type": "COPY_CODE", "example": "SALE25"},
    {"type": "OTP", "otp_type": "ONE_TAP", "text": "Autofill"},
    {"type": "VOICE_CALL", "text": "Call on WhatsApp", "ttl_minutes": 60},
    {"type": "SOMETHING_NEW", "text": "New", "extra_field": 1},
]


def test_reading_a_template_gives_each_button_the_class_of_its_type() -> None:
    t = tpl(buttons=API_BUTTONS)
    assert [type(b) for b in t.buttons] == [
        URLButton,
        URLButton,
        PhoneNumberButton,
        QuickReplyButton,
        CopyCodeButton,
        OTPButton,
        TemplateButton,  # known type without its own class
        TemplateButton,  # unknown type: kept, not refused
    ]
    assert t.buttons[7].type == "SOMETHING_NEW"
    assert t.buttons[7].model_extra == {"extra_field": 1}
    # Nothing the API sent is lost on the way back out.
    assert [b.model_dump(mode="json", exclude_none=True) for b in t.buttons] == API_BUTTONS


def test_takes_value_is_one_answer_per_button_class() -> None:
    t = tpl(buttons=API_BUTTONS)
    assert [b.takes_value for b in t.buttons] == [
        True,
        False,
        False,
        False,
        True,
        True,
        False,
        False,
    ]
    assert t.value_button_indexes == [0, 4, 5]


def test_building_the_base_class_by_hand_gives_the_class_of_the_type() -> None:
    button = TemplateButton(type="url", text="Track", url="https://x.co/{{1}}")
    assert isinstance(button, URLButton) and button.takes_value
    assert button.final_url("abc") == "https://x.co/abc"
    assert type(TemplateButton(type="URL", otp_type="COPY_CODE")) is OTPButton
    assert type(TemplateButton(type="FLOW")) is TemplateButton
    assert type(URLButton(url="https://x.co")).__name__ == "URLButton"
    assert URLButton(url="https://x.co").type is ButtonType.URL  # the type defaults per class


def test_a_base_instance_read_with_model_validate_is_rebuilt_inside_a_template() -> None:
    loose = TemplateButton.model_validate({"type": "PHONE_NUMBER", "phone_number": "+62811"})
    t = tpl(buttons=[loose])
    assert isinstance(t.buttons[0], PhoneNumberButton)
    assert t.buttons[0].phone_number == "+62811"


def test_models_survive_copy_and_pickle() -> None:
    t = tpl(category="AUTHENTICATION", buttons=API_BUTTONS[:1])
    for copy in (t.model_copy(deep=True), pickle.loads(pickle.dumps(t))):
        assert isinstance(copy.buttons[0], URLButton)
        assert copy.is_authentication and copy.code_button_index == 0


# --- template properties --------------------------------------------------------------------------


def test_placeholders_and_header_placeholders() -> None:
    t = tpl(
        body="Hi {{1}}, order {{2}} ({{1}}), {{ name }}", header={"format": "TEXT", "text": "{{1}}"}
    )
    assert t.placeholders == t.body_placeholders == ["1", "2", "name"]
    assert t.header is not None and t.header.placeholders == ["1"]
    assert TemplateHeader(format="IMAGE", text="{{1}}").placeholders == []


@pytest.mark.parametrize(
    ("buttons", "index"),
    [
        ([{"type": "OTP", "otp_type": "COPY_CODE"}], 0),
        ([{"type": "URL", "url": "https://www.whatsapp.com/otp/code/?code={{1}}"}], 0),
        ([{"type": "URL", "url": "https://www.whatsapp.com/otp/code"}], 0),  # static: still it
        ([{"type": "QUICK_REPLY", "text": "No"}, {"type": "OTP"}], 1),
        ([], None),  # Qontak's list may omit it
    ],
)
def test_code_button_of_an_authentication_template(buttons: list[Any], index: int | None) -> None:
    t = tpl(category="AUTHENTICATION", body="*{{1}}*", buttons=buttons)
    assert t.code_button_index == index
    if index is not None:
        assert t.button_takes_value(index)


def test_non_authentication_templates_have_no_code_button() -> None:
    t = tpl(category="MARKETING", buttons=[{"type": "COPY_CODE"}, {"type": "URL", "url": "x"}])
    assert t.code_button_index is None
    assert t.value_button_indexes == [0]  # the coupon; the static URL takes nothing


@pytest.mark.parametrize(
    ("kw", "outside"),
    [
        ({"body": "{{1}}"}, False),
        ({"body": "{{1}}", "header": {"format": "IMAGE"}}, True),
        ({"body": "{{1}}", "header": {"format": "TEXT", "text": "Hi {{1}}"}}, True),
        ({"body": "{{1}}", "header": {"format": "TEXT", "text": "Hi"}}, False),
        ({"body": "{{1}}", "buttons": [{"type": "URL", "url": "https://x.co/{{1}}"}]}, True),
        ({"body": "{{1}}", "buttons": [{"type": "URL", "url": "https://x.co"}]}, False),
    ],
)
def test_parameterised_outside_body(kw: dict[str, Any], outside: bool) -> None:
    assert tpl(**kw).parameterised_outside_body is outside


# --- one answer everywhere ------------------------------------------------------------------------

TEMPLATES = {
    "dynamic url": {"buttons": [{"type": "URL", "url": "https://x.co/{{1}}"}]},
    "static url": {"buttons": [{"type": "URL", "url": "https://x.co"}]},
    "coupon": {"category": "MARKETING", "buttons": [{"type": "COPY_CODE"}]},
    "otp stored as url": {
        "category": "AUTHENTICATION",
        "buttons": [{"type": "URL", "text": "Copy", "url": "https://www.whatsapp.com/otp/code"}],
    },
    "otp with otp_type": {"category": "AUTHENTICATION", "buttons": [{"type": "OTP"}]},
    "phone and replies": {
        "buttons": [
            {"type": "PHONE_NUMBER", "phone_number": "+62811"},
            {"type": "QUICK_REPLY", "text": "Ya"},
        ]
    },
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_validation_and_rendering_agree_on_which_buttons_take_a_value(name: str) -> None:
    """Whether a button takes a value used to have two answers (validation vs render)."""
    t = tpl(body="Hi", **TEMPLATES[name])
    msg = messages.text(TO, template=t, channel="c")
    needed = {
        int(e.reason.split("index '")[1][0])
        for e in check_message(msg, t)
        if e.field == "parameters.buttons" and e.code == "missing"
    }
    shown_missing = {int(m.split()[1]) for m in render(t, msg).missing if m.startswith("button")}
    assert needed == shown_missing == set(t.value_button_indexes)


def test_sandbox_view_reads_templates_with_the_same_rules() -> None:
    """The sandbox's rendering (what its inbox shows) uses the models' enums: a lower-case
    header format or button type from a stored template is understood, not dropped."""
    from qontak.sandbox._render import render as sandbox_render

    template = {
        "body": "Hi {{1}}",
        "header": {"format": "image"},
        "buttons": [{"type": "url", "text": "Go", "url": "https://x.co/{{1}}"}],
    }
    out = sandbox_render(
        template,
        body_values={"1": "Budi"},
        header_values={"url": "https://cdn.x.co/a.png"},
        button_values={0: "abc"},
    )
    assert out["header"] == {
        "format": "IMAGE",
        "url": "https://cdn.x.co/a.png",
        "filename": "a.png",
    }
    assert out["buttons"] == [{"type": "URL", "text": "Go", "url": "https://x.co/abc"}]
    assert out["body"] == "Hi Budi"


def test_otp_type_is_an_enum_too() -> None:
    one_tap = tpl(buttons=[{"type": "OTP", "otp_type": "one_tap"}]).buttons[0]
    assert isinstance(one_tap, OTPButton) and one_tap.otp_type is OTPType.ONE_TAP
    assert one_tap.autofill
    assert not OTPButton(otp_type="COPY_CODE").autofill
    assert OTPButton(otp_type="SOMETHING_LATER").otp_type == "SOMETHING_LATER"
