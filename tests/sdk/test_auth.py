from email.utils import formatdate

from hypothesis import given, settings
from hypothesis import strategies as st

from qontak import _auth

DATE = "Wed, 10 Nov 2021 07:24:29 GMT"


def test_signer_matches_mekari_official_vector() -> None:
    sig = _auth.sign(
        "POST",
        "/v2/klikpajak/v1/efaktur/out?auto_approval=false",
        DATE,
        "YOUR_MEKARI_API_CLIENT_SECRET",
    )
    assert sig == "6+Ah/UTmbqd+DDqlh6zYZ0HuCwVhtElYDOoucRPCaFg="


def test_signer_matches_derived_vectors_for_qontak_paths() -> None:
    secret = "test-client-secret"
    assert (
        _auth.sign(
            "GET", "/qontak/chat/v1/integrations?target_channel=wa_cloud&limit=10", DATE, secret
        )
        == "oaCPyaojvTg2zdBsIa9/HDYaz+gz7DSJPMwNVY8LskY="
    )
    assert (
        _auth.sign("POST", "/qontak/chat/v1/broadcasts/whatsapp/direct", DATE, secret)
        == "7kukkZKHZszKXsBVX4/bK4VuCNQzIlHOsk25yadafW4="
    )


def test_string_to_sign_is_two_lines_without_trailing_newline() -> None:
    text = _auth.string_to_sign("get", "/a?b=1", DATE)
    assert text == f"date: {DATE}\nGET /a?b=1 HTTP/1.1"


def test_date_is_imf_fixdate() -> None:
    assert _auth.format_date(1636529069) == DATE


@settings(max_examples=100, deadline=None, database=None)
@given(
    st.integers(0, 2**34),
    st.one_of(
        st.floats(0, 1, exclude_max=True),
        st.sampled_from([0.0, 0.999999, 0.9999994, 0.9999995, 0.9999996, 0.9999999]),
    ),
)
def test_a_cached_date_is_the_date_formatdate_gives(second: int, fraction: float) -> None:
    """Dates are formatted once per second; what is signed is still exactly formatdate's
    answer, at the edges of a second too (formatdate rounds to the microsecond)."""
    for timestamp in (second + fraction, float(second), second):
        assert _auth.format_date(timestamp) == formatdate(timestamp, usegmt=True)


def test_authorization_header_layout() -> None:
    headers = _auth.signature_headers("GET", "/x", "my-id", "s3cret", 1636529069)
    assert headers["Date"] == DATE
    assert headers["Authorization"] == (
        'hmac username="my-id", algorithm="hmac-sha256", headers="date request-line", '
        f'signature="{_auth.sign("GET", "/x", DATE, "s3cret")}"'
    )
