"""Client construction: environment switches, proxies, bad settings, shared budgets."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading

import httpx
import pytest

from qontak import APIConnectionError, ConfigurationError, Qontak, Rule
from qontak._logging import logger

from ..conftest import CLIENT_ID, CLIENT_SECRET


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        Qontak("a", "b", env_file=None, timeout="5")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="default_region"):
        Qontak("a", "b", env_file=None, default_region="Indonesia")
    with Qontak("a", "b", env_file=None, default_region="id") as client:
        assert client.default_region == "ID"


def test_qontak_env_selects_the_named_environment(monkeypatch) -> None:
    monkeypatch.setenv("QONTAK_ENV", "staging")
    with Qontak("a", "b", env_file=None) as client:
        assert client.base_url == "https://api.mekari.io/qontak/chat/v1"


def test_qontak_log_switches_on_redacted_debug_logging(monkeypatch, make_client, server, capsys):
    monkeypatch.setenv("QONTAK_LOG", "debug")
    old_level = logger.level
    try:
        make_client().channels.list()
        err = capsys.readouterr().err
        assert "request method=GET path=/integrations" in err
        assert CLIENT_SECRET not in err
    finally:
        for handler in [h for h in logger.handlers if getattr(h, "_qontak", False)]:
            logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert not [h for h in logging.getLogger("qontak").handlers if getattr(h, "_qontak", False)]


def test_https_proxy_from_the_environment_is_used(monkeypatch) -> None:
    """A real CONNECT arrives at a proxy on loopback named only by HTTPS_PROXY."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    seen: list[bytes] = []

    def proxy() -> None:
        conn, _ = listener.accept()
        with conn:
            seen.append(conn.recv(4096))
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=proxy, daemon=True)
    thread.start()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{listener.getsockname()[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with (
        Qontak(CLIENT_ID, CLIENT_SECRET, env_file=None, max_retries=0) as client,
        pytest.raises(APIConnectionError),
    ):
        client.channels.list()
    thread.join(timeout=5)
    listener.close()
    assert seen and seen[0].startswith(b"CONNECT api.mekari.com:443 ")


def test_with_options_copies_share_one_rate_budget(make_client, server, clock) -> None:
    client = make_client(rate_limits={"all": [Rule(1, 60.0)]})
    quick = client.with_options(timeout=1, max_retries=0)
    client.channels.list()
    start = clock.now
    quick.channels.list()  # the copy waits for the budget the original used
    assert clock.now - start == pytest.approx(60.0 * 1.02)  # the limiter's 2% safety margin
    assert quick.retry_policy.max_retries == 0 and client.retry_policy.max_retries == 2


def test_library_is_silent_when_logging_is_not_configured() -> None:
    # In a fresh interpreter (pytest itself configures logging), a failed send prints nothing.
    code = """
import httpx
from qontak import Qontak, DeliveryUnknownError
def boom(request):
    raise httpx.ReadTimeout("t")
http = httpx.Client(transport=httpx.MockTransport(boom))
client = Qontak("a", "b", env_file=None, http_client=http)
msg = {"to_name": "A", "to_number": "6281234567890", "message_template_id": "t",
       "channel_integration_id": "c", "language": {"code": "id"}, "parameters": {}}
try:
    client.broadcasts.send_direct(msg, validate=False)
except DeliveryUnknownError:
    print("unknown")
"""
    env = {k: v for k, v in os.environ.items() if k != "QONTAK_LOG"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stdout.strip() == "unknown"
    assert done.stderr == ""


def test_own_http_client_is_not_closed_by_the_sdk(server) -> None:
    http = httpx.Client(transport=server.transport())
    with Qontak(CLIENT_ID, CLIENT_SECRET, env_file=None, http_client=http) as client:
        client.channels.list()
    assert not http.is_closed
    http.close()


def test_default_timeouts_and_per_call_override_reach_the_transport(make_client, server) -> None:
    server.default = lambda r: httpx.Response(
        201 if r.method == "POST" else 200,
        json={"status": "success", "data": {"id": "b"} if r.method == "POST" else []},
    )
    client = make_client()
    client.channels.list()
    msg = {
        "to_name": "A",
        "to_number": "6281234567890",
        "message_template_id": "t",
        "channel_integration_id": "c",
        "language": {"code": "id"},
        "parameters": {},
    }
    client.broadcasts.send_direct(msg, validate=False, timeout=5)
    client.with_options(timeout=12).channels.list()
    default, per_call, copy = (r.extensions["timeout"] for r in server.requests)
    assert default == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}
    assert per_call["read"] == 5.0 and per_call["connect"] == 5.0
    assert copy["read"] == 12.0 and copy["connect"] == 5.0
