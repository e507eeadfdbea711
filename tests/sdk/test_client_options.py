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

from qontak import (
    APIConnectionError,
    AsyncQontak,
    ConfigurationError,
    Qontak,
    RetryPolicy,
    Rule,
    ValidationError,
    messages,
)
from qontak._logging import logger
from qontak.sandbox import SandboxConfig

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


# --- Settings and per-call options are checked before anything is built or sent -----------------

MSG = {
    "to_name": "Budi",
    "to_number": "6281234567890",
    "message_template_id": "tpl",
    "channel_integration_id": "ch",
    "language": {"code": "id"},
    "parameters": {},
}


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"timeout": 10**400}, "timeout"),  # OverflowError before
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": httpx.Timeout(float("nan"))}, "timeout.connect"),
        ({"max_retries": "2"}, "max_retries"),  # accepted before, then a TypeError mid-send
        ({"max_retries": float("nan")}, "max_retries"),  # never stopped retrying
        ({"max_retries": 2.0}, "max_retries"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"max_retries": 10**6}, "max_retries"),
        ({"retry": RetryPolicy(max_retries=float("nan"))}, "retry.max_retries"),  # type: ignore[arg-type]
        ({"retry": RetryPolicy(backoff_base=float("inf"))}, "retry.backoff_base"),
        ({"retry": RetryPolicy(jitter=-1)}, "retry.jitter"),
        ({"retry": "fast"}, "retry"),
        ({"rate_limits": "yes"}, "rate_limits"),
        ({"rate_limits": {"all": Rule(1, 1.0)}}, "rate_limits.all"),
        ({"rate_limits": {"all": [(1, 1.0)]}}, "rate_limits.all"),
        ({"http_client": object()}, "http_client"),
        ({"http_client": httpx.AsyncClient()}, "http_client"),
        ({"sleep": 5}, "sleep"),
        ({"clock": "now"}, "clock"),
        ({"default_region": None}, "default_region"),
        ({"default_region": 62}, "default_region"),
    ],
)
def test_bad_constructor_settings_are_configuration_errors(
    kwargs: dict[str, object], setting: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Qontak("a", "b", env_file=None, **kwargs)  # type: ignore[arg-type]
    assert info.value.setting == setting


@pytest.mark.anyio
async def test_async_client_checks_the_same_settings() -> None:
    with pytest.raises(ConfigurationError, match="http_client"):
        AsyncQontak("a", "b", env_file=None, http_client=httpx.Client())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_retries"):
        AsyncQontak("a", "b", env_file=None, max_retries=float("nan"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": "5"}, {"timeout": 10**400}, {"max_retries": "2"}, {"max_retries": float("nan")}],
)
def test_with_options_checks_like_the_constructor(make_client, kwargs) -> None:
    client = make_client()
    with pytest.raises(ConfigurationError) as info:
        client.with_options(**kwargs)
    assert info.value.setting == next(iter(kwargs))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": "5"},
        {"timeout": float("nan")},
        {"timeout": -1},
        {"timeout": 0},
        {"timeout": 10**400},
        {"max_retries": "2"},
        {"max_retries": float("nan")},
        {"max_retries": -1},
        {"max_retries": True},
    ],
)
def test_bad_per_call_options_send_nothing(make_client, server, kwargs) -> None:
    client = make_client()
    with pytest.raises(ValidationError) as info:
        client.broadcasts.send_direct(MSG, validate=False, **kwargs)
    assert info.value.field == next(iter(kwargs))
    assert server.requests == []


def test_per_call_max_retries_string_after_an_accept_never_surfaces_as_type_error() -> None:
    # The repro: error_after=1 under scope=send. Before, the first send was accepted
    # and the raw TypeError came from the retry decision of the second.
    from qontak.sandbox import FaultConfig
    from qontak.testing import sandbox_client

    with sandbox_client(config=SandboxConfig(faults=FaultConfig(error_after=1, scope="send"))) as (
        client,
        box,
    ):
        channel = client.channels.list()[0]
        template = next(t for t in client.templates.iter() if not t.body_placeholders)
        msg = messages.text("6281234567890", template=template, channel=channel)
        for _ in range(2):
            with pytest.raises(ValidationError, match="max_retries"):
                client.broadcasts.send_direct(msg, max_retries="2")  # type: ignore[arg-type]
        assert box.messages() == []


def test_other_resource_arguments_are_checked_before_a_request(make_client, server) -> None:
    client = make_client()
    calls = [
        (lambda: client.templates.get("x" * 70_000), "template_id"),  # httpx.InvalidURL before
        (lambda: client.templates.get("x\ud800"), "template_id"),  # UnicodeEncodeError before
        (lambda: client.templates.get(".."), "template_id"),  # httpx would resolve it away
        (lambda: client.templates.get(5), "template_id"),
        (lambda: client.channels.get(""), "channel_id"),
        (lambda: client.broadcasts.log("a b"), "broadcast_id"),
        (lambda: client.templates.list(query="a\ud800"), "params.query"),
        (lambda: client.templates.list(query={"a": 1}), "params.query"),
        (lambda: client.templates.list(query="x" * 20_000), "params.query"),
        (lambda: client.channels.list(limit=float("nan")), "params.limit"),
        (lambda: client.broadcasts.list(start_date=float("nan")), "start_date"),
        (lambda: client.broadcasts.list(start_date=10**30), "start_date"),
        (lambda: client.broadcasts.list(end_date=object()), "end_date"),
        (lambda: client.broadcasts.wait("b", timeout=float("nan")), "timeout"),
        (lambda: client.broadcasts.wait("b", interval=-1), "interval"),
        (lambda: client.broadcasts.wait("b", until=5), "until"),
        (lambda: client.templates.find(5), "name"),
        (lambda: client.templates.find("otp", language=5), "language"),
        (lambda: client.file_uploader.upload(5), "file"),
        (lambda: client.file_uploader.upload(b"x", filename="a\r\nb.pdf"), "filename"),
        (
            lambda: client.file_uploader.upload(b"x", filename="a.pdf", content_type="a\r\nX: y"),
            "content_type",
        ),
        (lambda: client.file_uploader.upload("no\x00such"), "file"),
        (lambda: client.preview({**MSG, "to_name": "a\x00"}), "to_name"),
    ]
    for call, field in calls:
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.field == field, (field, info.value)
    assert server.requests == []


def test_wait_accepts_one_status_as_text(make_client, server) -> None:
    # A str was iterated into letters before, so the wait never ended before its timeout.
    row = {"id": "r", "contact_phone_number": "6281234567890", "status": "read"}
    server.default = lambda r: httpx.Response(200, json={"status": "success", "data": [row]})
    rows = make_client().broadcasts.wait("b", until="read", timeout=60)
    assert [r.status for r in rows] == ["read"] and len(server.requests) == 1


def test_a_rule_that_could_never_stop_is_refused_when_made() -> None:
    for requests, per in ((1, float("nan")), (1, float("inf")), (0, 1.0), (True, 1.0)):
        with pytest.raises(ValidationError) as info:
            Rule(requests, per)  # type: ignore[arg-type]
        assert info.value.field == "rule"
