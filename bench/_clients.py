"""The clients under test: the SDK, and the bare baselines it is measured against.

A baseline is what a careful user would write by hand: one connection pool, the Mekari
HMAC signature computed inline, the JSON body serialised per request and every answer
decoded. The SDK does more per call (validation, models, retries, rate limiting); the
benchmark shows what that costs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

import httpx

from qontak import AsyncQontak, Qontak, messages
from qontak.models import Template

CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
CHANNEL_ID = "56b60c3c-0123-46af-958b-32f3ad12ee37"
TEMPLATE_ID = "d3e1083c-66ea-410b-b807-1d84182ffa82"  # order_update (id): body {{1}} {{2}}
SEND_PATH = "/broadcasts/whatsapp/direct"
GET_PATH = f"/templates/{TEMPLATE_ID}/whatsapp"
ORDER_UPDATE = Template(
    id=TEMPLATE_ID,
    name="order_update",
    language="id",
    body="Halo {{1}}, pesanan {{2}} sudah dikirim.",
    status="APPROVED",
    category="UTILITY",
)


def message(i: int = 0) -> Any:
    """The benchmark's send: the sandbox's ``order_update`` template, two variables."""
    return messages.text(
        "0812-3456-7890", ["Budi", f"INV-{i}"], template=ORDER_UPDATE, channel=CHANNEL_ID
    )


def prebuilt(count: int = 64) -> list[Any]:
    """Messages built before timing starts: the SDK is measured from ``send_direct`` on,
    as the baselines are from a ready dict on."""
    return [message(i) for i in range(count)]


def wire(i: int = 0) -> dict[str, Any]:
    """The same send as a hand-written client would build it: a plain dict."""
    return {
        "to_name": "Budi",
        "to_number": "6281234567890",
        "message_template_id": TEMPLATE_ID,
        "channel_integration_id": CHANNEL_ID,
        "language": {"code": "id"},
        "parameters": {
            "body": [
                {"key": "1", "value_text": "Budi", "value": "1"},
                {"key": "2", "value_text": f"INV-{i}", "value": "2"},
            ]
        },
    }


def bare_headers(method: str, path: str) -> dict[str, str]:
    """The Mekari HMAC headers, written out by hand (what a baseline client does)."""
    date = formatdate(time.time(), usegmt=True)
    line = f"date: {date}\n{method} {path} HTTP/1.1".encode()
    digest = hmac.new(CLIENT_SECRET.encode(), line, hashlib.sha256).digest()
    signature = base64.b64encode(digest).decode()
    return {
        "Date": date,
        "Authorization": f'hmac username="{CLIENT_ID}", algorithm="hmac-sha256", '
        f'headers="date request-line", signature="{signature}"',
        "Accept": "application/json",
    }


# -- sync -------------------------------------------------------------------------------------
def sdk_sync(base_url: str) -> Qontak:
    """The SDK's blocking client with its defaults, rate limiting off (the sandbox's too)."""
    return Qontak(CLIENT_ID, CLIENT_SECRET, base_url=base_url, rate_limits=False, env_file=None)


def sync_calls(base_url: str, kind: str) -> tuple[Callable[[int], Any], Callable[[], None]]:
    """``(call, close)`` for one of ``sdk-send``, ``sdk-get``, ``bare-send``, ``bare-get``."""
    if kind.startswith("sdk"):
        client = sdk_sync(base_url)
        if kind == "sdk-send":
            msgs = prebuilt()
            return (lambda i: client.broadcasts.send_direct(msgs[i % len(msgs)])), client.close
        return (lambda i: client.templates.get(TEMPLATE_ID)), client.close
    http = httpx.Client()
    prefix = httpx.URL(base_url).raw_path.decode()
    if kind == "bare-send":

        def send(i: int) -> Any:
            body = wire(i)
            headers = bare_headers("POST", prefix + SEND_PATH)
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode()
            response = http.post(base_url + SEND_PATH, content=content, headers=headers)
            response.raise_for_status()
            return response.json()

        return send, http.close

    def get(i: int) -> Any:
        response = http.get(base_url + GET_PATH, headers=bare_headers("GET", prefix + GET_PATH))
        response.raise_for_status()
        return response.json()

    return get, http.close


# -- async ------------------------------------------------------------------------------------
def sdk_async(base_url: str, **options: Any) -> AsyncQontak:
    """The SDK's async client, rate limiting off (the sandbox's too)."""
    return AsyncQontak(
        CLIENT_ID, CLIENT_SECRET, base_url=base_url, rate_limits=False, env_file=None, **options
    )


async def run_in_flight(call: Callable[[int], Awaitable[Any]], total: int, in_flight: int) -> float:
    """Run ``total`` calls with ``in_flight`` workers; returns the wall-clock seconds."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await call(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return time.perf_counter() - start


async def sdk_async_calls(
    base_url: str, kind: str, in_flight: int, **options: Any
) -> tuple[Callable[[int], Awaitable[Any]], Callable[[], Awaitable[None]]]:
    """``(call, aclose)`` for ``sdk-send`` or ``sdk-get`` with a pool sized for ``in_flight``."""
    client = sdk_async(base_url, max_connections=in_flight, **options)
    if kind == "sdk-send":
        msgs = prebuilt()

        async def send(i: int) -> Any:
            return await client.broadcasts.send_direct(msgs[i % len(msgs)])

        return send, client.aclose

    async def get(i: int) -> Any:
        return await client.templates.get(TEMPLATE_ID)

    return get, client.aclose


async def bare_aiohttp_calls(
    base_url: str, kind: str, in_flight: int
) -> tuple[Callable[[int], Awaitable[Any]], Callable[[], Awaitable[None]]]:
    """``(call, aclose)``: a bare aiohttp session and the hand-written signer."""
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight))
    prefix = httpx.URL(base_url).raw_path.decode()
    if kind == "bare-send":

        async def send(i: int) -> Any:
            body = wire(i)
            headers = bare_headers("POST", prefix + SEND_PATH)
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
            async with session.post(base_url + SEND_PATH, data=data, headers=headers) as r:
                r.raise_for_status()
                return await r.json()

        return send, session.close

    async def get(i: int) -> Any:
        headers = bare_headers("GET", prefix + GET_PATH)
        async with session.get(base_url + GET_PATH, headers=headers) as r:
            r.raise_for_status()
            return await r.json()

    return get, session.close
