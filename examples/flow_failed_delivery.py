"""Read why a message failed: the log row carries WhatsApp's error code and text.

The sandbox fails numbers whose last six digits are a WhatsApp error code, e.g.
6281234131026 (131026, "Message undeliverable").

Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/flow_failed_delivery.py
"""

from __future__ import annotations

import os
import sys

from qontak import Qontak, messages

TO = os.environ.get("QONTAK_EXAMPLE_FAILING_TO", "6281234131026")


def main() -> int:
    with Qontak() as client:
        channel = client.channels.list()[0]
        template = client.templates.find("welcome_message", language="id")
        sent = client.broadcasts.send_direct(messages.text(TO, template=template, channel=channel))
        rows = client.broadcasts.wait(sent.id, timeout=60, interval=0.5)
        for row in rows:
            print(row.contact_phone_number, row.status, row.error_code, row.whatsapp_error_message)
        return 0 if rows and all(row.status == "failed" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
