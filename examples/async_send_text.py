"""Send (asyncio) a text template with variables ({{1}} = name, {{2}} = product).

Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/async_send_text.py

``QONTAK_EXAMPLE_TO`` overrides the recipient. Exit status 0 when the message was read.
"""

from __future__ import annotations

import asyncio
import os
import sys

from qontak import AsyncQontak, messages

TO = os.environ.get("QONTAK_EXAMPLE_TO", "0812-3456-7890")


async def main() -> int:
    async with AsyncQontak() as client:
        channel = (await client.channels.list())[0]
        template = await client.templates.find("order_update", language="id")
        message = messages.text(
            TO,
            {"name": "Budi", "product": "Sepatu Lari"},
            template=template,
            channel=channel,
            name="Budi",
        )
        print(await client.preview(message))
        sent = await client.broadcasts.send_direct(message)
        print("broadcast", sent.id)
        rows = await client.broadcasts.wait(sent.id, timeout=60, interval=0.5)
        for row in rows:
            print(row.contact_phone_number, row.status, row.whatsapp_error_message or "")
        return 0 if rows and all(row.status == "read" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
