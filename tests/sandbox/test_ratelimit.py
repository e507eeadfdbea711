"""Rate limits: 60/min on direct sends, 100/min with 10/s bursts overall, per client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from qontak import Qontak, RateLimitError
from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, RateLimitConfig, Sandbox

from .conftest import BASE, START, FakeClock, HmacAuth
from .examples import TEXT

SEND = BASE + "/broadcasts/whatsapp/direct"
TOO_MANY = {"status": "error", "error": {"code": 429, "messages": ["Too Many Requests"]}}


def _limits(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return (
        int(h["X-RateLimit-Limit"]),
        int(h["X-RateLimit-Remaining"]),
        int(h["X-RateLimit-Reset"]),
    )


def test_headers_on_every_authenticated_response(client: httpx.Client, clock: FakeClock) -> None:
    # START is 20 s into its minute, so the minute window resets in 40 s.
    assert START % 60 == 20
    ok = client.get(BASE + "/integrations")
    assert _limits(ok) == (100, 99, 40)
    sent = client.post(SEND, json=TEXT)
    assert sent.status_code == 201
    assert _limits(sent) == (60, 59, 40)
    clock.advance(1)
    missing = client.get(BASE + "/templates/nope/whatsapp")
    assert missing.status_code == 404
    assert _limits(missing) == (100, 97, 39)


def test_direct_sends_are_limited_to_60_a_minute(
    client: httpx.Client, sandbox: Sandbox, clock: FakeClock
) -> None:
    clock.advance(40)  # start of a fresh minute
    statuses = []
    for i in range(61):
        if i and i % 10 == 0:
            clock.advance(1)  # stay inside one minute but under the 10/s burst
        statuses.append(client.post(SEND, json=TEXT))
    assert [r.status_code for r in statuses[:60]] == [201] * 60
    refused = statuses[60]
    assert refused.status_code == 429
    assert refused.json() == TOO_MANY
    limit, remaining, reset = _limits(refused)
    assert (limit, remaining) == (60, 0)
    assert refused.headers["Retry-After"] == str(reset)
    assert 0 < reset <= 60
    assert len(sandbox.messages()) == 60  # the refused send did nothing
    # Reads still work: they count against the overall 100/min only.
    assert client.get(BASE + "/integrations").status_code == 200
    clock.advance(reset)
    assert client.post(SEND, json=TEXT).status_code == 201


def test_bursts_over_10_a_second_are_refused(client: httpx.Client, clock: FakeClock) -> None:
    responses = [client.get(BASE + "/integrations") for _ in range(11)]
    assert [r.status_code for r in responses] == [200] * 10 + [429]
    assert _limits(responses[-1]) == (10, 0, 1)
    assert responses[-1].headers["Retry-After"] == "1"
    clock.advance(1)
    assert client.get(BASE + "/integrations").status_code == 200


def test_overall_limit_is_100_a_minute(client: httpx.Client, clock: FakeClock) -> None:
    clock.advance(40)
    codes = []
    for i in range(101):
        if i and i % 10 == 0:
            clock.advance(1)
        codes.append(client.get(BASE + "/integrations").status_code)
    assert codes == [200] * 100 + [429]


def test_limits_are_per_client(sandbox: Sandbox, client: httpx.Client, clock: FakeClock) -> None:
    sandbox.add_credentials("other", "other-secret")
    for _ in range(10):
        client.get(BASE + "/integrations")
    assert client.get(BASE + "/integrations").status_code == 429
    other = httpx.Client(
        transport=client._transport,
        base_url="http://sandbox.local",
        auth=HmacAuth(clock, "other", "other-secret"),
    )
    assert other.get(BASE + "/integrations").status_code == 200


def test_limits_can_be_switched_off(
    sandbox: Sandbox, client: httpx.Client, clock: FakeClock
) -> None:
    sandbox.set_rate_limits(RateLimitConfig(enabled=False))
    codes = {client.get(BASE + "/integrations").status_code for _ in range(30)}
    assert codes == {200}


def test_limits_are_configurable(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_rate_limits(RateLimitConfig(direct_per_minute=2))
    codes = [client.post(SEND, json=TEXT).status_code for _ in range(3)]
    assert codes == [201, 201, 429]


def test_429_with_headers_through_real_uvicorn(live: httpx.Client) -> None:
    responses = [live.get(BASE + "/integrations") for _ in range(11)]
    assert responses[-1].status_code == 429
    assert responses[-1].json() == TOO_MANY
    assert responses[-1].headers["X-RateLimit-Remaining"] == "0"
    assert responses[-1].headers["Retry-After"] == "1"


def test_unauthenticated_responses_carry_no_limit_headers_and_use_no_quota(
    sandbox: Sandbox, client: httpx.Client, raw_client: httpx.Client
) -> None:
    # Deliberate (see the _gateway docstring): limits belong to a verified client.
    for _ in range(20):
        refused = raw_client.get(BASE + "/integrations")
        assert refused.status_code == 401
        assert not any(h.lower().startswith("x-ratelimit") for h in refused.headers)
    assert _limits(client.get(BASE + "/integrations")) == (100, 99, 40)


def test_limits_as_text_use_the_clients_syntax() -> None:
    assert RateLimitConfig.parse("send=600/min,all=1000/min,burst=20/s") == RateLimitConfig(
        direct_per_minute=600, overall_per_minute=1000, burst_per_second=20
    )
    assert RateLimitConfig.parse("burst=3/s") == RateLimitConfig(burst_per_second=3)
    assert RateLimitConfig.parse("off") == RateLimitConfig(enabled=False)
    text = "send=600/min,all=1000/min,burst=20/s"
    assert RateLimitConfig.parse(text).describe() == text
    assert RateLimitConfig().describe() == "send=60/min,all=100/min,burst=10/s"
    assert RateLimitConfig(enabled=False).describe() == "off"


def test_bad_limits_text_is_one_clear_line() -> None:
    for text, words in [
        ("send=10/s", "the sandbox counts send per minute; write send=N/min"),
        ("burst=60/min", "counts burst per second; write burst=N/s"),
        ("sned=1/min", "unknown limit 'sned'"),
        ("", "empty"),
    ]:
        try:
            RateLimitConfig.parse(text)
        except ValueError as exc:
            assert words in str(exc) and "\n" not in str(exc), str(exc)
        else:
            raise AssertionError(f"{text!r} was accepted")


def test_limits_from_text_are_enforced(
    sandbox: Sandbox, client: httpx.Client, clock: FakeClock
) -> None:
    sandbox.set_rate_limits(RateLimitConfig.parse("send=2/min,burst=3/s"))
    sends = [client.post(SEND, json=TEXT).status_code for _ in range(3)]
    assert sends == [201, 201, 429]
    clock.advance(1)
    reads = [client.get(BASE + "/integrations").status_code for _ in range(4)]
    assert reads == [200, 200, 200, 429]


def test_sandbox_command_refuses_bad_limits_in_one_line() -> None:
    from typer.testing import CliRunner

    from qontak.cli import app

    for args, words in [
        (["--rate-limits", "send=10/s"], "--rate-limits: the sandbox counts send per minute"),
        (["--rate-limits", "off", "--no-rate-limits"], "either --rate-limits or"),
    ]:
        result = CliRunner().invoke(app, ["sandbox", "--port", "0", *args])
        assert result.exit_code == 2, result.output
        assert words in result.output and result.output.strip().count("\n") == 0


def test_sandbox_command_serves_with_the_limits_it_was_given(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("qontak")
    if not script.exists():
        pytest.skip("the qontak script is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("QONTAK_")}
    proc = subprocess.Popen(
        [str(script), "sandbox", "--port", str(port), "--rate-limits", "all=2/min", "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "sandbox did not start"
            time.sleep(0.05)  # waiting for a socket to open, not for a clock
        client = Qontak(
            SANDBOX_CLIENT_ID,
            SANDBOX_CLIENT_SECRET,
            base_url=f"http://127.0.0.1:{port}",
            env_file=None,
            rate_limits=False,
            max_retries=0,
        )
        outcomes = []
        for _ in range(5):  # two a minute: even across a minute boundary, one is refused
            try:
                client.channels.list()
                outcomes.append("ok")
            except RateLimitError:
                outcomes.append("429")
        client.close()
        assert outcomes[:2] == ["ok", "ok"] and "429" in outcomes, outcomes
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
