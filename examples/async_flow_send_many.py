"""Send to several recipients concurrently; the client's shared rate limiter paces the sends
(60 direct sends a minute by default), and each result is awaited on its own.

Runs against the real API or the local sandbox; settings come from the environment (or .env):

    qontak sandbox                    # in another terminal; prints these values
    export QONTAK_BASE_URL=http://127.0.0.1:8765
    export QONTAK_CLIENT_ID=sandbox-client-id QONTAK_CLIENT_SECRET=sandbox-client-secret
    python examples/async_flow_send_many.py
"""

from __future__ import annotations

import asyncio
import sys

from qontak import AsyncQontak, Channel, Template, messages

RECIPIENTS = [("Budi", "0812-3456-7890"), ("Sari", "0813-1111-2222"), ("Andi", "0857-3333-4444")]


async def send_one(
    client: AsyncQontak, template: Template, channel: Channel, name: str, number: str
) -> str:
    message = messages.text(
        number, [name, "Sepatu Lari"], template=template, channel=channel, name=name
    )
    sent = await client.broadcasts.send_direct(message)
    rows = await client.broadcasts.wait(sent.id, timeout=60, interval=0.5)
    return f"{name} {sent.id} {rows[0].status if rows else '?'}"


async def main() -> int:
    async with AsyncQontak() as client:
        channel = (await client.channels.list())[0]
        template = await client.templates.find("order_update", language="id")
        results = await asyncio.gather(
            *(send_one(client, template, channel, n, p) for n, p in RECIPIENTS)
        )
    for line in results:
        print(line)
    return 0 if all(line.endswith(" read") for line in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
