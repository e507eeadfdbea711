"""A canary secret goes through every code path with debug logging on; it never comes out."""

from __future__ import annotations

import copy
import dataclasses
import logging
import pickle

import httpx
import pytest

from qontak import ConfigurationError, Qontak, QontakClient, QontakError
from qontak._config import Secret
from qontak._logging import mask_phone, redact, setup_logging

from ..conftest import CLIENT_SECRET, RecordingServer

MSG = {
    "to_name": "Budi",
    "to_number": "6281234567890",
    "message_template_id": "tpl",
    "channel_integration_id": "ch",
    "language": {"code": "id"},
    "parameters": {},
}


def test_canary_secret_never_appears_in_logs_reprs_or_errors(
    make_client, server: RecordingServer, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    setup_logging("debug")
    caplog.set_level(logging.DEBUG)  # root: httpx/httpcore debug logs too
    texts: list[str] = []
    client = make_client()
    texts += [repr(client), str(client), repr(client.settings), repr(client._pipeline)]
    server.replies = [
        httpx.Response(200, json={"status": "success", "data": []}),
        httpx.Response(401, json={"message": "Unauthorized"}),
        httpx.Response(422, json={"status": "error", "error": {"code": 422, "messages": ["x"]}}),
        httpx.Response(503),
        httpx.ReadTimeout("t"),
        httpx.ConnectError("c"),
        httpx.ConnectError("c"),
        httpx.ConnectError("c"),
        httpx.Response(500),
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.Response(201, json={"status": "success", "data": {"id": "b"}}),
        httpx.Response(201, json={"status": "success", "data": {"id": "b2"}}),
    ]
    client.channels.list()
    for call in (
        lambda: client.templates.get("t"),
        lambda: client.broadcasts.send_direct(MSG, validate=False),
        lambda: client.channels.list(),
        lambda: client.channels.list(),
        lambda: client.broadcasts.send_direct(MSG, validate=False),
        lambda: client.broadcasts.send_direct({**MSG, "to_number": "x"}, validate=False),
    ):
        try:
            call()
        except QontakError as exc:
            texts += [str(exc), repr(exc), repr(exc.__dict__)]
    client.broadcasts.send_direct(MSG, validate=False)
    try:
        Qontak(client_id="id", env_file=None, client_secret=None)
    except ConfigurationError as exc:
        texts.append(str(exc))
    api = QontakClient("id", CLIENT_SECRET, env_file=None)
    texts += [repr(api), repr(api.client)]
    texts += [r.getMessage() for r in caplog.records]
    out = capsys.readouterr()
    texts += [out.out, out.err]
    blob = "\n".join(texts)
    assert len(caplog.records) > 5  # logging was really on
    assert CLIENT_SECRET not in blob
    for request in server.requests:
        signature = request.headers["authorization"].split('signature="')[1].rstrip('"')
        assert signature not in blob


def test_redaction_helpers() -> None:
    assert "[REDACTED]" in redact('Authorization: hmac username="a", signature="abc="')
    assert mask_phone("to 6281234567890 ok") == "to 6281******890 ok"


def test_phone_numbers_are_masked_at_info_level(
    make_client, server: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="qontak")
    server.replies = [httpx.Response(201, json={"status": "success", "data": {"id": "b"}})]
    make_client().broadcasts.send_direct(MSG, validate=False)
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sent")]
    assert sent and "6281******890" in sent[0] and "6281234567890" not in sent[0]


@pytest.mark.anyio
async def test_canary_secret_never_appears_on_async_and_upload_paths(
    server: RecordingServer, caplog: pytest.LogCaptureFixture, tmp_path
) -> None:
    from qontak import AsyncQontak

    setup_logging("debug")
    caplog.set_level(logging.DEBUG)
    f = tmp_path / "a.pdf"
    f.write_bytes(b"%PDF-1.4")
    server.replies = [
        httpx.Response(201, json={"status": "success", "data": {"url": "https://cdn/a.pdf"}}),
        httpx.ReadTimeout("t"),
        httpx.Response(401, json={"message": "Unauthorized"}),
    ]
    texts: list[str] = []
    async with AsyncQontak(
        "id",
        CLIENT_SECRET,
        base_url="https://api.mekari.com",
        http_client=httpx.AsyncClient(transport=server.transport()),
        env_file=None,
        max_retries=0,
    ) as client:
        texts.append(repr(client))
        texts.append((await client.file_uploader.upload(f)).url)
        for call in (
            lambda: client.broadcasts.send_direct(MSG, validate=False),
            lambda: client.channels.list(),
        ):
            try:
                await call()
            except QontakError as exc:
                texts += [str(exc), repr(exc), repr(exc.__dict__)]
    texts += [r.getMessage() for r in caplog.records]
    blob = "\n".join(texts)
    assert len(server.requests) == 3 and "Unauthorized" in blob
    assert CLIENT_SECRET not in blob


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_settings_or_the_secret_is_refused(make_client, protocol: int) -> None:
    # Refused rather than pickled redacted: a redacted copy would fail later with a 401.
    client = make_client()
    for obj in (client.settings, client.settings.client_secret, Secret(CLIENT_SECRET)):
        with pytest.raises(ConfigurationError) as info:
            pickle.dumps(obj, protocol=protocol)
        assert info.value.setting == "client_secret"
        assert CLIENT_SECRET not in str(info.value)


def test_settings_still_copy_in_process(make_client) -> None:
    settings = make_client().settings
    for clone in (copy.copy(settings), copy.deepcopy(settings)):
        assert clone == settings and clone.client_secret.get() == CLIENT_SECRET
    moved = dataclasses.replace(settings, base_url="http://x")
    assert moved.client_secret == settings.client_secret


def test_configuration_errors_never_print_a_secret_given_in_a_bad_place() -> None:
    # The secret pasted where the id or the URL goes: named, never shown.
    for kwargs in (
        {"client_id": f"{CLIENT_SECRET} x", "client_secret": "s"},
        {"client_id": "a", "client_secret": "s", "base_url": f"http://u:{CLIENT_SECRET}@h"},
        {"client_id": "a", "client_secret": "s", "base_url": f"{CLIENT_SECRET}@h"},
        {"client_id": "a", "client_secret": f"{CLIENT_SECRET}\x00"},
    ):
        with pytest.raises(ConfigurationError) as info:
            Qontak(env_file=None, **kwargs)  # type: ignore[arg-type]
        assert CLIENT_SECRET not in f"{info.value} {info.value.__dict__}"
