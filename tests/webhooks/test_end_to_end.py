"""Sandbox → real sockets → ``qontak webhooks serve`` → the event store, with the receiver killed.

The sandbox plays Qontak: it POSTs every status change and tries again later when the receiver
does not answer 2xx, as a real provider would. The receiver is a real process on loopback; it
is SIGKILLed while events stream in and started again on the same port. Every status of every
message must be kept exactly once, and no log was polled to learn them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qontak import Qontak, messages
from qontak.sandbox import Sandbox, SandboxConfig
from qontak.testing import sandbox_client
from qontak.webhooks import SQLiteWebhookStore

TOKEN = "e2e-token-0123456789abcdef"


class Receiver:
    def __init__(self, db: Path, port: int = 0) -> None:
        env = {**os.environ, "QONTAK_WEBHOOK_TOKEN": TOKEN}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qontak",
                "webhooks",
                "serve",
                "--db",
                str(db),
                "--port",
                str(port),
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        assert TOKEN not in line
        self.port = int(match.group(1))
        self._wait_listening()

    def _wait_listening(self) -> None:
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise AssertionError("receiver did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    rec = Receiver(tmp_path / "events.db")
    yield rec
    rec.stop()


def _send(client: Qontak, count: int, start: int) -> None:
    template = client.templates.find("order_update", language="id")
    channel = client.channels.list()[0]
    for i in range(start, start + count):
        msg = messages.text(
            f"62812000{i:05d}", ["Budi", "sepatu"], template=template, channel=channel
        )
        client.broadcasts.send_direct(msg)


def test_every_status_arrives_once_through_a_receiver_crash(
    tmp_path: Path, receiver: Receiver
) -> None:
    url = f"http://127.0.0.1:{receiver.port}/{TOKEN}"
    box = Sandbox(SandboxConfig(webhook_url=url, delivery_delays=(0.1, 0.2, 0.3)))
    try:
        with sandbox_client(box) as (client, _):
            _send(client, 20, 0)
            box.advance(1.0)

            # Kill the receiver while the sandbox is posting.
            store = SQLiteWebhookStore(tmp_path / "events.db")

            def killer() -> None:
                while store.count() < 20:
                    time.sleep(0.005)
                receiver.kill()

            thread = threading.Thread(target=killer)
            thread.start()
            posted_before = box.webhooks.deliver_due()
            thread.join(10)
            assert posted_before < 20 * 3, "the kill came too late to test anything"

            restarted = Receiver(tmp_path / "events.db", port=receiver.port)
            try:
                _send(client, 5, 20)
                box.advance(1.0)
                for _ in range(5):  # the sandbox retries what was not acknowledged
                    box.advance(box.webhooks.retries.policy.cap)  # every backoff is over
                    if box.webhooks.deliver_due() == 0:
                        break
            finally:
                restarted.stop()

            assert len(box.messages()) == 25
            assert store.count() == 25 * 3  # sent, delivered, read: each kept once
            wamids = {
                e.external_id for _, e in store.events_after(0, limit=1000) if e.status == "read"
            }
            assert len(wamids) == 25
            for wamid in wamids:
                assert store.status(wamid).status == "read"
    finally:
        box.close()
