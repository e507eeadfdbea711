"""Message builders: every Node README example reproduced byte for byte."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qontak import messages
from qontak.errors import ValidationError
from qontak.models import (
    BodyParameter,
    ButtonParameter,
    Channel,
    DirectMessage,
    Template,
    TemplateButton,
)
from qontak.testing import sandbox_client

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "node_readme"
CHANNEL = "56b60c3c-0123-46af-958b-32f3ad12ee37"
TO = "6281234567890"
CDN = "https://cdn.qontak.com/uploads/direct"


def fixture(name: str) -> str:
    """The README example as the exact JSON text a client would send (key order kept)."""
    data: Any = json.loads((FIXTURES / f"{name}.json").read_text())
    return json.dumps(data)


def wire(msg: DirectMessage) -> str:
    return json.dumps(msg.to_wire())


COMMON: dict[str, Any] = {"channel": CHANNEL, "name": "Test User", "language": "id"}


def test_quickstart_otp_matches_readme() -> None:
    msg = messages.otp(
        TO,
        "123456",
        template="YOUR_TEMPLATE_ID",
        channel="YOUR_CHANNEL_ID",
        name="John Doe",
        language="id",
    )
    assert wire(msg) == fixture("quickstart_otp")


def test_otp_doc_slip_example_is_reproducible_with_template_message() -> None:
    # The README's second OTP example sends different codes in body and button.
    msg = messages.template_message(
        TO,
        template="60cccaa0-ccd9-4efd-bdfb-875859c4b50a",
        variables=[("otp", "123454321")],
        buttons=[(0, "123456")],
        **COMMON,
    )
    assert wire(msg) == fixture("otp")


def test_text_with_variable_from_mapping_matches_readme() -> None:
    msg = messages.text(
        TO,
        {"name": "Test User", "lagu": "lagu nusantara"},
        template="d3e1083c-66ea-410b-b807-1d84182ffa82",
        **COMMON,
    )
    assert wire(msg) == fixture("text_with_variable")


def test_text_with_variable_from_pairs_matches_readme() -> None:
    msg = messages.text(
        TO,
        [("name", "Test User"), ("lagu", "lagu nusantara")],
        template="d3e1083c-66ea-410b-b807-1d84182ffa82",
        **COMMON,
    )
    assert wire(msg) == fixture("text_with_variable")


def test_text_without_variable_sends_empty_parameters() -> None:
    msg = messages.text(TO, template="YOUR_TEMPLATE_ID", **COMMON)
    assert wire(msg) == fixture("text_without_variable")
    assert msg.to_wire()["parameters"] == {}


def test_image_matches_readme_with_filename_from_url() -> None:
    msg = messages.image(
        TO,
        f"{CDN}/images/d0295a8b-4164-490e-b250-67222f7e6884/Gojo_copy.jpeg",
        template="34d95207-0b48-4ce0-b589-2b7c1519d457",
        **COMMON,
    )
    assert wire(msg) == fixture("image")


def test_document_matches_readme_without_buttons_key() -> None:
    url = (
        f"{CDN}/files/e20c3f02-8b23-4c2f-ae4b-3b7ec4f569d9/"
        "akdhasidhasjkdhajsdhakjsdhaskjdhakjsdhakjsdhajkshdkjashdaksjdhakjsdahdsak.pdf"
    )
    msg = messages.document(
        TO, url, filename="sample.pdf", template="380d1355-0a65-4dc5-be82-308ee7619910", **COMMON
    )
    assert wire(msg) == fixture("document")
    assert "buttons" not in msg.to_wire()["parameters"]


def test_video_matches_readme_with_repeated_labels() -> None:
    msg = messages.video(
        TO,
        f"{CDN}/videos/60564c86-725e-429a-bffb-8168f3daac77/sample_video.mp4",
        template="70332b74-e9bd-4829-bb31-c46924e7d3ff",
        variables=[("customer_name", "Valent"), ("company", "Qontak"), ("company", "Qontak")],
        **COMMON,
    )
    assert wire(msg) == fixture("video")


def test_cta_url_matches_readme() -> None:
    msg = messages.cta_url(
        TO,
        "fitur/personalisasi-report-sales",
        template="a36ea83e-1b63-41e9-a91b-bad2390531e9",
        **COMMON,
    )
    assert wire(msg) == fixture("cta_url")


def test_cta_phone_matches_readme() -> None:
    msg = messages.cta_phone(
        "628117661000",
        template="99aa44c1-6573-4a89-b0ca-f272b1b846b4",
        channel=CHANNEL,
        name="Burhan",
        language="id",
    )
    assert wire(msg) == fixture("cta_phone")


def test_every_fixture_has_a_test() -> None:
    names = {p.stem for p in FIXTURES.glob("*.json")}
    assert names == {
        "quickstart_otp",
        "otp",
        "text_with_variable",
        "text_without_variable",
        "image",
        "document",
        "video",
        "cta_url",
        "cta_phone",
    }


# --- Friendly inputs -----------------------------------------------------------------------------


def otp_template() -> Template:
    return Template(
        id="tpl-otp",
        name="login_otp",
        language="id",
        body="*{{1}}* is your verification code.",
        buttons=[TemplateButton(type="URL", text="Copy code", url="https://x.co/otp/{{1}}")],
        status="APPROVED",
        category="AUTHENTICATION",
    )


@pytest.mark.parametrize(
    "written",
    [
        "0812-3456-7890",
        "+62 812-3456-7890",
        "62812 3456 7890",
        "(0812) 3456 7890",
        "00 62 812 3456 7890",
    ],
)
def test_builders_normalise_the_number(written: str) -> None:
    msg = messages.otp(written, "1", template="t", channel="c", language="id")
    assert msg.to_number == "6281234567890"


def test_to_name_defaults_to_the_number() -> None:
    msg = messages.otp("0812-3456-7890", "1", template="t", channel="c", language="id")
    assert msg.to_name == "6281234567890"


def test_bad_number_is_rejected_by_the_builder() -> None:
    with pytest.raises(ValidationError) as err:
        messages.otp("12", "1", template="t", channel="c", language="id")
    assert err.value.field == "to_number"


def test_language_is_required_with_a_template_id() -> None:
    with pytest.raises(ValidationError) as err:
        messages.otp(TO, "1", template="t", channel="c")
    assert err.value.field == "language"


def test_template_and_channel_models_are_accepted_and_remembered() -> None:
    tpl = otp_template()
    msg = messages.otp(TO, "123456", template=tpl, channel=Channel(id="ch-1"))
    assert msg.message_template_id == "tpl-otp"
    assert msg.channel_integration_id == "ch-1"
    assert msg.language.code == "id"
    assert msg.template is tpl


def test_explicit_language_overrides_the_template() -> None:
    msg = messages.otp(TO, "1", template=otp_template(), channel="c", language="en")
    assert msg.language.code == "en"


def test_plain_string_values_are_labelled_with_their_key() -> None:
    msg = messages.text(TO, ["Budi", "#123"], template="t", channel="c", language="id")
    assert msg.to_wire()["parameters"]["body"] == [
        {"key": "1", "value_text": "Budi", "value": "1"},
        {"key": "2", "value_text": "#123", "value": "2"},
    ]


def test_a_single_string_is_one_value() -> None:
    msg = messages.text(TO, "Budi", template="t", channel="c", language="id")
    assert msg.body_values == {"1": "Budi"}


def test_body_parameter_items_pass_through() -> None:
    item = BodyParameter(key="1", value_text="Budi", value="full_name")
    msg = messages.text(TO, [item], template="t", channel="c", language="id")
    assert msg.parameters.body == [item]


def test_named_template_mapping_uses_placeholder_names_in_template_order() -> None:
    tpl = Template(id="t", name="n", language="id", body="Hi {{name}}, order {{order_id}}")
    msg = messages.text(TO, {"order_id": "#1", "name": "Budi"}, template=tpl, channel="c")
    assert msg.to_wire()["parameters"]["body"] == [
        {"key": "name", "value_text": "Budi", "value": "name"},
        {"key": "order_id", "value_text": "#1", "value": "order_id"},
    ]


def test_cta_url_index_follows_the_templates_dynamic_button() -> None:
    tpl = Template(
        id="t",
        name="n",
        language="id",
        body="Hi",
        buttons=[
            TemplateButton(type="PHONE_NUMBER", text="Call", phone_number="+62811"),
            TemplateButton(type="URL", text="Track", url="https://x.co/track/{{1}}"),
        ],
    )
    msg = messages.cta_url(TO, "123", template=tpl, channel="c")
    assert msg.parameters.buttons == [ButtonParameter(index="1", type="URL", value="123")]


def test_media_filename_defaults_to_last_path_segment_unquoted() -> None:
    msg = messages.image(
        TO, "https://x.co/a/my%20cat.png?sig=1", template="t", channel="c", language="id"
    )
    assert msg.parameters.header is not None
    assert msg.parameters.header.get("filename") == "my cat.png"


def test_media_url_without_a_filename_needs_one() -> None:
    with pytest.raises(ValidationError) as err:
        messages.document(TO, "https://x.co/", template="t", channel="c", language="id")
    assert err.value.field == "parameters.header"


def test_image_buttons_none_leaves_the_key_out() -> None:
    msg = messages.image(
        TO, "https://x.co/a.png", template="t", channel="c", language="id", buttons=None
    )
    assert "buttons" not in msg.to_wire()["parameters"]


def test_template_message_with_header_and_buttons() -> None:
    header = messages.media_header("document", "https://x.co/f/inv.pdf")
    msg = messages.template_message(
        TO,
        template="t",
        channel="c",
        language="id",
        header=header,
        buttons=[messages.url_button("abc", 1, type="URL")],
        variables={"name": "Budi"},
    )
    assert json.dumps(msg.to_wire()["parameters"]) == json.dumps(
        {
            "header": {
                "format": "DOCUMENT",
                "params": [
                    {"key": "url", "value": "https://x.co/f/inv.pdf"},
                    {"key": "filename", "value": "inv.pdf"},
                ],
            },
            "buttons": [{"index": "1", "type": "URL", "value": "abc"}],
            "body": [{"key": "1", "value_text": "Budi", "value": "name"}],
        }
    )


def test_region_reads_national_numbers_of_other_countries() -> None:
    msg = messages.otp("(650) 253-0000", "1", template="t", channel="c", language="en", region="US")
    assert msg.to_number == "16502530000"


def test_numbers_are_accepted_as_text_values() -> None:
    msg = messages.otp("0812-3456-7890", 123456, template="t", channel="c", language="id")
    assert msg.parameters.body is not None and msg.parameters.body[0].value_text == "123456"
    assert msg.parameters.buttons is not None and msg.parameters.buttons[0].value == "123456"
    text_msg = messages.text("0812-3456-7890", {"qty": 3}, template="t", channel="c", language="id")
    assert text_msg.body_values == {"1": "3"}


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (
            lambda: messages.text(TO, ["a", object()], template="t", channel="c", language="id"),
            "variables[2]",
        ),
        (
            lambda: messages.text(TO, [("a",)], template="t", channel="c", language="id"),
            "variables[1]",
        ),
        (
            lambda: messages.text(TO, {"n": None}, template="t", channel="c", language="id"),
            "variables.n",
        ),
        (lambda: messages.otp(TO, None, template="t", channel="c", language="id"), "code"),
        (
            lambda: messages.template_message(
                TO, template="t", channel="c", language="id", buttons=[(1, "a", "b")]
            ),
            "parameters.buttons",
        ),
    ],
)
def test_bad_builder_input_is_a_validation_error_naming_the_field(build, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field


# --- Hostile values: our ValidationError naming the argument, never another type ---------------

ID = {"template": "t", "channel": "c", "language": "id"}


def _text(**kw: Any) -> DirectMessage:
    return messages.text(TO, ["a"], **{**ID, **kw})


@pytest.mark.parametrize(
    ("build", "field"),
    [
        # pydantic's own ValidationError before
        (lambda: _text(name=5), "name"),
        (lambda: _text(template=5), "template"),
        (lambda: _text(channel=["c"]), "channel"),
        (lambda: _text(language=5), "language"),
        (lambda: messages.image(TO, f"{CDN}/a.png", filename=5, **ID), "filename"),
        # AttributeError before
        (lambda: messages.image(TO, 5, **ID), "url"),
        (lambda: messages.image(TO, f"{CDN}/a%00b.png", **ID), "url"),  # NUL in the file name
        (lambda: messages.media_header(5, f"{CDN}/a.png"), "parameters.header.format"),
        # TypeError before
        (lambda: messages.text(TO, 5, **ID), "variables"),
        (lambda: messages.text(TO, {1, 2}, **ID), "variables"),
        (lambda: messages.template_message(TO, buttons=5, **ID), "buttons"),
        (lambda: messages.template_message(TO, buttons="0", **ID), "buttons"),
        (lambda: messages.template_message(TO, header="IMAGE", **ID), "header"),  # type: ignore[arg-type]
        (lambda: messages.url_button("x", index=None), "parameters.buttons.index"),  # type: ignore[arg-type]
        (lambda: messages.url_button("x", type=5), "parameters.buttons.type"),  # type: ignore[arg-type]
        (lambda: messages.text(TO, [(object(), "v")], **ID), "variables[1]"),
        (lambda: messages.text(TO, {object(): "v"}, **ID), "variables key"),
        # sent as wrong data before
        (lambda: messages.text(TO, b"AB", **ID), "variables"),  # "65", "66"
        (lambda: messages.text(TO, bytearray(b"AB"), **ID), "variables"),
        (lambda: messages.otp(TO, float("nan"), **ID), "code"),  # "nan"
        (lambda: messages.otp(TO, 123456.0, **ID), "code"),  # "123456.0"
        (lambda: messages.text(TO, [float("inf")], **ID), "variables[1]"),
        (lambda: messages.text(TO, [10**400], **ID), "variables[1]"),
        (lambda: messages.text(TO, ["a\x00b"], **ID), "variables[1]"),  # NUL passed before
        (lambda: messages.text(TO, ["a\x1bb"], **ID), "variables[1]"),
        (lambda: _text(name="Bu\ndi"), "name"),
        # UnicodeEncodeError at send time before
        (lambda: messages.text(TO, ["a\ud800"], **ID), "variables[1]"),
        (lambda: _text(name="\udcff"), "name"),
        (lambda: messages.cta_url(TO, "x\ud800", **ID), "parameters.buttons"),
        # httpx.InvalidURL when the template is fetched for validation, before
        (lambda: _text(template="t" * 70_000), "template"),
        (lambda: _text(template=".."), "template"),
        (lambda: _text(channel="c h"), "channel"),
        (lambda: _text(region=5), "region"),
        (lambda: messages.text("1" * 70_000, ["a"], **ID), "to_number"),  # was echoed whole
        # ready-made parts are checked like the rest
        (
            lambda: messages.text(
                TO, [BodyParameter(key="1", value_text="a\x00", value="x")], **ID
            ),
            "parameters.body[0].value_text",
        ),
        (
            lambda: messages.template_message(
                TO, buttons=[ButtonParameter(index="0", type="url", value="\ud800")], **ID
            ),
            "parameters.buttons[0].value",
        ),
    ],
)
def test_hostile_builder_input_is_our_validation_error(build, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field, str(info.value)
    assert len(str(info.value)) < 300  # the value itself (70,000 characters…) is not repeated


def test_region_none_means_the_number_must_carry_its_country_code() -> None:
    assert _text(region=None).to_number == "6281234567890"
    assert messages.text("+62 812-3456-7890", ["a"], region=None, **ID).to_number == TO
    with pytest.raises(ValidationError) as info:
        messages.text("0812-3456-7890", ["a"], region=None, **ID)
    assert info.value.field == "to_number"


def test_ordinary_values_still_work() -> None:
    msg = messages.text(TO, [1, 2.5, Decimal("3.10"), "tab\tand\nnewline"], **ID)
    assert [p.value_text for p in msg.parameters.body or []] == [
        "1",
        "2.5",
        "3.10",
        "tab\tand\nnewline",  # left to validation, which names WhatsApp's rule (132018)
    ]
    assert messages.text(TO, {1: "Budi"}, **ID).parameters.body == [
        BodyParameter(key="1", value_text="Budi", value="1")
    ]
    assert messages.otp(TO, 42, **ID).body_values == {"1": "42"}
    assert messages.url_button("x", index="1").index == "1"


def test_a_message_changed_by_hand_is_checked_again_before_sending() -> None:
    with sandbox_client() as (client, box):
        msg = _text()
        msg.language.code = 5  # type: ignore[assignment]
        with pytest.raises(ValidationError) as info:
            client.broadcasts.send_direct(msg)
        assert info.value.field == "language.code"
        msg = _text()
        msg.to_name = "x\ud800"
        with pytest.raises(ValidationError) as info:
            client.broadcasts.send_direct(msg, validate=False)
        assert info.value.field == "to_name"
        assert box.messages() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"to_name": "a\ud800"}, "to_name"),
        ({"to_name": 5}, "to_name"),
        ({"message_template_id": "t" * 70_000}, "message_template_id"),
        ({"language": {"code": "id\x00"}}, "language.code"),
        ({"extra": float("nan")}, "extra"),  # would be invalid JSON
        ({"extra": b"x"}, "extra"),
        (
            {"parameters": {"body": [{"key": "1", "value_text": 5, "value": "a"}]}},
            "parameters.body[0].value_text",
        ),
        (
            {"parameters": {"body": [{"key": "1", "value_text": "\x00", "value": "a"}]}},
            "parameters.body[0].value_text",
        ),
    ],
)
def test_send_direct_dicts_are_checked_and_nothing_is_sent(change, field) -> None:
    payload = {
        "to_name": "Budi",
        "to_number": TO,
        "message_template_id": "tpl",
        "channel_integration_id": CHANNEL,
        "language": {"code": "id"},
        "parameters": {},
        **change,
    }
    with sandbox_client() as (client, box):
        with pytest.raises(ValidationError) as info:
            client.broadcasts.send_direct(payload, validate=False)
        assert info.value.field == field
        assert box.messages() == []
