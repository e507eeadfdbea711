"""Send a template with a static call button (nothing to fill in the button).

Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/send_cta_phone.py

``QONTAK_EXAMPLE_TO`` overrides the recipient. Exit status 0 when the message was read.
"""

from __future__ import annotations

import os
import sys

from qontak import Qontak, messages

TO = os.environ.get("QONTAK_EXAMPLE_TO", "0812-3456-7890")


def main() -> int:
    with Qontak() as client:
        channel = client.channels.list()[0]
        template = client.templates.find("cta_phone", language="id")
        message = messages.cta_phone(TO, template=template, channel=channel, name="Budi")
        print(client.preview(message))  # what the recipient will see; nothing sent yet
        sent = client.broadcasts.send_direct(message)  # validated against the template first
        print("broadcast", sent.id)
        rows = client.broadcasts.wait(sent.id, timeout=60, interval=0.5)
        for row in rows:
            print(row.contact_phone_number, row.status, row.whatsapp_error_message or "")
        return 0 if rows and all(row.status == "read" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
