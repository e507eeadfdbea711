"""The documented flow with AsyncQontak: same calls, awaited.

Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/async_flow_quickstart.py
"""

from __future__ import annotations

import asyncio
import os
import sys

from qontak import AsyncQontak, messages

TO = os.environ.get("QONTAK_EXAMPLE_TO", "0812-3456-7890")


async def main() -> int:
    async with AsyncQontak() as client:
        channel = (await client.channels.list(target_channel="wa_cloud"))[0]
        otp = await client.templates.find(name="login_otp", language="id")
        msg = messages.otp(to=TO, name="Budi", code="123456", template=otp, channel=channel)
        print(await client.preview(msg))
        sent = await client.broadcasts.send_direct(msg)
        rows = await client.broadcasts.wait(sent.id, timeout=60, interval=0.5)
        for row in rows:
            print(row.contact_phone_number, row.status)
        return 0 if rows and rows[0].status == "read" else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
