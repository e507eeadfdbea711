"""When a send's answer is lost, do not send again: reconcile first.

A read timeout or a dropped connection after the request was written raises
DeliveryUnknownError (never retried automatically). This script then looks for the
broadcast with find_sent() and only reports what happened. Try it with a fault:

    qontak sandbox --faults lost_response=1.0,scope=send
Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/flow_delivery_unknown.py
"""

from __future__ import annotations

import os
import sys

from qontak import DeliveryUnknownError, Qontak, messages

TO = os.environ.get("QONTAK_EXAMPLE_TO", "0812-3456-7890")


def main() -> int:
    with Qontak() as client:
        channel = client.channels.list()[0]
        template = client.templates.find("welcome_message", language="id")
        message = messages.text(TO, template=template, channel=channel, name="Budi")
        try:
            sent = client.broadcasts.send_direct(message)
            print("sent; broadcast", sent.id)
            return 0
        except DeliveryUnknownError as exc:
            print(f"outcome unknown ({exc.cause or exc}); reconciling instead of resending")
            found = client.broadcasts.find_sent(
                exc.to_number or message.to_number,
                message_template_id=exc.message_template_id,
            )
            if found:
                print("it was accepted after all: broadcast", found[-1].id)
                return 0
            print("not found: safe to send again")
            return 2


if __name__ == "__main__":
    sys.exit(main())
