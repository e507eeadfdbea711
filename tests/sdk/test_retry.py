"""Retry safety with an injectable clock: nothing here sleeps for real."""

from __future__ import annotations

import httpx
import pytest

from qontak import (
    APIConnectionError,
    APITimeoutError,
    DeliveryUnknownError,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
)
from qontak.models import DirectMessage

MSG = {
    "to_name": "Budi",
    "to_number": "6281234567890",
    "message_template_id": "tpl",
    "channel_integration_id": "ch",
    "language": {"code": "id"},
    "parameters": {},
}
OK_SEND = httpx.Response(201, json={"status": "success", "data": {"id": "bc-1"}})
OK_LIST = httpx.Response(200, json={"status": "success", "data": []})


def send(client) -> object:
    return client.broadcasts.send_direct(MSG, validate=False)


def test_send_is_not_retried_after_read_timeout(make_client, server) -> None:
    server.replies = [httpx.ReadTimeout("timed out"), OK_SEND]
    with pytest.raises(DeliveryUnknownError) as info:
        send(make_client())
    assert len(server.requests) == 1
    err = info.value
    assert err.to_number == "6281234567890" and err.message_template_id == "tpl"
    assert err.payload["to_name"] == "Budi" and err.sent_at is not None


def test_send_is_not_retried_after_connection_dropped_mid_response(make_client, server) -> None:
    server.replies = [httpx.RemoteProtocolError("Server disconnected"), OK_SEND]
    with pytest.raises(DeliveryUnknownError, match="not re-sent"):
        send(make_client())
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_send_is_not_retried_after_5xx(make_client, server, status: int) -> None:
    server.replies = [
        httpx.Response(
            status, json={"status": "error", "error": {"code": status, "messages": ["boom"]}}
        ),
        OK_SEND,
    ]
    with pytest.raises(DeliveryUnknownError) as info:
        send(make_client())
    assert info.value.status_code == status
    assert len(server.requests) == 1


def test_send_is_retried_when_the_connection_was_refused(make_client, server, clock) -> None:
    server.replies = [httpx.ConnectError("refused"), OK_SEND]
    assert send(make_client()).id == "bc-1"
    assert len(server.requests) == 2


def test_send_is_retried_after_429_waiting_for_the_reset(make_client, server, clock) -> None:
    server.replies = [
        httpx.Response(
            429, headers={"X-RateLimit-Reset": "7"}, json={"message": "Too Many Requests"}
        ),
        OK_SEND,
    ]
    start = clock.now
    assert send(make_client()).id == "bc-1"
    assert len(server.requests) == 2
    assert clock.now - start >= 7.0


def test_429_reset_in_epoch_form_is_understood(make_client, server, clock) -> None:
    reset = int(clock.now) + 12
    server.replies = [httpx.Response(429, headers={"X-RateLimit-Reset": str(reset)}), OK_LIST]
    start = clock.now
    make_client().channels.list()
    assert 12.0 <= clock.now - start < 13.0


def test_retry_after_header_is_honoured(make_client, server, clock) -> None:
    server.replies = [httpx.Response(429, headers={"Retry-After": "3"}), OK_LIST]
    start = clock.now
    make_client().channels.list()
    assert clock.now - start == pytest.approx(3.0, abs=0.01)


def test_a_wait_longer_than_max_wait_is_raised_not_slept(make_client, server, clock) -> None:
    server.replies = [httpx.Response(429, headers={"Retry-After": "3600"})]
    with pytest.raises(RateLimitError) as info:
        make_client().channels.list()
    assert info.value.retry_after == 3600
    assert len(server.requests) == 1 and clock.sleeps == []


def test_gets_are_retried_on_5xx_and_timeouts(make_client, server) -> None:
    server.replies = [httpx.Response(503), httpx.ReadTimeout("slow"), OK_LIST]
    assert len(make_client().channels.list()) == 0
    assert len(server.requests) == 3


def test_gets_give_up_after_max_retries(make_client, server) -> None:
    server.replies = [httpx.Response(500)] * 5
    with pytest.raises(InternalServerError):
        make_client(max_retries=1).channels.list()
    assert len(server.requests) == 2


def test_connect_failures_end_in_api_connection_error(make_client, server) -> None:
    server.replies = [httpx.ConnectError("refused")] * 3
    with pytest.raises(APIConnectionError, match="could not reach"):
        make_client().channels.list()
    assert len(server.requests) == 3
    server.replies = [httpx.ConnectTimeout("slow")] * 3
    with pytest.raises(APITimeoutError):
        make_client().channels.list()


def test_every_attempt_is_signed_afresh(make_client, server, clock) -> None:
    server.replies = [httpx.Response(503), OK_LIST]
    make_client(retry=RetryPolicy(backoff_base=2.0, jitter=0)).channels.list()
    first, second = server.requests
    assert first.headers["date"] != second.headers["date"]
    assert first.headers["authorization"] != second.headers["authorization"]


def test_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=3.0, jitter=0.0)
    assert [policy.delay(a) for a in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_per_call_override_of_retries(make_client, server) -> None:
    server.replies = [httpx.ConnectError("refused")] * 3
    with pytest.raises(APIConnectionError):
        make_client().broadcasts.send_direct(MSG, validate=False, max_retries=0)
    assert len(server.requests) == 1


def test_unknown_outcome_carries_what_reconcile_needs(make_client, server) -> None:
    server.replies = [httpx.ReadTimeout("t")]
    with pytest.raises(DeliveryUnknownError) as info:
        send(make_client())
    assert DirectMessage.model_validate(info.value.payload).to_number == "6281234567890"


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200),  # what Qontak's OpenAPI file documents for the send
        httpx.Response(201, json={"status": "success", "data": {"id": 12345}}),
        httpx.Response(201, text="<html>gateway</html>"),
    ],
)
def test_unreadable_success_on_send_is_unknown_not_a_retryable_error(
    make_client, server, reply
) -> None:
    server.replies = [reply]
    with pytest.raises(DeliveryUnknownError, match="accepted the send") as info:
        send(make_client())
    assert info.value.cause == "unreadable 2xx"
    assert len(server.requests) == 1


def test_undecodable_answer_to_a_send_is_unknown(make_client, server) -> None:
    server.replies = [httpx.DecodingError("bad gzip")]
    with pytest.raises(DeliveryUnknownError):
        send(make_client())
    assert len(server.requests) == 1


def test_a_refused_long_wait_is_not_imposed_on_later_calls(make_client, server, clock) -> None:
    client = make_client()
    server.replies = [httpx.Response(429, headers={"Retry-After": "3600"}), OK_LIST]
    with pytest.raises(RateLimitError):
        client.channels.list()
    client.channels.list()
    assert sum(clock.sleeps) <= client.retry_policy.max_wait
