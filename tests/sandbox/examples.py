"""The Node client's README examples and the OpenAPI ``PostBroadcastDirect`` examples,
verbatim except where the OpenAPI file has ``"string"`` placeholders (filled with seeded ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHANNEL = "56b60c3c-0123-46af-958b-32f3ad12ee37"

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "node_readme"


def _readme(name: str) -> dict[str, Any]:
    """One Node README example, exactly as the README shows it (shared with the SDK tests)."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


OTP = _readme("otp")
TEXT = _readme("text_with_variable")
IMAGE = _readme("image")
DOCUMENT = _readme("document")
VIDEO = _readme("video")
CTA_URL = _readme("cta_url")
CTA_PHONE = _readme("cta_phone")
# OpenAPI "TextWithoutVariable" / "TextWithImageAttachment" / "TextWithDocumentAttachment"
# use "string" placeholders and language "en": filled with the seeded English templates.
OAS_TEXT_WITHOUT_VARIABLE = {
    "to_name": "Test User",
    "to_number": "6281234567890",
    "message_template_id": "5a4db0c0-0008-4e00-8000-00000000e008",
    "channel_integration_id": CHANNEL,
    "language": {"code": "en"},
    "parameters": {},
}
OAS_IMAGE = {
    **OAS_TEXT_WITHOUT_VARIABLE,
    "message_template_id": "5a4db0c0-0003-4e00-8000-00000000e003",
    "parameters": {
        "header": {
            "format": "IMAGE",
            "params": [
                {
                    "key": "url",
                    "value": "https://cdn.qontak.com/uploads/direct/images/"
                    "52e21eb9-9292-4c86-b0ad-28038440062f/logo-qontak.png",
                },
                {"key": "filename", "value": "logo-qontak.png"},
            ],
        }
    },
}
OAS_DOCUMENT = {
    **OAS_TEXT_WITHOUT_VARIABLE,
    "message_template_id": "5a4db0c0-0004-4e00-8000-00000000e004",
    "parameters": {
        "header": {
            "format": "DOCUMENT",
            "params": [
                {
                    "key": "url",
                    "value": "https://cdn.qontak.com/uploads/direct/files/"
                    "01417dc5-9cd1-40b7-8900-d8b9fd6f250e/sample.pdf",
                },
                {"key": "filename", "value": "sample.pdf"},
            ],
        }
    },
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "otp": OTP,
    "text_with_variables": TEXT,
    "image": IMAGE,
    "document": DOCUMENT,
    "video": VIDEO,
    "cta_url": CTA_URL,
    "cta_phone": CTA_PHONE,
    "oas_text_without_variable": OAS_TEXT_WITHOUT_VARIABLE,
    "oas_image": OAS_IMAGE,
    "oas_document": OAS_DOCUMENT,
}

#: What the recipient sees for each example: (body, header, buttons).
RENDERED: dict[str, dict[str, Any]] = {
    "otp": {
        "body": "*123454321* adalah kode verifikasi Anda. Demi keamanan, jangan bagikan kode ini.",
        "footer": "Kode ini kedaluwarsa dalam 10 menit.",
        "header": None,
        "buttons": [
            {
                "type": "URL",
                "text": "Salin kode",
                "url": "https://www.whatsapp.com/otp/code/?otp_type=COPY_CODE&code=123456",
            }
        ],
    },
    "text_with_variables": {
        "body": "Halo Test User, pesanan Anda untuk lagu nusantara sudah kami terima dan "
        "sedang diproses. Terima kasih!",
    },
    "image": {
        "header": {
            "format": "IMAGE",
            "url": IMAGE["parameters"]["header"]["params"][0]["value"],
            "filename": "Gojo_copy.jpeg",
        }
    },
    "document": {
        "header": {
            "format": "DOCUMENT",
            "url": DOCUMENT["parameters"]["header"]["params"][0]["value"],
            "filename": "sample.pdf",
        }
    },
    "video": {
        "body": "Halo Valent, terima kasih telah menjadi pelanggan Qontak. Tonton video terbaru "
        "dari Qontak berikut ini.",
        "buttons": [
            {"type": "QUICK_REPLY", "text": "Tertarik"},
            {"type": "QUICK_REPLY", "text": "Tidak tertarik"},
        ],
    },
    "cta_url": {
        "buttons": [
            {
                "type": "URL",
                "text": "Lihat fitur",
                "url": "https://qontak.com/fitur/personalisasi-report-sales",
            }
        ]
    },
    "cta_phone": {
        "buttons": [
            {"type": "PHONE_NUMBER", "text": "Hubungi kami", "phone_number": "+6281234500000"}
        ]
    },
    "oas_text_without_variable": {"body": "Thank you for contacting Qontak Sandbox."},
    "oas_image": {"header": {"format": "IMAGE", "filename": "logo-qontak.png"}},
    "oas_document": {"header": {"format": "DOCUMENT", "filename": "sample.pdf"}},
}
