"""The documented flow in a few lines: authorise, find a channel and a template, map the
parameters, preview, send, read the log.

Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/flow_quickstart.py
"""

from __future__ import annotations

import os
import sys

from qontak import Qontak, messages

TO = os.environ.get("QONTAK_EXAMPLE_TO", "0812-3456-7890")


def main() -> int:
    client = Qontak()  # QONTAK_CLIENT_ID / QONTAK_CLIENT_SECRET from the environment or .env
    channel = client.channels.list(target_channel="wa_cloud")[0]
    otp = client.templates.find(name="login_otp", language="id")
    msg = messages.otp(to=TO, name="Budi", code="123456", template=otp, channel=channel)
    print(client.preview(msg))  # what Budi will see; no request sent
    sent = client.broadcasts.send_direct(msg)  # validated against the template first
    rows = client.broadcasts.wait(sent.id, timeout=60, interval=0.5)  # pages are followed
    for row in rows:
        print(row.contact_phone_number, row.status)
    client.close()
    return 0 if rows and rows[0].status == "read" else 1


if __name__ == "__main__":
    sys.exit(main())
