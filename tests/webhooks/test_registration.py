"""Webhook registration against the sandbox, and the sandbox's retries with backoff.

``client.webhooks.register/get`` speak ``PUT/GET /message_interactions`` to the sandbox in
process; a registered URL decides where the sandbox posts; a failed callback is retried per
message with capped exponential backoff, later statuses of the same message waiting behind it;
and the whole round trip (register → send → callbacks → receiver store) runs over loopback.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from qontak import Qontak, UnprocessableEntityError, ValidationError, messages
from qontak._pipeline import ApiRequest
from qontak.resources.webhooks import REGISTRATION_PATH
from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, SandboxConfig
from qontak.testing import sandbox_client
from qontak.webhooks import SQLiteWebhookStore, WebhookReceiver

TOKEN = "reg-token-0123456789abcdef"
API = "/qontak/chat/v1"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def serve(app: Any, port: int = 0) -> Iterator[int]:
    """Serve an ASGI app with uvicorn on loopback in a thread; yields the port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "receiver did not start"
        time.sleep(0.005)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(10)


def _send(client: Qontak, numbers: list[str]) -> None:
    template = client.templates.find("order_update", language="id")
    channel = client.channels.list()[0]
    for number in numbers:
        client.broadcasts.send_direct(
            messages.text(number, ["Budi", "sepatu"], template=template, channel=channel)
        )


class Hooks:
    """A receiver behind httpx's MockTransport: records each POST, refuses while told to."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.refuse: set[str] = set()
        self.attempts: list[tuple[str, str]] = []
        self.client = httpx.Client(transport=httpx.MockTransport(self._handle))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content)
        self.attempts.append((body["external_id"], body["status"]))
        if body["external_id"] in self.refuse or "*" in self.refuse:
            return httpx.Response(503)
        self.posts.append((str(request.url), body))
        return httpx.Response(200)


def test_register_and_get_speak_message_interactions_in_process() -> None:
    with sandbox_client() as (client, box):
        before = client.webhooks.get()
        assert (before.status_message, before.urls) == (False, ())
        url = f"https://shop.example/qontak/{TOKEN}"
        settings = client.webhooks.register(url)
        assert settings.status_message and not settings.receive_message_from_customer
        assert settings.urls == (url,)
        hooks = settings.raw["status_message"]["webhooks"]
        assert hooks[0]["event"] == "message_interaction" and hooks[0]["id"]
        assert client.webhooks.get() == settings
        assert box.request_count("PUT", path_suffix=REGISTRATION_PATH) == 1

        # The SDK refuses a bad URL before any request; the sandbox refuses a bad body too.
        with pytest.raises(ValidationError):
            client.webhooks.register("ftp://nowhere")
        assert box.request_count("PUT") == 1
        bad = {"status_message": "yes", "url": url}
        with pytest.raises(UnprocessableEntityError):
            client._request(ApiRequest("PUT", REGISTRATION_PATH, json=bad))
        assert client.webhooks.get() == settings


def test_the_registered_url_decides_where_callbacks_go() -> None:
    clock = Clock()
    box = Sandbox(SandboxConfig(clock=clock, webhook_url="http://configured.example/in"))
    hooks = Hooks()
    try:
        with sandbox_client(box) as (client, _):
            _send(client, ["6281200000001"])
            clock.now += 5
            client.webhooks.register("http://registered.example/in/" + TOKEN)
            assert box.webhooks.deliver_due(hooks.client) == 3
            assert {u for u, _ in hooks.posts} == {"http://registered.example/in/" + TOKEN}

            client.webhooks.register("http://registered.example/in/" + TOKEN, status_message=False)
            _send(client, ["6281200000002"])
            clock.now += 5
            assert box.webhooks.deliver_due(hooks.client) == 0  # switched off: nothing goes out
    finally:
        hooks.client.close()
        box.close()


def test_a_failing_message_backs_off_alone_and_keeps_its_order() -> None:
    clock = Clock()
    box = Sandbox(SandboxConfig(clock=clock, webhook_url="http://hooks.example/in"))
    box.webhooks.retries.policy.cap = 4.0
    box.webhooks.retries.policy.max_attempts = 8
    hooks = Hooks()
    try:
        with sandbox_client(box) as (client, _):
            _send(client, ["6281200000011", "6281200000012"])
            clock.now += 5
            stuck = box.messages()[0]["whatsapp_message_id"]
            hooks.refuse = {stuck}
            assert box.webhooks.deliver_due(hooks.client) == 3  # the other message is not held
            tries: list[float] = []
            for _ in range(40):  # 20 s of sandbox time, polled every 0.5 s
                before = len(hooks.attempts)
                box.webhooks.deliver_due(hooks.client)
                tries += [clock.now] * (len(hooks.attempts) - before)
                clock.now += 0.5
            # One attempt per backoff, never the later statuses while the first one fails.
            gaps = [round(b - a, 1) for a, b in itertools.pairwise(tries)]
            assert gaps[:4] == [2.0, 4.0, 4.0, 4.0], gaps  # 1 s (+ poll) → 2 → 4 → capped
            assert {s for e, s in hooks.attempts if e == stuck} == {"sent"}

            hooks.refuse = set()
            clock.now += 4
            assert box.webhooks.deliver_due(hooks.client) == 3
            order = [b["status"] for _, b in hooks.posts if b["external_id"] == stuck]
            assert order == ["sent", "delivered", "read"]
            assert len(box.webhooks.retries) == 0
            assert box.webhooks.deliver_due(hooks.client) == 0  # each posted once

            # A receiver that never answers: given up after max_attempts, not forever.
            hooks.refuse = {"*"}
            _send(client, ["6281200000013"])
            clock.now += 5
            for _ in range(30):
                box.webhooks.deliver_due(hooks.client)
                clock.now += 4
            assert box.webhooks.retries.dropped >= 1
    finally:
        hooks.client.close()
        box.close()


def test_round_trip_over_loopback(tmp_path: Path) -> None:
    store = SQLiteWebhookStore(tmp_path / "events.db")
    receiver = WebhookReceiver(store, token=TOKEN)
    box = Sandbox(SandboxConfig(delivery_delays=(0.01, 0.02, 0.03), webhook_poll_seconds=0.02))
    try:
        with serve(receiver) as port, box.run_in_thread() as base:
            client = Qontak(
                SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, base_url=base + API, env_file=None
            )
            with client:
                # No URL at start: the poller starts when one is registered.
                settings = client.webhooks.register(f"http://127.0.0.1:{port}/hooks/{TOKEN}")
                assert settings.status_message
                _send(client, [f"62812000001{i:02d}" for i in range(5)])
                deadline = time.monotonic() + 10
                while store.count() < 15 and time.monotonic() < deadline:
                    time.sleep(0.02)
            assert store.count() == 15
            for message in box.messages():
                assert store.status(message["whatsapp_message_id"]).status == "read"
            assert box.request_count("GET", path_suffix="/log") == 0
            assert box.request_count("GET", path_suffix="/broadcasts/whatsapp") == 0
    finally:
        box.close()
        store.close()


def test_the_async_client_registers_too() -> None:
    import anyio

    from qontak.testing import async_sandbox_client

    async def main() -> None:
        async with async_sandbox_client() as (client, box):
            url = f"https://shop.example/qontak/{TOKEN}"
            settings = await client.webhooks.register(url, receive_message_from_customer=True)
            assert settings.receive_message_from_customer and settings.urls == (url,)
            assert await client.webhooks.get() == settings
            assert box.request_count(path_suffix=REGISTRATION_PATH) == 2

    anyio.run(main)
