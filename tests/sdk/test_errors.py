"""Error bodies from the spec become the right exception, with everything attached."""

from __future__ import annotations

import httpx
import pytest

from qontak import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    DeliveryUnknownError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    UnprocessableEntityError,
    ValidationError,
)

QONTAK_422 = {
    "status": "error",
    "error": {
        "code": 422,
        "messages": ["Message Template has 4 variable, please adjust your payload."],
    },
}


@pytest.mark.parametrize(
    ("status", "body", "cls", "text"),
    [
        (
            400,
            {"status": "error", "error": {"code": 400, "messages": ["bad json"]}},
            BadRequestError,
            "bad json",
        ),
        (401, {"message": "Unauthorized"}, AuthenticationError, "Unauthorized"),
        (403, {"message": "Forbidden"}, PermissionDeniedError, "Forbidden"),
        (
            404,
            {"status": "error", "error": {"code": 404, "messages": ["Resource not found."]}},
            NotFoundError,
            "Resource not found.",
        ),
        (413, {"message": "Request Entity Too Large"}, RequestTooLargeError, "Too Large"),
        (422, QONTAK_422, UnprocessableEntityError, "has 4 variable"),
        (418, "I'm a teapot", APIStatusError, "teapot"),
    ],
)
def test_error_bodies_map_to_exceptions(make_client, server, status, body, cls, text) -> None:
    headers = {"x-request-id": "rid-9"}
    reply = (
        httpx.Response(status, json=body, headers=headers)
        if isinstance(body, dict)
        else httpx.Response(status, text=body, headers=headers)
    )
    server.replies = [reply]
    with pytest.raises(cls) as info:
        make_client().templates.get("t1")
    err = info.value
    assert type(err) is cls
    assert err.status_code == status
    assert err.request_id == "rid-9"
    assert err.headers["x-request-id"] == "rid-9"
    assert text in str(err) and "rid-9" in str(err)
    assert any(text in m for m in err.messages)
    assert "\n" not in str(err)


def test_rate_limit_error_has_retry_after(make_client, server) -> None:
    server.replies = [
        httpx.Response(429, headers={"Retry-After": "5"}, json={"message": "Too Many"})
    ] * 3
    with pytest.raises(RateLimitError) as info:
        make_client(max_retries=0).channels.list()
    assert info.value.retry_after == 5.0


def test_validation_error_names_field_and_reason_before_any_request(make_client, server) -> None:
    msg = {
        "to_name": "Budi",
        "to_number": "12",
        "message_template_id": "t",
        "channel_integration_id": "c",
        "language": {"code": "id"},
        "parameters": {},
    }
    with pytest.raises(ValidationError) as info:
        make_client().broadcasts.send_direct(msg, validate=False)
    assert info.value.field == "to_number"
    assert str(info.value).startswith("to_number: ")
    assert server.requests == []


def test_malformed_message_dict_is_a_validation_error(make_client, server) -> None:
    with pytest.raises(ValidationError) as info:
        make_client().broadcasts.send_direct({"to_number": "6281234567890"})
    assert info.value.field == "to_name"
    assert server.requests == []


def test_delivery_unknown_is_not_an_api_status_error() -> None:
    # Callers catching APIStatusError to retry must not catch an unknown outcome by accident.
    assert not issubclass(DeliveryUnknownError, APIStatusError)
