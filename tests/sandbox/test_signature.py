"""The gateway's HMAC check: the official vector, and every way a request can fail it."""

from __future__ import annotations

import httpx
import pytest

from qontak.sandbox import Sandbox
from qontak.sandbox._signature import compute_signature, verify_request

from .conftest import BASE, START, FakeClock, auth_headers

UNAUTHORIZED = {"message": "Unauthorized"}
PATH = BASE + "/integrations?target_channel=wa_cloud&limit=10"


def test_official_mekari_vector() -> None:
    signature = compute_signature(
        "YOUR_MEKARI_API_CLIENT_SECRET",
        "Wed, 10 Nov 2021 07:24:29 GMT",
        "POST",
        "/v2/klikpajak/v1/efaktur/out?auto_approval=false",
    )
    assert signature == "6+Ah/UTmbqd+DDqlh6zYZ0HuCwVhtElYDOoucRPCaFg="


def test_derived_vectors_from_the_spec() -> None:
    date = "Wed, 10 Nov 2021 07:24:29 GMT"
    assert (
        compute_signature("test-client-secret", date, "GET", PATH.replace("wa_cloud", "wa_cloud"))
        == "oaCPyaojvTg2zdBsIa9/HDYaz+gz7DSJPMwNVY8LskY="
    )
    assert (
        compute_signature("test-client-secret", date, "POST", BASE + "/broadcasts/whatsapp/direct")
        == "7kukkZKHZszKXsBVX4/bK4VuCNQzIlHOsk25yadafW4="
    )


def test_verify_accepts_the_official_vector_within_the_window() -> None:
    header = (
        'hmac username="klikpajak", algorithm="hmac-sha256", headers="date request-line", '
        'signature="6+Ah/UTmbqd+DDqlh6zYZ0HuCwVhtElYDOoucRPCaFg="'
    )
    args = {
        "method": "POST",
        "target": "/v2/klikpajak/v1/efaktur/out?auto_approval=false",
        "authorization": header,
        "date": "Wed, 10 Nov 2021 07:24:29 GMT",
        "secret_for": {"klikpajak": "YOUR_MEKARI_API_CLIENT_SECRET"}.get,
    }
    at = 1636529069.0  # the vector's Date
    assert verify_request(now=at + 299, **args) == "klikpajak"  # type: ignore[arg-type]
    assert verify_request(now=at - 300, **args) == "klikpajak"  # type: ignore[arg-type]
    assert verify_request(now=at + 301, **args) is None  # type: ignore[arg-type]


def test_signed_request_is_accepted(raw_client: httpx.Client) -> None:
    response = raw_client.get(PATH, headers=auth_headers("GET", PATH, START))
    assert response.status_code == 200
    assert response.json()["status"] == "success"


def _assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("wrong secret", auth_headers("GET", PATH, START, secret="not-the-secret")),
        ("unknown client", auth_headers("GET", PATH, START, client_id="nobody")),
        ("tampered path", auth_headers("GET", PATH.replace("integrations", "templates"), START)),
        ("tampered query", auth_headers("GET", PATH.replace("limit=10", "limit=11"), START)),
        ("query left out of the signature", auth_headers("GET", BASE + "/integrations", START)),
        ("wrong method", auth_headers("POST", PATH, START)),
        ("stale date", auth_headers("GET", PATH, START - 301)),
        ("date in the future", auth_headers("GET", PATH, START + 301)),
    ],
)
def test_bad_signatures_are_rejected(
    raw_client: httpx.Client, case: str, headers: dict[str, str]
) -> None:
    _assert_unauthorized(raw_client.get(PATH, headers=headers))


def test_date_just_inside_the_window_is_accepted(raw_client: httpx.Client) -> None:
    assert raw_client.get(PATH, headers=auth_headers("GET", PATH, START - 299)).status_code == 200
    assert raw_client.get(PATH, headers=auth_headers("GET", PATH, START + 299)).status_code == 200


def test_missing_date_header_is_rejected(raw_client: httpx.Client) -> None:
    headers = auth_headers("GET", PATH, START)
    del headers["Date"]
    _assert_unauthorized(raw_client.get(PATH, headers=headers))


def test_missing_authorization_is_rejected(raw_client: httpx.Client) -> None:
    _assert_unauthorized(raw_client.get(PATH))


def test_date_that_differs_from_the_signed_one_is_rejected(raw_client: httpx.Client) -> None:
    headers = auth_headers("GET", PATH, START)
    headers["Date"] = auth_headers("GET", PATH, START + 1)["Date"]
    _assert_unauthorized(raw_client.get(PATH, headers=headers))


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer abc",
        'hmac username="sandbox-client-id", algorithm="hmac-sha1", '
        'headers="date request-line", signature="x"',
        'hmac username="sandbox-client-id", algorithm="hmac-sha256", headers="date", signature="x"',
        'hmac username="sandbox-client-id"',
        "garbage",
    ],
)
def test_malformed_authorization_is_rejected(raw_client: httpx.Client, authorization: str) -> None:
    headers = auth_headers("GET", PATH, START)
    headers["Authorization"] = authorization
    _assert_unauthorized(raw_client.get(PATH, headers=headers))


def test_unparseable_date_is_rejected(raw_client: httpx.Client) -> None:
    headers = auth_headers("GET", PATH, START)
    headers["Date"] = "yesterday"
    _assert_unauthorized(raw_client.get(PATH, headers=headers))


def test_raw_percent_encoded_query_is_what_gets_verified(raw_client: httpx.Client) -> None:
    # The client sends `query=a%20b`; signing the decoded `query=a b` must not pass.
    target = BASE + "/templates/whatsapp?query=order%20update&statuses%5B%5D=APPROVED"
    ok = raw_client.get(target, headers=auth_headers("GET", target, START))
    assert ok.status_code == 200
    decoded = BASE + "/templates/whatsapp?query=order update&statuses[]=APPROVED"
    _assert_unauthorized(raw_client.get(target, headers=auth_headers("GET", decoded, START)))


def test_admin_routes_need_no_signature(raw_client: httpx.Client) -> None:
    assert raw_client.get("/_sandbox/messages").status_code == 200


def test_added_credentials_are_accepted(sandbox: Sandbox, raw_client: httpx.Client) -> None:
    sandbox.add_credentials("team-a", "s3cret")
    headers = auth_headers("GET", PATH, START, client_id="team-a", secret="s3cret")
    assert raw_client.get(PATH, headers=headers).status_code == 200


def test_window_follows_the_sandbox_clock(
    sandbox: Sandbox, raw_client: httpx.Client, clock: FakeClock
) -> None:
    headers = auth_headers("GET", PATH, START)
    clock.advance(301)
    _assert_unauthorized(raw_client.get(PATH, headers=headers))


def test_signature_checked_through_real_uvicorn(sandbox: Sandbox) -> None:
    # uvicorn builds the ASGI scope itself (raw_path, query_string as bytes off the wire), so
    # every check is repeated here rather than trusted from the in-process transport.
    with sandbox.run_in_thread() as url, httpx.Client(base_url=url) as http:
        assert http.get(PATH, headers=auth_headers("GET", PATH, START)).status_code == 200
        wrong = auth_headers("GET", PATH, START, secret="nope")
        _assert_unauthorized(http.get(PATH, headers=wrong))
        tampered_query = auth_headers("GET", PATH.replace("limit=10", "limit=11"), START)
        _assert_unauthorized(http.get(PATH, headers=tampered_query))
        unsigned_query = auth_headers("GET", BASE + "/integrations", START)
        _assert_unauthorized(http.get(PATH, headers=unsigned_query))
        # The window is measured against the sandbox clock (START), not the machine's.
        _assert_unauthorized(http.get(PATH, headers=auth_headers("GET", PATH, START - 301)))
        _assert_unauthorized(http.get(PATH, headers=auth_headers("GET", PATH, START + 301)))
        assert http.get(PATH, headers=auth_headers("GET", PATH, START - 299)).status_code == 200


def test_stale_date_through_real_uvicorn_after_the_clock_moves(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    # A request signed while fresh must fail once the sandbox clock has moved past the window.
    headers = auth_headers("GET", PATH, START)
    with sandbox.run_in_thread() as url, httpx.Client(base_url=url) as http:
        assert http.get(PATH, headers=headers).status_code == 200
        clock.advance(301)
        _assert_unauthorized(http.get(PATH, headers=headers))
