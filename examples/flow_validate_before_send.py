"""Catch a mistake before anything is sent: a missing variable shows in the preview, and
send_direct refuses the message with a ValidationError naming the field. Then fix and send.

Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/flow_validate_before_send.py
"""

from __future__ import annotations

import os
import sys

from qontak import Qontak, ValidationError, messages, validate_message

TO = os.environ.get("QONTAK_EXAMPLE_TO", "0812-3456-7890")


def main() -> int:
    with Qontak() as client:
        channel = client.channels.list()[0]
        template = client.templates.find("order_update", language="id")  # Halo {{1}}, … {{2}}
        incomplete = messages.text(TO, ["Budi"], template=template, channel=channel)
        print(client.preview(incomplete))  # shows ⟨missing {{2}}⟩
        try:
            client.broadcasts.send_direct(incomplete)
        except ValidationError as exc:
            print(f"refused before sending: {exc.field}: {exc.reason}")
        else:
            print("unexpected: the incomplete message was sent")
            return 1
        fixed = messages.text(TO, ["Budi", "Sepatu Lari"], template=template, channel=channel)
        validate_message(fixed, template)  # the same check, on its own
        sent = client.broadcasts.send_direct(fixed)
        rows = client.broadcasts.wait(sent.id, timeout=60, interval=0.5)
        print("broadcast", sent.id, [row.status for row in rows])
        return 0 if rows and rows[0].status == "read" else 1


if __name__ == "__main__":
    sys.exit(main())
