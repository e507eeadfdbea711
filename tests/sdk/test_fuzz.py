"""Hostile values over the public signatures: only QontakError escapes, and nothing is sent.

Every argument of the constructors, the builders, ``send_direct`` (message objects, dicts and
per-call options) and the Node-compatible ``QontakClient`` is drawn either as a good value or as
a hostile one (wrong types, NaN, huge numbers, lone surrogates, control characters, 70,000
characters, bytes…). Requests go to the real sandbox in process through a transport that counts
them, and the sandbox's ground truth (accepted messages) is compared before and after.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from qontak import (
    AsyncQontak,
    ConfigurationError,
    Qontak,
    QontakClient,
    QontakError,
    RetryPolicy,
    Rule,
    ValidationError,
    messages,
)
from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    RateLimitConfig,
    Sandbox,
    SandboxConfig,
    SyncASGITransport,
)
from qontak.testing import SANDBOX_BASE_URL, SANDBOX_HOST

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

TO = "6281234567890"
CHANNEL = "56b60c3c-0123-46af-958b-32f3ad12ee37"
TEXT_TEMPLATE = "d3e1083c-66ea-410b-b807-1d84182ffa82"  # order_update/id: {{1}}, {{2}}
OTP_TEMPLATE = "60cccaa0-ccd9-4efd-bdfb-875859c4b50a"  # login_otp/id
IMAGE_TEMPLATE = "34d95207-0b48-4ce0-b589-2b7c1519d457"  # promo_image/id

# Any code point, weighted towards surrogates and controls (st.text leaves surrogates out).
CODE_POINT = st.one_of(
    st.integers(0x20, 0x7E),
    st.integers(0, 0x1F),
    st.integers(0x7F, 0x9F),
    st.integers(0xD800, 0xDFFF),
    st.integers(0, 0x10FFFF),
)
ANY_TEXT = st.lists(CODE_POINT, max_size=12).map(lambda cps: "".join(map(chr, cps)))
NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\ud800b",
        "\udcff",
        "x" * 70_000,
        "..",
        ".",
        "a\r\nX-Injected: 1",
        "http://user:pw@127.0.0.1",
        "nan",
        "0812",
        "\u2028",
        "\x1b[31m",
        "%2e%2e",
        "a/b?c#d",
    ]
)
TEXT = st.one_of(ANY_TEXT, NASTY_TEXT, st.text(max_size=20))
NUMBER = st.one_of(
    st.integers(-(2**70), 2**70),
    st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("NaN"), Decimal("1E+999"), -1, 0, True, False]),
)
SCALAR = st.one_of(st.none(), TEXT, NUMBER, st.binary(max_size=8))
HOSTILE = st.one_of(
    SCALAR,
    st.lists(SCALAR, max_size=3),
    st.tuples(SCALAR, SCALAR, SCALAR),
    st.dictionaries(st.one_of(TEXT, st.integers()), SCALAR, max_size=3),
    st.builds(bytearray, st.binary(max_size=4)),
    st.just(object()),
    st.just({1, 2}),
)


def weighted(*choices: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each as likely as the others (``st.one_of`` flattens nested
    ``one_of``s, so a good value offered next to a rich hostile one would almost never come)."""
    return st.sampled_from(choices).flatmap(lambda chosen: chosen)


def maybe(good: Any, bad: st.SearchStrategy[Any] = HOSTILE) -> st.SearchStrategy[Any]:
    """The good value four times in five, else a hostile one (so most examples have one or
    two bad arguments, and a check late in a call is reached too)."""
    return weighted(*[st.just(good)] * 4, bad)


def fuzz_kwargs(good: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({k: maybe(v) for k, v in good.items()})


def assert_ours(exc: BaseException) -> None:
    event(f"raised {type(exc).__name__}")
    assert isinstance(exc, QontakError), f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    assert len(str(exc)) < 2000  # a 70,000-character value is never echoed back


class CountingTransport(httpx.BaseTransport):
    """The sandbox in process, counting every request that reaches it."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner = SyncASGITransport(sandbox.app)
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return self.inner.handle_request(request)


def _nothing_is_sent(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a constructor sent {request.method} {request.url}")


class World:
    """One sandbox and one client per module: each example compares counts before and after."""

    def __init__(self) -> None:
        self.box = Sandbox(SandboxConfig(rate_limits=RateLimitConfig(enabled=False)))
        self.transport = CountingTransport(self.box)
        self.http = httpx.Client(transport=self.transport, base_url=SANDBOX_HOST)
        self.async_http = httpx.AsyncClient(transport=httpx.MockTransport(_nothing_is_sent))
        self.client = Qontak(
            SANDBOX_CLIENT_ID,
            SANDBOX_CLIENT_SECRET,
            base_url=SANDBOX_BASE_URL,
            http_client=self.http,
            env_file=None,
            clock=self.box.now,
            sleep=self.box.advance,
            rate_limits=False,
        )
        self.compat = QontakClient(
            SANDBOX_CLIENT_ID,
            SANDBOX_CLIENT_SECRET,
            base_url=SANDBOX_BASE_URL,
            http_client=self.http,
            env_file=None,
            clock=self.box.now,
            sleep=self.box.advance,
            rate_limits=False,
        )

    def sends(self) -> int:
        return sum(1 for method, path in self.transport.requests if method != "GET")

    def accepted(self) -> int:
        return len(self.box.messages())


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    yield w
    w.http.close()
    anyio.run(w.async_http.aclose)
    w.box.close()


# --- Constructors -----------------------------------------------------------------------------

GOOD_SETTINGS: dict[str, Any] = {
    "client_id": "id",
    "client_secret": "secret",
    "base_url": "https://api.mekari.com",
    "environment": None,
    "timeout": 10,
    "max_retries": 2,
    "retry": None,
    "rate_limits": True,
    "default_region": "ID",
}
SETTING_VALUES = st.one_of(
    HOSTILE,
    st.builds(RetryPolicy, max_retries=st.one_of(st.integers(-2, 200), NUMBER)),
    # Rule itself refuses NaN and infinity (a ValidationError) before any client sees it.
    st.builds(
        lambda r, p: {"all": [Rule(r, p)]}, st.integers(1, 5), st.sampled_from([1e-300, 1.0])
    ),
    st.builds(httpx.Timeout, st.one_of(st.none(), st.floats(allow_nan=True))),
)


@FUZZ
@given(
    kind=st.sampled_from([Qontak, AsyncQontak, QontakClient]),
    kwargs=st.fixed_dictionaries({k: maybe(v, SETTING_VALUES) for k, v in GOOD_SETTINGS.items()}),
)
def test_constructors_raise_only_configuration_errors(
    world: World, kind: Any, kwargs: dict[str, Any]
) -> None:
    # A shared connection pool: building an httpx client per example costs an SSL context.
    http = world.async_http if kind is AsyncQontak else world.http
    try:
        made = kind(env_file=None, http_client=http, **kwargs)
    except QontakError as exc:
        assert_ours(exc)
        assert isinstance(exc, ConfigurationError), exc
        return
    client = made.client if isinstance(made, QontakClient) else made
    # Whatever was accepted is usable: a finite policy and a real timeout.
    assert 0 <= client.retry_policy.max_retries <= 100
    assert all(
        v is None or (math.isfinite(v) and v > 0)
        for v in client._pipeline.timeout.as_dict().values()
    )


@FUZZ
@given(timeout=maybe(5, SETTING_VALUES), max_retries=maybe(1, SETTING_VALUES))
def test_with_options_raises_only_configuration_errors(
    world: World, timeout: Any, max_retries: Any
) -> None:
    try:
        clone = world.client.with_options(timeout=timeout, max_retries=max_retries)
    except QontakError as exc:
        assert_ours(exc)
        assert isinstance(exc, ConfigurationError)
        return
    assert 0 <= clone.retry_policy.max_retries <= 100


# --- Builders ---------------------------------------------------------------------------------

COMMON = {"template": TEXT_TEMPLATE, "channel": CHANNEL, "language": "id", "name": "Budi"}
BUILDERS: dict[str, tuple[Any, dict[str, Any]]] = {
    "otp": (messages.otp, {"to": TO, "code": "123456", **COMMON, "template": OTP_TEMPLATE}),
    "text": (messages.text, {"to": TO, "variables": ["Budi", "INV-1"], **COMMON}),
    "image": (
        messages.image,
        {
            "to": TO,
            "url": "https://x.co/a/cat.png",
            "filename": "cat.png",
            **COMMON,
            "template": IMAGE_TEMPLATE,
            "variables": (),
            "buttons": (),
        },
    ),
    "document": (
        messages.document,
        {"to": TO, "url": "https://x.co/f/a.pdf", **COMMON, "variables": ["a"]},
    ),
    "video": (messages.video, {"to": TO, "url": "https://x.co/v.mp4", **COMMON, "buttons": None}),
    "cta_url": (messages.cta_url, {"to": TO, "suffix": "fitur/x", **COMMON, "index": 0}),
    "cta_phone": (messages.cta_phone, {"to": TO, **COMMON, "variables": ["a", "b"]}),
    "template_message": (
        messages.template_message,
        {
            "to": TO,
            **COMMON,
            "variables": {"name": "Budi"},
            "buttons": [(0, "x")],
            "header": None,
            "region": "ID",
        },
    ),
    "url_button": (messages.url_button, {"value": "x", "index": 0, "type": "url"}),
    "media_header": (messages.media_header, {"kind": "image", "url": "https://x/a.png"}),
}


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(BUILDERS)))
def test_builders_raise_only_validation_errors(data: st.DataObject, name: str) -> None:
    build, good = BUILDERS[name]
    kwargs = data.draw(fuzz_kwargs(good))
    try:
        result = build(**kwargs)
    except QontakError as exc:
        assert_ours(exc)
        assert isinstance(exc, ValidationError), exc
        return
    # What a builder returns can always go on the wire: UTF-8, valid JSON, no NaN.
    if isinstance(result, messages.DirectMessage):
        text = result.to_json()
        text.encode("utf-8")
        json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    else:
        json.dumps(result.model_dump(), allow_nan=False).encode("utf-8")


# --- send_direct: messages, dicts and per-call options -------------------------------------------

GOOD_PAYLOAD: dict[str, Any] = {
    "to_name": "Budi",
    "to_number": TO,
    "message_template_id": TEXT_TEMPLATE,
    "channel_integration_id": CHANNEL,
    "language": {"code": "id"},
    "parameters": {
        "body": [
            {"key": "1", "value_text": "Budi", "value": "name"},
            {"key": "2", "value_text": "INV-1", "value": "order"},
        ]
    },
}
#: Where a hostile value can go in a direct-send dict (``*`` adds a key).
PAYLOAD_PATHS = [
    ("to_name",),
    ("to_number",),
    ("message_template_id",),
    ("channel_integration_id",),
    ("language",),
    ("language", "code"),
    ("parameters",),
    ("parameters", "body"),
    ("parameters", "body", 0),
    ("parameters", "body", 0, "key"),
    ("parameters", "body", 0, "value_text"),
    ("parameters", "body", 1, "value"),
    ("parameters", "buttons"),
    ("parameters", "header"),
    ("*extra",),
    ("parameters", "*extra"),
]
# Mostly text: a str passes the model's types, so it is what reaches the deeper checks.
PAYLOAD_VALUE = weighted(NASTY_TEXT, ANY_TEXT, HOSTILE)


def _mutate(changes: list[tuple[tuple[Any, ...], Any]]) -> dict[str, Any]:
    payload = copy.deepcopy(GOOD_PAYLOAD)
    for path, value in changes:
        node: Any = payload
        for step in path[:-1]:
            if not isinstance(node, dict | list):
                break
            node = node[step]
        else:
            last = path[-1]
            if isinstance(last, str) and last.startswith("*"):
                last = last[1:]
            if isinstance(node, dict) or (isinstance(node, list) and last < len(node)):
                node[last] = value
    return payload


PAYLOAD = st.builds(
    _mutate,
    st.lists(st.tuples(st.sampled_from(PAYLOAD_PATHS), PAYLOAD_VALUE), min_size=0, max_size=2),
)


@FUZZ
@given(
    payload=weighted(PAYLOAD, PAYLOAD, PAYLOAD, HOSTILE),
    timeout=maybe(None, SETTING_VALUES),
    max_retries=maybe(None, SETTING_VALUES),
    validate=st.booleans(),
)
def test_send_direct_raises_only_our_errors_and_sends_nothing_on_error(
    world: World, payload: Any, timeout: Any, max_retries: Any, validate: bool
) -> None:
    sends, accepted = world.sends(), world.accepted()
    try:
        world.client.broadcasts.send_direct(
            payload, validate=validate, timeout=timeout, max_retries=max_retries
        )
    except QontakError as exc:
        assert_ours(exc)
        assert world.accepted() == accepted, "an error, yet the sandbox stored a message"
        if isinstance(exc, ValidationError | ConfigurationError):
            assert world.sends() == sends, "refused input, yet a request was sent"
        return
    assert world.accepted() == accepted + 1


@FUZZ
@given(
    template=maybe(TEXT_TEMPLATE),
    channel=maybe(CHANNEL),
    value_text=maybe("Budi", TEXT),
    to_name=maybe("Budi", TEXT),
)
def test_messages_changed_by_hand_are_checked_before_sending(
    world: World, template: Any, channel: Any, value_text: Any, to_name: Any
) -> None:
    sends, accepted = world.sends(), world.accepted()
    try:
        msg = messages.text(TO, ["Budi", "INV-1"], template=TEXT_TEMPLATE, channel=CHANNEL,
                            language="id")  # fmt: skip
        # Models do not validate assignment: a caller can put anything in after building.
        msg.message_template_id = template
        msg.channel_integration_id = channel
        msg.to_name = to_name
        if msg.parameters.body:
            msg.parameters.body[0].value_text = value_text
        world.client.broadcasts.send_direct(msg)
    except QontakError as exc:
        assert_ours(exc)
        assert world.accepted() == accepted
        if isinstance(exc, ValidationError):
            assert world.sends() == sends
        return
    assert world.accepted() == accepted + 1


# --- The Node-compatible QontakClient ---------------------------------------------------------

COMPAT_CALLS = [
    ("broadcast.create_broadcast_direct", weighted(PAYLOAD, HOSTILE)),
    ("broadcast.get_broadcast_log", weighted(TEXT, HOSTILE)),
    ("broadcast.get_broadcast_detail", weighted(TEXT, HOSTILE)),
    ("broadcast.get_broadcast_list", HOSTILE),
    ("template.get_whatsapp_template_by_id", weighted(TEXT, HOSTILE)),
    ("template.get_list_whatsapp_template", HOSTILE),
    ("template.create_whatsapp_template", HOSTILE),
    ("integration.get_integration_by_id", weighted(TEXT, HOSTILE)),
    ("integration.get_integration_list", HOSTILE),
    ("file_uploader.upload_file", HOSTILE),
    ("contact.get_contacts_list", weighted(TEXT, HOSTILE)),
    ("contact.override_contact_name", HOSTILE),
    ("contact_block.block_contact", HOSTILE),
    ("user.get_list_user", HOSTILE),
]


@settings(FUZZ, max_examples=60)
@given(data=st.data(), index=st.integers(0, len(COMPAT_CALLS) - 1))
def test_compat_client_raises_only_our_errors(
    world: World, data: st.DataObject, index: int
) -> None:
    path, strategy = COMPAT_CALLS[index]
    part, method = path.split(".")
    argument = data.draw(strategy)
    sends, accepted = world.sends(), world.accepted()
    requests = len(world.transport.requests)
    try:
        getattr(getattr(world.compat, part), method)(argument)
    except QontakError as exc:
        assert_ours(exc)
        assert world.accepted() == accepted
        if isinstance(exc, ValidationError):
            assert len(world.transport.requests) == requests, "refused, yet a request went out"
        return
    assert world.sends() <= sends + 1
