"""Pre-send validation: phone numbers and a message against its template (whatsapp-rules §7)."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata

from qontak import messages
from qontak.errors import QontakWarning, ValidationError
from qontak.models import (
    ButtonParameter,
    DirectMessage,
    Template,
    TemplateButton,
    TemplateHeader,
)
from qontak.render import render
from qontak.validation import (
    DEFAULT_REGION,
    ERROR_CODES,
    MAX_BODY_PARAM_CHARS,
    MAX_BODY_PARAM_CHARS_BODY_ONLY,
    MAX_HEADER_PARAM_CHARS,
    MAX_HYDRATED_BODY_CHARS,
    MAX_NAME_CHARS,
    MAX_REQUEST_BYTES,
    MAX_URL_CHARS,
    MIN_PHONE_DIGITS,
    check_message,
    check_notes,
    normalize_phone,
    request_size,
    validate_message,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "node_readme"
TO = "6281234567890"


def load(name: str) -> DirectMessage:
    data: Any = json.loads((FIXTURES / f"{name}.json").read_text())
    return DirectMessage.model_validate(data)


def tpl(**kw: Any) -> Template:
    base: dict[str, Any] = {
        "id": "t",
        "name": "n",
        "language": "id",
        "body": "Hi {{1}}",
        "status": "APPROVED",
        "category": "UTILITY",
    }
    base.update(kw)
    return Template(**base)


def msg(**params: Any) -> DirectMessage:
    return DirectMessage.model_validate(
        {
            "to_name": "Budi",
            "to_number": TO,
            "message_template_id": "t",
            "channel_integration_id": "c",
            "language": {"code": "id"},
            "parameters": params,
        }
    )


def body(*values: str) -> list[dict[str, str]]:
    return [{"key": str(i), "value_text": v, "value": f"v{i}"} for i, v in enumerate(values, 1)]


def fields(message: DirectMessage, template: Template | None = None) -> list[str]:
    return [e.field for e in check_message(message, template)]


def reasons(message: DirectMessage, template: Template | None = None) -> str:
    return " | ".join(e.reason for e in check_message(message, template))


# --- normalize_phone --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "0812-3456-7890",
        "081234567890",
        "+62 812-3456-7890",
        "+6281234567890",
        "6281234567890",
        "62 812 3456 7890",
        "+62 0812 3456 7890",
        "(0812) 3456 7890",
        "006281234567890",
        "00 62 812 3456 7890",
        " 0812.3456.7890 ",
    ],
)
def test_normalize_phone_accepts_the_ways_people_write_indonesian_numbers(written: str) -> None:
    assert normalize_phone(written) == "6281234567890"


def test_default_region_is_indonesia() -> None:
    # A number without a country code is read as Indonesian unless told otherwise.
    assert DEFAULT_REGION == "ID"
    assert normalize_phone("0812-3456-7890") == "6281234567890"


@pytest.mark.parametrize("nsn", ["812345678", "8123456789", "81234567890", "812345678901"])
def test_numbers_already_in_qontak_format_are_kept(nsn: str) -> None:
    # Short mobiles used to be read as national numbers and got a second "62".
    for written in (f"62{nsn}", f"0{nsn}", f"+62{nsn}", f"+62 0{nsn}"):
        assert normalize_phone(written) == f"62{nsn}", written


def test_region_is_case_insensitive() -> None:
    assert normalize_phone("0812-3456-7890", region="id") == "6281234567890"


def test_normalize_phone_region_is_configurable() -> None:
    assert normalize_phone("(650) 253-0000", region="US") == "16502530000"
    assert normalize_phone("+1 650 253 0000") == "16502530000"


def test_normalize_phone_reads_bare_international_digits_of_other_countries() -> None:
    # Qontak's own format (country code, no '+') for a non-Indonesian number.
    assert normalize_phone("16502530000") == "16502530000"


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ("", "not a phone number"),
        ("hello", "not a phone number"),
        ("0812-ABCD-7890", "not a phone number"),
        ("1-800-FLOWERS", "not a phone number"),
        ("+62+812", "not a phone number"),
        ("0812", "too short"),
        ("0812345678901234567", "too long"),
        ("08123456789012", "not a valid phone number"),
        ("+999 123456789", "not a phone number"),
    ],
)
def test_normalize_phone_rejects_invalid_numbers(written: str, why: str) -> None:
    with pytest.raises(ValidationError) as err:
        normalize_phone(written)
    assert err.value.field == "to_number"
    assert why in err.value.reason
    assert "\n" not in str(err.value)


# --- required fields and the number --------------------------------------------------------------


def test_a_good_message_passes() -> None:
    validate_message(msg(body=body("Budi")), tpl())
    assert check_message(msg(body=body("Budi")), tpl()) == []


def test_required_fields_must_not_be_empty() -> None:
    m = DirectMessage.model_validate(
        {
            "to_name": " ",
            "to_number": "",
            "message_template_id": "",
            "channel_integration_id": "",
            "language": {"code": ""},
        }
    )
    assert fields(m) == [
        "to_name",
        "to_number",
        "message_template_id",
        "channel_integration_id",
        "language.code",
    ]


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("+6281234567890", "digits only"),
        ("62 812 3456 7890", "digits only"),
        ("081234567890", "country code"),
        ("62812", "6 to 15 digits"),
        ("6281234567890123", "6 to 15 digits"),
    ],
)
def test_to_number_must_be_digits_with_country_code(number: str, why: str) -> None:
    m = msg().model_copy(update={"to_number": number})
    with pytest.raises(ValidationError) as err:
        validate_message(m)
    assert err.value.field == "to_number"
    assert why in err.value.reason


def test_the_digit_floor_is_the_shortest_number_phonenumbers_knows() -> None:
    """No number phonenumbers calls possible is refused for its length alone."""
    shortest = min(
        len(str(meta.country_code)) + min(length for length in meta.general_desc.possible_length)
        for meta in (
            *(PhoneMetadata.metadata_for_region(r) for r in phonenumbers.SUPPORTED_REGIONS),
            *(
                PhoneMetadata.metadata_for_nongeo_region(code)
                for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
            ),
        )
        if meta is not None and meta.general_desc.possible_length
    )
    assert shortest == MIN_PHONE_DIGITS


@pytest.mark.parametrize(
    ("written", "wire"),
    [("+683 4002", "6834002"), ("+690 7290", "6907290"), ("+290 22158", "29022158")],
)
def test_short_numbers_of_small_countries_are_sent(written: str, wire: str) -> None:
    """Niue and Tokelau numbers have 7 digits in all (Saint Helena's 8): valid, so sent."""
    assert phonenumbers.is_valid_number(phonenumbers.parse(written))
    built = messages.text(written, ["Budi"], template=tpl(), channel="c")
    assert built.to_number == wire
    validate_message(built)
    assert check_message(msg(body=body("x")).model_copy(update={"to_number": wire}), tpl()) == []


# --- template status, id, language ---------------------------------------------------------------


@pytest.mark.parametrize("status", ["PENDING", "REJECTED", "PAUSED", "DISABLED"])
def test_template_must_be_approved(status: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_message(msg(body=body("x")), tpl(status=status))
    assert err.value.field == "message_template_id"
    assert status in err.value.reason and "APPROVED" in err.value.reason


def test_language_must_equal_the_templates() -> None:
    with pytest.raises(ValidationError) as err:
        validate_message(msg(body=body("x")), tpl(language="en_US"))
    assert err.value.field == "language.code"
    assert "en_US" in err.value.reason


def test_template_id_must_match() -> None:
    assert fields(msg(body=body("x")), tpl(id="other")) == ["message_template_id"]


def test_template_defaults_to_the_one_the_message_was_built_with() -> None:
    m = messages.text(TO, ["a", "b"], template=tpl(), channel="c")
    assert fields(m) == ["parameters.body[1].key", "parameters.body"]


# --- body ----------------------------------------------------------------------------------------


def test_body_count_must_match_with_qontaks_wording() -> None:
    template = tpl(body="Hi {{1}}, {{2}} and {{3}}")
    errors = check_message(msg(body=body("a", "b")), template)
    assert str(errors[0]) == "parameters.body: template has 3 variables, got 2"
    assert "no value for {{3}}" in str(errors[1])


def test_body_extra_and_duplicate_keys_are_named() -> None:
    params = [*body("a", "b"), {"key": "1", "value_text": "c", "value": "x"}]
    assert fields(msg(body=params), tpl()) == [
        "parameters.body[1].key",
        "parameters.body[2].key",
        "parameters.body",
    ]
    assert "duplicate key '1'" in reasons(msg(body=params), tpl())


def test_named_placeholders_need_exactly_their_names() -> None:
    template = tpl(body="Hi {{name}}")
    ok = msg(body=[{"key": "name", "value_text": "Budi", "value": "name"}])
    assert check_message(ok, template) == []
    assert fields(msg(body=body("Budi")), template) == [
        "parameters.body[0].key",
        "parameters.body",
    ]


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\tb", "a     b", "", "   "])
def test_body_values_reject_newlines_tabs_five_spaces_and_empty(bad: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_message(msg(body=body(bad)), tpl())
    assert err.value.field == "parameters.body[0].value_text"


def test_four_spaces_are_fine() -> None:
    validate_message(msg(body=body("a    b")), tpl())


def test_body_label_must_not_be_empty() -> None:
    m = msg(body=[{"key": "1", "value_text": "x", "value": ""}])
    assert fields(m) == ["parameters.body[0].value"]


def test_body_param_limit_is_1024_when_other_components_take_parameters() -> None:
    m = msg(
        header={"format": "IMAGE", "params": [{"key": "url", "value": "https://x.co/a.png"}]},
        body=body("x" * (MAX_BODY_PARAM_CHARS + 1)),
    )
    assert "at most 1024" in reasons(m)
    ok = m.model_copy(deep=True)
    assert ok.parameters.body is not None
    ok.parameters.body[0].value_text = "x" * MAX_BODY_PARAM_CHARS
    assert check_message(ok) == []


def test_body_param_limit_is_32768_when_only_the_body_has_parameters() -> None:
    assert check_message(msg(body=body("x" * MAX_BODY_PARAM_CHARS_BODY_ONLY))) == []
    assert "at most 32768" in reasons(msg(body=body("x" * (MAX_BODY_PARAM_CHARS_BODY_ONLY + 1))))


def test_hydrated_body_must_fit() -> None:
    template = tpl(body="Hi {{1}}!")
    long = "x" * (MAX_HYDRATED_BODY_CHARS - len("Hi !"))
    assert check_message(msg(body=body(long)), template) == []
    errors = check_message(msg(body=body(long + "x")), template)
    assert [e.field for e in errors] == ["parameters.body"]
    assert "1025 characters" in errors[0].reason


# --- header --------------------------------------------------------------------------------------


def image_header(url: str = "https://x.co/a.jpg", filename: str | None = None) -> dict[str, Any]:
    params = [{"key": "url", "value": url}]
    if filename is not None:
        params.append({"key": "filename", "value": filename})
    return {"format": "IMAGE", "params": params}


IMAGE_TPL = {"header": TemplateHeader(format="IMAGE"), "body": "Hi"}


def test_media_header_is_required_when_the_template_has_one() -> None:
    with pytest.raises(ValidationError) as err:
        validate_message(msg(body=[]), tpl(**IMAGE_TPL))
    assert err.value.field == "parameters.header"
    assert "IMAGE" in err.value.reason


def test_media_header_is_rejected_when_the_template_has_none() -> None:
    assert fields(msg(header=image_header(), body=body("x")), tpl()) == ["parameters.header"]


def test_media_header_format_must_match() -> None:
    m = msg(header={"format": "VIDEO", "params": [{"key": "url", "value": "https://x.co/v.mp4"}]})
    errors = check_message(m, tpl(**IMAGE_TPL))
    assert [str(e) for e in errors] == ["parameters.header.format: expected IMAGE, got VIDEO"]


def test_media_header_needs_an_http_url() -> None:
    assert fields(msg(header={"format": "IMAGE", "params": []})) == ["parameters.header.params"]
    bad = msg(header=image_header("ftp://x.co/a.jpg"))
    assert fields(bad) == ["parameters.header.params[0].value"]
    assert check_message(msg(header=image_header("http://x.co/a.jpg"))) == []


def test_media_header_format_must_be_known() -> None:
    m = msg(header={"format": "AUDIO", "params": [{"key": "url", "value": "https://x.co/a"}]})
    assert fields(m) == ["parameters.header.format"]


@pytest.mark.parametrize(
    ("url", "filename", "ok"),
    [
        ("https://x.co/f/a.pdf", None, True),
        ("https://x.co/f/a.PDF", None, True),
        ("https://x.co/f/signed?x=1", "invoice.pdf", True),
        ("https://x.co/f/a.docx", None, False),
        ("https://x.co/f/a.pdf", "a.docx", False),
        ("https://x.co/f/noext", None, False),
    ],
)
def test_document_header_must_be_pdf(url: str, filename: str | None, ok: bool) -> None:
    header = {**image_header(url, filename), "format": "DOCUMENT"}
    errors = check_message(msg(header=header))
    assert (errors == []) is ok
    if not ok:
        assert "PDF" in errors[0].reason


def test_image_header_with_a_known_wrong_extension_is_rejected() -> None:
    assert "must be one of" in reasons(msg(header=image_header("https://x.co/a.gif")))
    assert check_message(msg(header=image_header("https://x.co/a"))) == []  # unknown: allowed


def test_text_header_values_are_checked() -> None:
    header = {"format": "TEXT", "params": [{"key": "1", "value": "x" * 61}]}
    assert "at most 60" in reasons(msg(header=header))
    assert MAX_HEADER_PARAM_CHARS == 60


# --- buttons -------------------------------------------------------------------------------------

URL_TPL = {
    "body": "Hi",
    "buttons": [
        TemplateButton(type="PHONE_NUMBER", text="Call", phone_number="+62811"),
        TemplateButton(type="URL", text="Track", url="https://x.co/track/{{1}}"),
    ],
}


def test_dynamic_url_button_needs_a_value_at_its_index() -> None:
    template = tpl(**URL_TPL)
    assert check_message(msg(buttons=[{"index": "1", "type": "URL", "value": "a"}]), template) == []
    errors = check_message(msg(buttons=[]), template)
    assert [e.field for e in errors] == ["parameters.buttons"]
    assert "index '1'" in errors[0].reason


def test_value_for_a_static_or_absent_button_is_rejected() -> None:
    template = tpl(**URL_TPL)
    m = msg(
        buttons=[
            {"index": "0", "type": "URL", "value": "a"},
            {"index": "1", "type": "URL", "value": "b"},
            {"index": "5", "type": "URL", "value": "c"},
        ]
    )
    assert fields(m, template) == ["parameters.buttons[0].index", "parameters.buttons[2].index"]


def test_button_index_value_and_duplicates() -> None:
    m = msg(
        buttons=[
            {"index": "10", "type": "url", "value": "a"},
            {"index": "0", "type": "url", "value": "a b"},
            {"index": "0", "type": "url", "value": "x"},
            {"index": "1", "type": "", "value": ""},
        ]
    )
    assert fields(m) == [
        "parameters.buttons[0].index",
        "parameters.buttons[1].value",
        "parameters.buttons[2].index",
        "parameters.buttons[3].type",
        "parameters.buttons[3].value",
    ]


def test_final_url_must_fit_2000_chars() -> None:
    template = tpl(**URL_TPL)
    base = len("https://x.co/track/")
    ok = msg(buttons=[{"index": "1", "type": "URL", "value": "a" * (MAX_URL_CHARS - base)}])
    assert check_message(ok, template) == []
    bad = msg(buttons=[{"index": "1", "type": "URL", "value": "a" * (MAX_URL_CHARS - base + 1)}])
    assert fields(bad, template) == ["parameters.buttons[0].value"]


@pytest.mark.parametrize(
    ("coupon", "ok"), [("SALE25", True), ("SALE-25", False), ("A" * 16, False)]
)
def test_marketing_coupon_code_is_short_and_alphanumeric(coupon: str, ok: bool) -> None:
    template = tpl(body="Hi", category="MARKETING", buttons=[TemplateButton(type="COPY_CODE")])
    m = msg(buttons=[{"index": "0", "type": "copy_code", "value": coupon}])
    assert (check_message(m, template) == []) is ok


# --- authentication ------------------------------------------------------------------------------


def auth_tpl(**kw: Any) -> Template:
    base: dict[str, Any] = {
        "body": "*{{1}}* is your verification code.",
        "category": "AUTHENTICATION",
        "buttons": [TemplateButton(type="OTP", otp_type="COPY_CODE", text="Copy code")],
    }
    base.update(kw)
    return tpl(**base)


def otp_msg(body_code: str, button_code: str | None) -> DirectMessage:
    buttons = [] if button_code is None else [{"index": "0", "type": "url", "value": button_code}]
    return msg(buttons=buttons, body=[{"key": "1", "value_text": body_code, "value": "otp"}])


def test_different_otp_codes_are_a_warning_not_an_error() -> None:
    """Qontak accepts a body code and a button code that differ (the Node README's own example
    does): it is sent, with a QontakWarning and a note, never refused."""
    assert check_notes(otp_msg("123456", "123456"), auth_tpl()) == []
    mismatched = otp_msg("123456", "654321")
    assert check_message(mismatched, auth_tpl()) == []
    [note] = check_notes(mismatched, auth_tpl())
    assert (note.field, note.code) == ("parameters.buttons[0].value", "mismatch")
    assert "'123456'" in note.reason and "'654321'" in note.reason
    with pytest.warns(QontakWarning, match="differs from the code in the body") as caught:
        validate_message(mismatched, auth_tpl())
    assert caught[0].message is not note and caught[0].message.code == "mismatch"  # type: ignore[union-attr]


def test_notes_are_only_for_authentication_templates() -> None:
    template = tpl(body="Hi {{1}}", buttons=[TemplateButton(type="URL", url="https://x.co/{{1}}")])
    m = msg(body=body("a"), buttons=[{"index": "0", "type": "url", "value": "b"}])
    assert check_message(m, template) == [] and check_notes(m, template) == []


def test_otp_code_is_at_most_15_chars() -> None:
    code = "1" * 16
    assert fields(otp_msg(code, code), auth_tpl()) == ["parameters.body[0].value_text"]


def test_otp_button_is_required() -> None:
    assert fields(otp_msg("1", None), auth_tpl()) == ["parameters.buttons"]
    # Also when Qontak's template data lists no button at all.
    assert fields(otp_msg("1", None), auth_tpl(buttons=[])) == ["parameters.buttons"]
    assert check_message(otp_msg("1", "1"), auth_tpl(buttons=[])) == []


def test_otp_button_stored_as_url_counts_as_the_code_button() -> None:
    button = TemplateButton(type="URL", text="Copy code", url="https://www.whatsapp.com/otp/code")
    assert check_message(otp_msg("1", "1"), auth_tpl(buttons=[button])) == []


# --- the README examples, against matching templates ---------------------------------------------

README_TEMPLATES: dict[str, Template] = {
    "quickstart_otp": auth_tpl(id="YOUR_TEMPLATE_ID"),
    "text_with_variable": tpl(
        id="d3e1083c-66ea-410b-b807-1d84182ffa82", body="Halo {{1}}, dengarkan {{2}} hari ini."
    ),
    "text_without_variable": tpl(id="YOUR_TEMPLATE_ID", body="Halo, terima kasih."),
    "image": tpl(
        id="34d95207-0b48-4ce0-b589-2b7c1519d457",
        header=TemplateHeader(format="IMAGE"),
        body="Lihat gambar ini.",
    ),
    "document": tpl(
        id="380d1355-0a65-4dc5-be82-308ee7619910",
        header=TemplateHeader(format="DOCUMENT"),
        body="Dokumen Anda terlampir.",
    ),
    "video": tpl(
        id="70332b74-e9bd-4829-bb31-c46924e7d3ff",
        header=TemplateHeader(format="VIDEO"),
        body="Halo {{1}}, video dari {{2}}. Salam, {{3}}.",
    ),
    "cta_url": tpl(
        id="a36ea83e-1b63-41e9-a91b-bad2390531e9",
        body="Coba fitur baru kami.",
        buttons=[TemplateButton(type="URL", text="Buka", url="https://qontak.com/{{1}}")],
    ),
    "cta_phone": tpl(
        id="99aa44c1-6573-4a89-b0ca-f272b1b846b4",
        body="Hubungi kami.",
        buttons=[TemplateButton(type="PHONE_NUMBER", text="Call", phone_number="+628117661000")],
    ),
}


@pytest.mark.parametrize("name", sorted(README_TEMPLATES))
def test_readme_examples_pass_against_matching_templates(name: str) -> None:
    validate_message(load(name), README_TEMPLATES[name])


def test_readme_otp_doc_slip_is_a_note_not_an_error() -> None:
    # The README's second OTP example sends 123454321 in the body but 123456 in the button.
    template = auth_tpl(id="60cccaa0-ccd9-4efd-bdfb-875859c4b50a")
    assert check_message(load("otp"), template) == []
    assert [n.field for n in check_notes(load("otp"), template)] == ["parameters.buttons[0].value"]


def test_validate_raises_the_first_problem_only() -> None:
    m = msg(body=body("a\nb", ""))
    with pytest.raises(ValidationError) as err:
        validate_message(m, tpl(status="PENDING"))
    assert err.value.field == "message_template_id"
    assert len(check_message(m, tpl(status="PENDING"))) == 5


def test_models_built_by_hand_and_by_builders_validate_alike() -> None:
    template = tpl(**URL_TPL)
    built = messages.cta_url(TO, "abc", template=template, channel="c")
    assert built.parameters.buttons == [ButtonParameter(index="1", type="URL", value="abc")]
    validate_message(built)


# --- to_name ---------------------------------------------------------------------------------


def test_to_name_has_a_length_limit() -> None:
    ok = msg(body=body("x")).model_copy(update={"to_name": "B" * MAX_NAME_CHARS})
    assert check_message(ok, tpl()) == []
    long = ok.model_copy(update={"to_name": "B" * 100_000})
    [error] = check_message(long, tpl())
    assert (error.field, error.code) == ("to_name", "too_long")
    assert f"at most {MAX_NAME_CHARS}" in error.reason


@pytest.mark.parametrize(
    "name", ["Budi\nSantoso", "Budi\r", "Bu\tdi", "Bu\x00di", "\x1b[31mBudi", "B\ud800"]
)
def test_to_name_refuses_new_lines_and_control_characters(name: str) -> None:
    [error] = check_message(msg(body=body("x")).model_copy(update={"to_name": name}), tpl())
    assert (error.field, error.code) == ("to_name", "invalid_character")


def test_the_name_rule_refuses_exactly_unicode_control_and_surrogate_characters() -> None:
    from qontak.validation import _BAD_NAME_CHAR

    refused = {cp for cp in range(0x110000) if _BAD_NAME_CHAR.search(chr(cp))}
    controls = {cp for cp in range(0x110000) if unicodedata.category(chr(cp)) in ("Cc", "Cs")}
    assert refused == controls


@pytest.mark.parametrize(
    "name", ["Budi Santoso", "Nguyễn Văn A", "山田 太郎", "👩‍💻 Dev", "O'Brien-Smith"]
)
def test_real_names_pass(name: str) -> None:
    assert check_message(msg(body=body("x")).model_copy(update={"to_name": name}), tpl()) == []


# --- request size ----------------------------------------------------------------------------


def test_request_body_size_is_checked() -> None:
    # The label ("value") has no length rule of its own: only the body size stops it.
    label = "x" * MAX_REQUEST_BYTES
    m = msg(body=[{"key": "1", "value_text": "Budi", "value": label}])
    assert request_size(m) > MAX_REQUEST_BYTES
    [error] = check_message(m, tpl())
    assert (error.field, error.code) == ("message", "too_large")
    # The size of the body as posted (json.dumps' layout, UTF-8), not of a compact form.
    small = msg(body=body("Budi ✓"))
    posted = json.dumps(small.to_wire(), ensure_ascii=False)
    assert request_size(small) == len(posted.encode())


def test_an_oversized_send_never_reaches_the_server(make_client, server) -> None:
    template = tpl()
    with pytest.raises(ValidationError) as err:  # the builder refuses it at once...
        messages.text(TO, ["Budi"], template=template, channel="c", name="B" * 50_000_000)
    assert err.value.code == "too_long"
    huge = messages.text(TO, ["Budi"], template=template, channel="c")
    huge.to_name = "B" * 50_000_000  # ...and so does the send, for a message edited after
    with pytest.raises(ValidationError) as err:
        make_client().broadcasts.send_direct(huge)
    assert err.value.code == "too_long" and err.value.field == "to_name"
    assert server.requests == []


# --- codes -----------------------------------------------------------------------------------

BAD_MESSAGES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {"to_number": "+62812"}),
    ({}, {"to_number": "0812345678"}),
    ({"status": "PAUSED", "language": "en", "id": "other"}, {}),
    ({"header": TemplateHeader(format="IMAGE")}, {}),
    ({}, {"parameters": {"header": image_header()}}),
    ({"header": TemplateHeader(format="IMAGE")}, {"parameters": {"header": image_header("ftp://x")}}),
    ({"header": TemplateHeader(format="IMAGE")},
     {"parameters": {"header": image_header("https://x.co/a.gif")}}),
    ({}, {"parameters": {"header": {"format": "AUDIO", "params": []}}}),
    ({}, {"parameters": {"body": [*body("a\tb", ""),
                                  {"key": "1", "value_text": "x", "value": ""}]}}),
    ({}, {"parameters": {"body": body("a", "b")}}),
    ({}, {"parameters": {"buttons": [{"index": "x", "type": "", "value": " "}]}}),
    ({**URL_TPL}, {"parameters": {"buttons": [{"index": "0", "type": "url", "value": "a b"}]}}),
    ({"body": "Hi", "category": "MARKETING", "buttons": [TemplateButton(type="COPY_CODE")]},
     {"parameters": {"buttons": [{"index": "0", "type": "copy_code", "value": "NOT-OK"}]}}),
    ({}, {"to_name": "a\nb" * 100}),
]  # fmt: skip


@pytest.mark.parametrize(("template_kw", "message_kw"), BAD_MESSAGES)
def test_every_problem_has_a_documented_code(
    template_kw: dict[str, Any], message_kw: dict[str, Any]
) -> None:
    base = msg(body=body("x")).model_dump()
    base.update(message_kw)
    errors = check_message(DirectMessage.model_validate(base), tpl(**template_kw))
    assert errors
    for error in errors:
        assert error.code in ERROR_CODES, (error.code, str(error))
        assert error.code != "invalid"  # the class default: every rule names its own


def test_phone_errors_have_the_invalid_phone_code() -> None:
    for bad in ("hello", "0812", "0812345678901234567", "+62+812"):
        with pytest.raises(ValidationError) as err:
            normalize_phone(bad)
        assert err.value.code == "invalid_phone"


# --- never anything but our errors -----------------------------------------------------------

_text = st.text(max_size=40)


@settings(max_examples=100, deadline=None)
@given(
    name=_text,
    number=st.text(alphabet="0123456789+ ", max_size=18),
    values=st.lists(_text, max_size=4),
    button=st.tuples(st.text(max_size=3), _text),
    category=st.sampled_from(["AUTHENTICATION", "MARKETING", "utility", "NEW_THING"]),
)
def test_validator_and_renderer_only_report(
    name: str, number: str, values: list[str], button: tuple[str, str], category: str
) -> None:
    template = tpl(body="Hi {{1}} {{2}}", category=category, buttons=URL_TPL["buttons"])
    m = DirectMessage.model_validate(
        {
            "to_name": name,
            "to_number": number,
            "message_template_id": "t",
            "channel_integration_id": "c",
            "language": {"code": "id"},
            "parameters": {
                "body": [
                    {"key": str(i), "value_text": v, "value": "v"} for i, v in enumerate(values, 1)
                ],
                "buttons": [{"index": button[0], "type": "url", "value": button[1]}],
            },
        }
    )
    for error in check_message(m, template):
        assert isinstance(error, ValidationError) and error.code in ERROR_CODES
    for note in check_notes(m, template):
        assert note.code in ERROR_CODES
    render(template, m).to_text()


@pytest.mark.parametrize("number", [(None, "x" * 70_000), ["6281234567890"], 6281234567890, None])
def test_a_number_that_is_not_text_is_named_by_its_type_only(number: Any) -> None:
    with pytest.raises(ValidationError) as err:
        normalize_phone(number)
    assert (err.value.field, err.value.code) == ("to_number", "invalid_type")
    assert len(str(err.value)) < 100
