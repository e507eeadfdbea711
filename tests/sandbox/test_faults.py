"""Fault injection: seeded, reproducible, and honest about what was stored."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from qontak.sandbox import (
    ENV_FAULTS,
    DroppedConnection,
    FaultConfig,
    Sandbox,
    SandboxConfig,
    SyncASGITransport,
)

from .conftest import BASE, FakeClock, HmacAuth
from .examples import TEXT

SEND = BASE + "/broadcasts/whatsapp/direct"


def _box(clock: FakeClock, faults: FaultConfig) -> Sandbox:
    return Sandbox(SandboxConfig(clock=clock, faults=faults))


@pytest.fixture
def make(clock: FakeClock) -> Iterator[Any]:
    opened: list[tuple[Sandbox, httpx.Client]] = []

    def factory(faults: FaultConfig) -> tuple[Sandbox, httpx.Client]:
        box = _box(clock, faults)
        http = httpx.Client(
            transport=SyncASGITransport(box.app),
            base_url="http://sandbox.local",
            auth=HmacAuth(clock),
        )
        opened.append((box, http))
        return box, http

    yield factory
    for box, http in opened:
        http.close()
        box.close()


def _outcome(http: httpx.Client, clock: FakeClock) -> str:
    clock.advance(1)  # keep clear of the real rate limits
    try:
        return str(http.post(SEND, json=TEXT).status_code)
    except DroppedConnection:
        return "dropped"


def test_spec_text_round_trips() -> None:
    spec = (
        "seed=1,error_before=0.1,error_after=0.05,rate_limit=0.1,latency=0.2,"
        "drop_before=0.05,lost_response=0.05"
    )
    config = FaultConfig.parse(spec)
    assert config == FaultConfig(
        seed=1, error_before=0.1, error_after=0.05, rate_limit=0.1, latency=0.2,
        drop_before=0.05, lost_response=0.05,
    )  # fmt: skip
    assert FaultConfig.parse(config.describe()) == config
    assert FaultConfig.parse("") == FaultConfig()
    assert FaultConfig.parse("off") == FaultConfig()
    assert FaultConfig.parse("seed=3 scope=send error_after=1").scope == "send"


@pytest.mark.parametrize(
    "spec", ["typo=0.1", "error_before=2", "error_before=0.6,error_after=0.6", "scope=some"]
)
def test_bad_spec_is_an_error(spec: str) -> None:
    with pytest.raises(ValueError):
        FaultConfig.parse(spec)


def test_env_variable_switches_faults_on(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    monkeypatch.setenv(ENV_FAULTS, "seed=7,error_before=1")
    box = Sandbox(SandboxConfig(clock=clock))
    assert box.faults.config == FaultConfig(seed=7, error_before=1.0)
    explicit = Sandbox(SandboxConfig(clock=clock, faults=FaultConfig()))
    assert not explicit.faults.config.enabled


def test_same_seed_gives_the_same_outcomes(make: Any, clock: FakeClock) -> None:
    spec = FaultConfig(
        seed=42, error_before=0.15, error_after=0.15, rate_limit=0.15, drop_before=0.15,
        lost_response=0.15,
    )  # fmt: skip
    runs = []
    for _ in range(2):
        box, http = make(spec)
        outcomes = [_outcome(http, clock) for _ in range(40)]
        runs.append((outcomes, len(box.messages())))
    assert runs[0] == runs[1]
    outcomes, stored = runs[0]
    assert {"201", "503", "500", "429", "dropped"} <= set(outcomes)
    # Stored = real successes + 500-after + lost responses: never fewer than the 201s.
    assert stored >= outcomes.count("201")
    _, other = make(FaultConfig(seed=43, error_before=0.15, error_after=0.15, rate_limit=0.15))
    assert [_outcome(other, clock) for _ in range(40)] != outcomes


def test_accept_late_is_seeded_and_leaves_older_seeds_alone(make: Any, clock: FakeClock) -> None:
    spec = "seed=11,error_before=0.3,accept_late=0.3,accept_late_seconds=2,scope=send"
    config = FaultConfig.parse(spec)
    assert (config.accept_late, config.accept_late_seconds) == (0.3, 2.0)
    assert FaultConfig.parse(config.describe()) == config

    def outcome(http: httpx.Client) -> str:
        try:
            return _outcome(http, clock)
        except httpx.ReadTimeout:  # in process, a late answer is the client's timeout
            return "late"

    runs = []
    for _ in range(2):
        box, http = make(config)
        outcomes = [outcome(http) for _ in range(30)]
        runs.append((outcomes, len(box.messages())))
    assert runs[0] == runs[1]
    outcomes, stored = runs[0]
    assert {"201", "503", "late"} <= set(outcomes)
    assert stored == outcomes.count("201") + outcomes.count("late")  # late ones are stored
    # The new outcome sits after the old ones: a spec without it draws exactly as before.
    _, plain = make(FaultConfig(seed=11, error_before=0.3, scope="send"))
    old = [outcome(plain) for _ in range(30)]
    assert [o if o != "late" else "201" for o in outcomes] == old


def test_reset_replays_the_fault_sequence(make: Any, clock: FakeClock) -> None:
    box, http = make(FaultConfig(seed=5, error_before=0.5))
    first = [_outcome(http, clock) for _ in range(12)]
    box.reset()
    assert [_outcome(http, clock) for _ in range(12)] == first


def test_error_before_stores_nothing(make: Any, clock: FakeClock) -> None:
    box, http = make(FaultConfig(error_before=1))
    response = http.post(SEND, json=TEXT)
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "error": {"code": 503, "messages": ["Service Unavailable"]},
    }
    assert box.messages() == []


def test_error_after_stores_the_message(make: Any, clock: FakeClock) -> None:
    box, http = make(FaultConfig(error_after=1))
    response = http.post(SEND, json=TEXT)
    assert response.status_code == 500
    assert response.json()["error"] == {"code": 500, "messages": ["Internal Server Error"]}
    clock.advance(5)
    [message] = box.messages()
    assert message["status"] == "read"  # it was really sent


def test_injected_rate_limit_has_headers(make: Any) -> None:
    box, http = make(FaultConfig(rate_limit=1))
    response = http.post(SEND, json=TEXT)
    assert response.status_code == 429
    assert response.json()["error"]["messages"] == ["Too Many Requests"]
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-RateLimit-Limit"] == "60"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert box.messages() == []


def test_drop_before_stores_nothing(make: Any) -> None:
    box, http = make(FaultConfig(drop_before=1))
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(SEND, json=TEXT)
    assert box.messages() == []


def test_lost_response_still_appears_in_ground_truth(make: Any) -> None:
    box, http = make(FaultConfig(lost_response=1))
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(SEND, json=TEXT)
    [message] = box.messages()
    assert message["to_number"] == TEXT["to_number"]
    assert http.get("/_sandbox/messages").json()["data"] == [message]


def test_faults_never_touch_admin_routes(make: Any) -> None:
    box, http = make(FaultConfig(drop_before=1))
    assert http.get("/_sandbox/messages").status_code == 200
    assert http.get("/_sandbox/faults").status_code == 200
    assert box.faults.events == []


def test_send_scope_leaves_reads_alone(make: Any, clock: FakeClock) -> None:
    _, http = make(FaultConfig(error_before=1, scope="send"))
    assert http.get(BASE + "/integrations").status_code == 200
    assert http.post(SEND, json=TEXT).status_code == 503


def test_latency_is_added_and_recorded(make: Any) -> None:
    box, http = make(FaultConfig(latency=1, latency_seconds=0.01))
    assert http.get(BASE + "/integrations").status_code == 200
    [event] = box.faults.events
    assert event.latency == 0.01
    assert event.fault is None


def test_admin_endpoint_switches_faults(make: Any, clock: FakeClock) -> None:
    _, http = make(FaultConfig())
    response = http.post("/_sandbox/faults", json={"spec": "seed=9,error_before=1"})
    assert response.status_code == 200
    assert response.json()["data"]["error_before"] == 1.0
    assert http.post(SEND, json=TEXT).status_code == 503
    events = http.get("/_sandbox/faults").json()["data"]["events"]
    assert events[0]["fault"] == "error_before"
    assert http.post("/_sandbox/faults", json={}).json()["data"]["error_before"] == 0.0
    clock.advance(1)
    assert http.post(SEND, json=TEXT).status_code == 201
    bad = http.post("/_sandbox/faults", json={"spec": "nope=1"})
    assert bad.status_code == 400


def test_dropped_and_lost_through_real_uvicorn(clock: FakeClock) -> None:
    box = _box(clock, FaultConfig(drop_before=1))
    with box.run_in_thread() as url, httpx.Client(base_url=url, auth=HmacAuth(clock)) as http:
        # Over a socket the client sees the peer close mid-response.
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(SEND, json=TEXT)
        assert box.messages() == []
        box.set_faults(FaultConfig(lost_response=1))
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(SEND, json=TEXT)
        assert len(box.messages()) == 1
        box.set_faults(None)
        clock.advance(1)
        assert http.post(SEND, json=TEXT).status_code == 201
    box.close()


def _outcomes_over_sockets(faults: FaultConfig, count: int) -> tuple[list[str], int]:
    """``count`` signed sends to a fresh sandbox served by real uvicorn: each one's status code
    (or "dropped" when the server closed the connection), and how many messages it stored."""
    clock = FakeClock()  # a fresh clock per run, so both runs see the same instants too
    box = _box(clock, faults)
    outcomes: list[str] = []
    try:
        with box.run_in_thread() as url, httpx.Client(base_url=url, auth=HmacAuth(clock)) as http:
            for _ in range(count):
                clock.advance(1)  # keep clear of the real rate limits
                try:
                    outcomes.append(str(http.post(SEND, json=TEXT).status_code))
                except httpx.RemoteProtocolError:  # over a socket a drop is the peer closing
                    outcomes.append("dropped")
        return outcomes, len(box.messages())
    finally:
        box.close()


def test_same_seed_gives_the_same_outcomes_through_real_uvicorn() -> None:
    # The in-process test above cannot see what a socket adds: uvicorn's own handling of a
    # dropped connection, and the client opening a new connection after one. The seeded
    # sequence must survive both.
    spec = FaultConfig(
        seed=42, error_before=0.15, error_after=0.15, rate_limit=0.15, drop_before=0.15,
        lost_response=0.15,
    )  # fmt: skip
    first = _outcomes_over_sockets(spec, 30)
    assert _outcomes_over_sockets(spec, 30) == first
    outcomes, stored = first
    assert {"201", "503", "500", "429", "dropped"} <= set(outcomes)
    assert stored >= outcomes.count("201")
    other, _ = _outcomes_over_sockets(replace(spec, seed=43), 30)
    assert other != outcomes


@pytest.mark.anyio
async def test_async_in_process_client_sees_a_dropped_connection(clock: FakeClock) -> None:
    box = _box(clock, FaultConfig(lost_response=1))
    transport = httpx.ASGITransport(app=box.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sandbox.local", auth=HmacAuth(clock)
    ) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(SEND, json=TEXT)
    assert len(box.messages()) == 1
    box.close()
