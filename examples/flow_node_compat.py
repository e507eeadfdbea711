"""Ported from the Node client: the same method names and the README's dict, unchanged.

Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/flow_node_compat.py
"""

from __future__ import annotations

import os
import sys

from qontak import QontakClient


def main() -> int:
    api = QontakClient()  # credentials from the environment, like Qontak()
    templates = api.template.get_list_whatsapp_template()
    channels = api.integration.get_integration_list({"target_channel": "wa_cloud"})
    otp = next(t for t in templates["data"] if t["name"] == "login_otp" and t["language"] == "id")
    response = api.broadcast.create_broadcast_direct(
        {
            "to_name": "Test User",
            "to_number": os.environ.get("QONTAK_EXAMPLE_TO", "6281234567890"),
            "message_template_id": otp["id"],
            "channel_integration_id": channels["data"][0]["id"],
            "language": {"code": "id"},
            "parameters": {
                "buttons": [{"index": "0", "type": "url", "value": "123456"}],
                "body": [{"key": "1", "value_text": "123456", "value": "otp"}],
            },
        }
    )
    broadcast_id = response["data"]["id"]
    log = api.broadcast.get_broadcast_log(broadcast_id)
    print(broadcast_id, [row["status"] for row in log["data"]])
    return 0 if response["status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
