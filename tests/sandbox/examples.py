"""The Node client's README examples and the OpenAPI ``PostBroadcastDirect`` examples,
verbatim except where the OpenAPI file has ``"string"`` placeholders (filled with seeded ids)."""

from __future__ import annotations

from typing import Any

CHANNEL = "56b60c3c-0123-46af-958b-32f3ad12ee37"

OTP = {
    "to_name": "Test User",
    "to_number": "6281234567890",
    "message_template_id": "60cccaa0-ccd9-4efd-bdfb-875859c4b50a",
    "channel_integration_id": CHANNEL,
    "language": {"code": "id"},
    "parameters": {
        "buttons": [{"index": "0", "type": "url", "value": "123456"}],
        "body": [{"key": "1", "value_text": "123454321", "value": "otp"}],
    },
}
TEXT = {
    "to_name": "Test User",
    "to_number": "6281234567890",
    "message_template_id": "d3e1083c-66ea-410b-b807-1d84182ffa82",
    "channel_integration_id": CHANNEL,
    "language": {"code": "id"},
    "parameters": {
        "buttons": [],
        "body": [
            {"key": "1", "value_text": "Test User", "value": "name"},
            {"key": "2", "value_text": "lagu nusantara", "value": "lagu"},
        ],
    },
}
IMAGE = {
    "to_name": "Test User",
    "to_number": "6281234567890",
    "message_template_id": "34d95207-0b48-4ce0-b589-2b7c1519d457",
    "channel_integration_id": CHANNEL,
    "language": {"code": "id"},
    "parameters": {
        "header": {
            "format": "IMAGE",
            "params": [
                {
                    "key": "url",
                    "value": "https://cdn.qontak.com/uploads/direct/images/"
                    "d0295a8b-4164-490e-b250-67222f7e6884/Gojo_copy.jpeg",
                },
                {"key": "filename", "value": "Gojo_copy.jpeg"},
            ],
        },
        "buttons": [],
        "body": [],
    },
}
DOCUMENT = {
    "to_name": "Test User",
    "to_number": "6281234567890",
    "message_template_id": "380d1355-0a65-4dc5-be82-308ee7619910",
    "channel_integration_id": CHANNEL,
    "language": {"code": "id"},
    "parameters": {
        "header": {
            "format": "DOCUMENT",
            "params": [
                {
                    "key": "url",
                    "value": "https://cdn.qontak.com/uploads/direct/files/"
                    "e20c3f02-8b23-4c2f-ae4b-3b7ec4f569d9/"
                    "akdhasidhasjkdhajsdhakjsdhaskjdhakjsdhakjsdhajkshdkjashdaksjdhakjsdahdsak.pdf",
                },
                {"key": "filename", "value": "sample.pdf"},
            ],
        },
        "body": [],
    },
}
VIDEO = {
    "to_name": "Test User",
    "to_number": "6281234567890",
    "message_template_id": "70332b74-e9bd-4829-bb31-c46924e7d3ff",
    "channel_integration_id": CHANNEL,
    "language": {"code": "id"},
    "parameters": {
        "header": {
            "format": "VIDEO",
            "params": [
                {
                    "key": "url",
                    "value": "https://cdn.qontak.com/uploads/direct/videos/"
                    "60564c86-725e-429a-bffb-8168f3daac77/sample_video.mp4",
                },
                {"key": "filename", "value": "sample_video.mp4"},
            ],
        },
        "body": [
            {"key": "1", "value_text": "Valent", "value": "customer_name"},
            {"key": "2", "value_text": "Qontak", "value": "company"},
            {"key": "3", "value_text": "Qontak", "value": "company"},
        ],
    },
}
CTA_URL = {
    "to_name": "Test User",
    "to_number": "6281234567890",
    "message_template_id": "a36ea83e-1b63-41e9-a91b-bad2390531e9",
    "channel_integration_id": CHANNEL,
    "language": {"code": "id"},
    "parameters": {
        "buttons": [{"index": "0", "type": "URL", "value": "fitur/personalisasi-report-sales"}],
        "body": [],
    },
}
CTA_PHONE = {
    "to_name": "Burhan",
    "to_number": "628117661000",
    "message_template_id": "99aa44c1-6573-4a89-b0ca-f272b1b846b4",
    "channel_integration_id": CHANNEL,
    "language": {"code": "id"},
    "parameters": {"buttons": [], "body": []},
}
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
