"""Rendering: what the recipient sees, for every kind of template."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from qontak import messages
from qontak.models import DirectMessage, Template, TemplateButton, TemplateHeader
from qontak.render import RenderedMedia, preview, render, render_template

TO = "6281234567890"
CDN = "https://cdn.qontak.com/uploads/direct"


def tpl(**kw: Any) -> Template:
    base: dict[str, Any] = {"id": "t", "name": "n", "language": "id", "status": "APPROVED"}
    base.update(kw)
    return Template(**base)


def test_text_template_with_variables() -> None:
    template = tpl(body="Halo {{1}}, dengarkan {{2}} hari ini.", footer="Powered by Qontak")
    msg = messages.text(
        TO, {"name": "Budi", "lagu": "lagu nusantara"}, template=template, channel="c"
    )
    out = render(template, msg)
    assert out.header is None
    assert out.body == "Halo Budi, dengarkan lagu nusantara hari ini."
    assert out.footer == "Powered by Qontak"
    assert out.ok
    assert out.to_text() == ("Halo Budi, dengarkan lagu nusantara hari ini.\n_Powered by Qontak_")


def test_missing_variables_are_marked_not_blanked() -> None:
    template = tpl(body="Halo {{1}}, pesanan {{2}}.")
    out = render(template, messages.text(TO, ["Budi"], template=template, channel="c"))
    assert out.body == "Halo Budi, pesanan ⟨missing {{2}}⟩."
    assert out.missing == ("body {{2}}",)
    assert not out.ok
    assert out.to_text().endswith("⚠ missing: body {{2}}")


def test_extra_variables_are_listed() -> None:
    template = tpl(body="Halo {{1}}")
    out = render(template, messages.text(TO, ["a", "b"], template=template, channel="c"))
    assert out.extra == ("body {{2}}",)
    assert "⚠ extra: body {{2}}" in out.to_text()


def test_named_placeholders() -> None:
    template = tpl(body="Hi {{name}}")
    out = render(template, messages.text(TO, {"name": "Budi"}, template=template, channel="c"))
    assert out.body == "Hi Budi"


def test_image_header_shows_the_filename() -> None:
    template = tpl(header=TemplateHeader(format="IMAGE"), body="Lihat ini.")
    url = f"{CDN}/images/d0295a8b/Gojo_copy.jpeg"
    out = render(template, messages.image(TO, url, template=template, channel="c"))
    assert out.header == RenderedMedia(format="IMAGE", url=url, filename="Gojo_copy.jpeg")
    assert out.to_text() == "[IMAGE: Gojo_copy.jpeg]\nLihat ini."


@pytest.mark.parametrize("kind", ["document", "video"])
def test_document_and_video_headers(kind: str) -> None:
    fmt = kind.upper()
    template = tpl(header=TemplateHeader(format=fmt), body="Hi {{1}}")
    build = messages.document if kind == "document" else messages.video
    msg = build(TO, "https://x.co/f/abc", filename="file.bin", template=template, channel="c",
                variables=["Valent"])  # fmt: skip
    assert preview(template, msg) == f"[{fmt}: file.bin]\nHi Valent"


def test_missing_media_header_is_marked() -> None:
    template = tpl(header=TemplateHeader(format="IMAGE"), body="Hi")
    out = render(template, messages.text(TO, template=template, channel="c"))
    assert out.header == RenderedMedia(format="IMAGE")
    assert out.missing == ("header IMAGE",)
    assert out.to_text().startswith("[IMAGE: ⟨missing⟩]\nHi")


def test_media_header_of_the_wrong_format() -> None:
    template = tpl(header=TemplateHeader(format="IMAGE"), body="Hi")
    msg = messages.video(TO, "https://x.co/v.mp4", template=template, channel="c")
    out = render(template, msg)
    assert out.missing == ("header IMAGE",)
    assert out.extra == ("header VIDEO",)


def test_text_header_is_a_bold_title() -> None:
    template = tpl(header=TemplateHeader(format="TEXT", text="Pesanan"), body="Hi")
    assert preview(template, messages.text(TO, template=template, channel="c")) == "*Pesanan*\nHi"


def test_cta_url_button_shows_the_final_url() -> None:
    template = tpl(
        body="Coba fitur baru.",
        buttons=[TemplateButton(type="URL", text="Open", url="https://qontak.com/{{1}}")],
    )
    msg = messages.cta_url(TO, "fitur/personalisasi-report-sales", template=template, channel="c")
    out = render(template, msg)
    assert out.urls == ["https://qontak.com/fitur/personalisasi-report-sales"]
    assert out.to_text() == (
        "Coba fitur baru.\n[ Open ↗ ] → https://qontak.com/fitur/personalisasi-report-sales"
    )


def test_cta_url_without_its_suffix_is_marked() -> None:
    template = tpl(
        body="Hi", buttons=[TemplateButton(type="URL", text="Open", url="https://x.co/{{1}}")]
    )
    out = render(template, messages.cta_phone(TO, template=template, channel="c"))
    assert out.urls == ["https://x.co/⟨missing {{1}}⟩"]
    assert out.missing == ("button 0 {{1}}",)


def test_static_url_and_phone_buttons() -> None:
    template = tpl(
        body="Hubungi kami.",
        buttons=[
            TemplateButton(type="URL", text="Website", url="https://qontak.com"),
            TemplateButton(type="PHONE_NUMBER", text="Call", phone_number="+628117661000"),
        ],
    )
    out = render(template, messages.cta_phone("628117661000", template=template, channel="c"))
    assert out.phone_numbers == ["+628117661000"]
    assert out.ok
    assert out.to_text() == (
        "Hubungi kami.\n[ Website ↗ ] → https://qontak.com\n[ Call ☎ ] → +628117661000"
    )


def test_value_for_a_static_button_is_extra() -> None:
    template = tpl(body="Hi", buttons=[TemplateButton(type="PHONE_NUMBER", text="Call")])
    msg = messages.cta_url(TO, "x", template=template, channel="c")
    assert render(template, msg).extra == ("button 0",)


def test_quick_replies_share_a_row() -> None:
    template = tpl(
        body="Datang besok?",
        buttons=[
            TemplateButton(type="QUICK_REPLY", text="Ya"),
            TemplateButton(type="QUICK_REPLY", text="Tidak"),
        ],
    )
    out = render(template, messages.cta_phone(TO, template=template, channel="c"))
    assert out.quick_replies == ["Ya", "Tidak"]
    assert out.to_text() == "Datang besok?\n[ Ya ] [ Tidak ]"


def test_more_than_three_buttons_notes_the_collapse() -> None:
    buttons = [TemplateButton(type="QUICK_REPLY", text=str(i)) for i in range(4)]
    text = render(tpl(body="Pilih", buttons=buttons)).to_text()
    assert "See all options" in text


def test_authentication_template_renders_copy_code() -> None:
    template = tpl(
        body="*{{1}}* is your verification code. For your security, do not share this code.",
        footer="This code expires in 10 minutes.",
        category="AUTHENTICATION",
        buttons=[TemplateButton(type="URL", text="Copy", url="https://www.whatsapp.com/otp/{{1}}")],
    )
    out = render(template, messages.otp(TO, "123456", template=template, channel="c"))
    assert out.ok
    assert out.buttons[0].text == "Copy"  # the template's own label
    assert out.to_text() == (
        "*123456* is your verification code. For your security, do not share this code.\n"
        "_This code expires in 10 minutes._\n"
        "[ Copy ⧉ ] → 123456"
    )


def test_authentication_template_without_listed_button_still_shows_it() -> None:
    template = tpl(body="*{{1}}* is your code.", category="AUTHENTICATION")
    out = render(template, messages.otp(TO, "42", template=template, channel="c"))
    assert out.ok
    assert [b.text for b in out.buttons] == ["Copy code"]


def test_one_tap_otp_is_autofill() -> None:
    template = tpl(
        body="{{1}}",
        category="AUTHENTICATION",
        buttons=[TemplateButton(type="OTP", otp_type="ONE_TAP")],
    )
    out = render(template, messages.otp(TO, "42", template=template, channel="c"))
    assert out.buttons[0].text == "Autofill"


def test_missing_otp_code_is_listed() -> None:
    template = tpl(body="{{1}}", category="AUTHENTICATION", buttons=[TemplateButton(type="OTP")])
    assert render(template).missing == ("body {{1}}", "button 0 code")


def test_rendered_message_is_frozen() -> None:
    out = render(tpl(body="Hi"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.body = "x"  # type: ignore[misc]


def test_render_template_marks_placeholders() -> None:
    template = tpl(
        header=TemplateHeader(format="IMAGE"),
        body="Halo {{1}}, pesanan {{2}}.",
        footer="Qontak",
        buttons=[
            TemplateButton(type="URL", text="Lacak", url="https://x.co/t/{{1}}"),
            TemplateButton(type="QUICK_REPLY", text="Ya"),
        ],
    )
    assert render_template(template) == (
        "[IMAGE: ⟨media url⟩]\n"
        "Halo ⟨{{1}}⟩, pesanan ⟨{{2}}⟩.\n"
        "_Qontak_\n"
        "[ Lacak ↗ ] → https://x.co/t/⟨{{1}}⟩\n"
        "[ Ya ]"
    )


def test_preview_uses_the_message_as_sent() -> None:
    template = tpl(body="Hi {{1}}")
    msg = DirectMessage.model_validate(
        {
            "to_name": "x",
            "to_number": TO,
            "message_template_id": "t",
            "channel_integration_id": "c",
            "language": {"code": "id"},
            "parameters": {"body": [{"key": "1", "value_text": "Budi", "value": "n"}]},
        }
    )
    assert preview(template, msg) == "Hi Budi"
