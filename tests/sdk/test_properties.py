"""Properties: the signer against the sandbox's verifier, the number normaliser, and builders
round-tripping through the wire format.

Each property runs at most 100 examples with no deadline, so the file costs a few seconds.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from qontak import RetryPolicy, ValidationError, messages
from qontak._auth import signature_headers
from qontak._config import Secret, Settings
from qontak._pipeline import ApiRequest, Pipeline
from qontak.models import DirectMessage
from qontak.resources.broadcasts import coerce_message, prepare_message, wire_number
from qontak.sandbox._signature import request_target, verify_request
from qontak.validation import normalize_phone

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)

NOW = 1_700_000_000.0
CLIENT_ID = "prop-client"
# Any code point but the surrogates (which no request can carry; the boundary refuses them).
UNICODE = st.characters(codec="utf-8")
SECRET = st.text(UNICODE, min_size=1, max_size=40)
METHOD = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])


def _verify(method: str, raw_path: bytes, raw_query: bytes, headers: Any, secret: str) -> Any:
    """What the sandbox's gateway decides for these exact bytes on the wire."""
    return verify_request(
        method=method,
        target=request_target(raw_path, raw_query),
        authorization=headers.get("Authorization"),
        date=headers.get("Date"),
        secret_for=lambda cid: secret if cid == CLIENT_ID else None,
        now=NOW,
    )


# --- The signer -------------------------------------------------------------------------------


@PROPERTY
@given(method=METHOD, path=st.binary(max_size=60), query=st.binary(max_size=60), secret=SECRET)
def test_any_path_and_query_bytes_round_trip_through_the_verifier(
    method: str, path: bytes, query: bytes, secret: str
) -> None:
    # On the wire, bytes outside the URL alphabet travel percent-encoded; sign exactly that.
    raw_path = b"/" + quote_from_bytes(path, safe="/").encode("ascii")
    raw_query = quote_from_bytes(query, safe="=&").encode("ascii")
    target = raw_path.decode("ascii") + ("?" + raw_query.decode("ascii") if raw_query else "")
    headers = signature_headers(method, target, CLIENT_ID, secret, NOW)
    assert _verify(method, raw_path, raw_query, headers, secret) == CLIENT_ID
    # …and the signature covers every byte: another target or method is refused.
    assert _verify(method, raw_path + b"x", raw_query, headers, secret) is None
    other = "GET" if method != "GET" else "POST"
    assert _verify(other, raw_path, raw_query, headers, secret) is None


@PROPERTY
@given(
    method=METHOD,
    segments=st.lists(st.text(UNICODE, min_size=1, max_size=12), min_size=1, max_size=3),
    params=st.dictionaries(
        st.text(UNICODE, min_size=1, max_size=8),
        st.one_of(
            st.text(UNICODE, max_size=12),
            st.integers(-(10**6), 10**6),
            st.booleans(),
            st.lists(st.text(UNICODE, max_size=6), max_size=3),
        ),
        max_size=4,
    ),
    base_path=st.sampled_from(["", "/qontak/chat/v1", "/ä pfad/v1"]),
    secret=SECRET,
)
def test_what_the_pipeline_signs_is_what_the_verifier_reads_from_the_wire(
    method: str, segments: list[str], params: dict[str, Any], base_path: str, secret: str
) -> None:
    # A custom base path, ids and query values of any text: the pipeline percent-encodes them
    # and signs the bytes httpx will put on the request line.
    assume(all(s not in (".", "..") and not any(c.isspace() for c in s) for s in segments))
    pipeline = Pipeline(
        settings=Settings(CLIENT_ID, Secret(secret), "https://h.example" + base_path),
        retry=RetryPolicy(),
        limiter=None,
        clock=lambda: NOW,
    )
    try:
        from qontak._pipeline import path_segment

        path = "".join("/" + path_segment(s) for s in segments)
        request = pipeline.prepare(ApiRequest(method, path, params=params))
    except ValidationError:
        return  # refused at the boundary (e.g. an over-long query): nothing to sign
    raw_path, _, raw_query = request.url.raw_path.partition(b"?")
    assert _verify(method, raw_path, raw_query, request.headers, secret) == CLIENT_ID


# --- The number normaliser --------------------------------------------------------------------

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


def _written(region: str, kind: int, style: int) -> str | None:
    """A real example number of ``region`` written the way people do."""
    types = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
    number = phonenumbers.example_number_for_type(region, types[kind])
    if number is None:
        return None
    formats = [
        phonenumbers.PhoneNumberFormat.E164,
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.NATIONAL,
    ]
    text = phonenumbers.format_number(number, formats[style])
    return text.lstrip("+") if style == 0 and kind == 0 else text


WRITTEN = st.builds(_written, st.sampled_from(REGIONS), st.integers(0, 1), st.integers(0, 2))
PHONE_TEXT = st.one_of(
    WRITTEN.filter(lambda t: t is not None),
    st.from_regex(r"\A(\+|00)?[0-9 ()\-./]{4,22}\Z"),
    st.text(max_size=20),
    st.lists(st.integers(0, 0x10FFFF), max_size=10).map(lambda cps: "".join(map(chr, cps))),
    st.one_of(st.none(), st.integers(), st.floats(), st.binary(max_size=5)),
)
REGION = st.one_of(
    st.sampled_from(["ID", "id", "US", "GB", "IN", "SG", "MY", "BR", "DE", None]),
    st.sampled_from(REGIONS),
    st.text(max_size=4),
    st.one_of(st.integers(), st.binary(max_size=3)),
)


@PROPERTY
@given(number=PHONE_TEXT, region=REGION)
def test_normalize_phone_raises_only_validation_error_and_is_idempotent(
    number: Any, region: Any
) -> None:
    try:
        normalized = normalize_phone(number, region)
    except ValidationError as exc:
        assert exc.field in ("to_number", "region")
        return
    assert normalized.isdigit() and normalized.isascii() and len(normalized) <= 15
    # Idempotent on its output read as what it is, an international number…
    assert normalize_phone("+" + normalized, region) == normalized
    assert normalize_phone("+" + normalized, None) == normalized
    assert wire_number(normalized, region) == normalized
    # …and as bare digits when they are the region's own. (A foreign number's bare digits are
    # read as a national number first, by design: "3212345678" from a US user is American.
    # That is why the send path reads to_number with wire_number, never normalize_phone.)
    code = phonenumbers.country_code_for_region(region.upper()) if region else 0
    if code and normalized.startswith(str(code)):
        assert normalize_phone(normalized, region) == normalized


@PROPERTY
@given(
    number=WRITTEN,
    region=st.sampled_from(REGIONS),
    client_region=st.sampled_from(["ID", "US", "GB", "DE", "IN", "BR", "AC", "AD"]),
)
def test_the_send_path_never_moves_a_built_number_to_another_country(
    number: Any, region: str, client_region: str
) -> None:
    # A builder reads the number with its region; send_direct prepares the message again with
    # the client's default region. Reading "3212345678" (Belgium, built with region="BE") as a
    # US national number would text a stranger at +1 321-234-5678.
    if number is None:
        return
    try:
        msg = messages.text(number, template="t", channel="c", language="id", region=region)
    except ValidationError:
        return
    prepared = prepare_message(msg, None, region=client_region, validate=False)
    assert prepared.to_number == msg.to_number


# --- Builders -> wire -> JSON -> models -------------------------------------------------------

# Text a WhatsApp parameter can hold: no control characters, no surrogates.
VALUE = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zl", "Zp"]),
    min_size=1,
    max_size=30,
)
IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,35}\Z")
PHONE = st.sampled_from(["6281234567890", "+62 812-3456-7890", "0812 3456 7890", "628117661000"])
COMMON = st.fixed_dictionaries(
    {
        "template": IDS,
        "channel": IDS,
        "language": st.sampled_from(["id", "en", "en_US", "pt_BR"]),
        "name": st.one_of(st.none(), VALUE),
    }
)
VARIABLES = st.one_of(
    st.lists(VALUE, max_size=4),
    st.dictionaries(st.from_regex(r"\A[a-z_]{1,8}\Z"), VALUE, max_size=4),
    st.lists(st.tuples(VALUE, VALUE), max_size=3),
    st.lists(
        st.one_of(st.integers(-(10**9), 10**9), st.floats(allow_nan=False, allow_infinity=False)),
        max_size=3,
    ),
)
MEDIA_URL = st.builds(
    lambda host, name, ext: f"https://{host}.example/{name}{ext}",
    st.from_regex(r"\A[a-z]{1,10}\Z"),
    st.from_regex(r"\A[A-Za-z0-9_-]{1,12}\Z"),
    st.sampled_from([".png", ".jpg", ".pdf", ".mp4"]),
)
BUILT = st.one_of(
    st.builds(lambda to, code, c: messages.otp(to, code, **c), PHONE,
              st.one_of(st.from_regex(r"\A[0-9]{4,8}\Z"), st.integers(0, 10**8)), COMMON),
    st.builds(lambda to, v, c: messages.text(to, v, **c), PHONE, VARIABLES, COMMON),
    st.builds(lambda to, u, v, c: messages.image(to, u, variables=v, **c), PHONE, MEDIA_URL,
              VARIABLES, COMMON),
    st.builds(lambda to, u, f, c: messages.document(to, u, filename=f, **c), PHONE, MEDIA_URL,
              st.one_of(st.none(), VALUE), COMMON),
    st.builds(lambda to, u, c: messages.video(to, u, **c), PHONE, MEDIA_URL, COMMON),
    st.builds(lambda to, s, i, c: messages.cta_url(to, s, index=i, **c), PHONE,
              st.from_regex(r"\A[A-Za-z0-9/_-]{1,20}\Z"), st.integers(0, 9), COMMON),
    st.builds(lambda to, v, c: messages.cta_phone(to, variables=v, **c), PHONE, VARIABLES,
              COMMON),
)  # fmt: skip


@PROPERTY
@given(msg=BUILT)
def test_builders_round_trip_through_json_and_the_models(msg: DirectMessage) -> None:
    text = msg.to_json()
    wire = json.loads(text.encode("utf-8"))
    assert wire == msg.to_wire()
    again = DirectMessage.model_validate(wire)
    assert again.to_wire() == wire and again.to_json() == text
    # What a builder makes, the boundary accepts unchanged (as a model and as a dict).
    assert coerce_message(msg) is msg
    assert coerce_message(wire).to_wire() == wire
    # And the pipeline can put it on the wire as JSON.
    body = json.loads(httpx.Request("POST", "https://h", json=wire).content)
    assert body == wire


def test_properties_fail_on_a_broken_round_trip() -> None:
    # The round-trip property is not vacuous: a model that lost a field would be caught.
    msg = messages.text("6281234567890", ["a"], template="t", channel="c", language="id")
    wire = msg.to_wire()
    del wire["language"]
    with pytest.raises(Exception):  # noqa: B017 - any pydantic error will do here
        DirectMessage.model_validate(wire)


@pytest.mark.parametrize(
    ("written", "region", "client_region", "expected"),
    [
        ("+32 12 34 56 78", "BE", "US", "3212345678"),  # was sent to +1 321-234-5678
        ("+376 312 345", "AD", "ID", "376312345"),  # was sent to +62 376 312 345
        ("+247 40123", "AC", "DE", "24740123"),  # was sent to +49 24740123
    ],
)
def test_a_built_number_keeps_its_country_whatever_the_clients_region(
    written: str, region: str, client_region: str, expected: str
) -> None:
    msg = messages.text(written, template="t", channel="c", language="id", region=region)
    assert msg.to_number == expected
    assert prepare_message(msg, None, region=client_region, validate=False).to_number == expected
    # Human spellings in a dict are still read with the client's region.
    national = msg.model_copy(update={"to_number": "0812-3456-7890"})
    assert prepare_message(national, None, region="ID", validate=False).to_number == (
        "6281234567890"
    )
