"""Upload a local file, then send it as a template's DOCUMENT header.

Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/flow_upload_and_send.py [path/to/file.pdf]

Without an argument a one-page PDF is written to a temporary folder and uploaded.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from qontak import Qontak, messages

TO = os.environ.get("QONTAK_EXAMPLE_TO", "0812-3456-7890")

MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        path = Path(argv[1])
    else:
        path = Path(tempfile.mkdtemp()) / "invoice.pdf"
        path.write_bytes(MINIMAL_PDF)
    with Qontak() as client:
        uploaded = client.file_uploader.upload(path)  # -> UploadedFile(url=...)
        print("uploaded", uploaded.url)
        channel = client.channels.list()[0]
        template = client.templates.find("invoice_document", language="id")
        message = messages.document(
            TO, uploaded.url, filename=path.name, template=template, channel=channel, name="Budi"
        )
        print(client.preview(message))
        sent = client.broadcasts.send_direct(message)
        rows = client.broadcasts.wait(sent.id, timeout=60, interval=0.5)
        print("broadcast", sent.id, [row.status for row in rows])
        return 0 if rows and rows[0].status == "read" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
