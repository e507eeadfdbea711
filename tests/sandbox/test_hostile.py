"""The sandbox under hostile traffic: capped bodies, uploads on disk with a quota, the admin
routes' Host/token guard, slow clients shed, no 500 for odd input, late accepts."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qontak import DeliveryUnknownError, messages
from qontak.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    FaultConfig,
    LateAnswer,
    RateLimitConfig,
    Sandbox,
    SandboxConfig,
    ServerLimits,
    SyncASGITransport,
    remote_config,
    serve,
)
from qontak.testing import sandbox_client

from .conftest import BASE, FakeClock, HmacAuth, auth_headers
from .examples import EXAMPLES, TEXT

SEND = BASE + "/broadcasts/whatsapp/direct"
UPLOAD = BASE + "/file_uploader"
BOUNDARY = "hostile-boundary"
JSON = {"Content-Type": "application/json"}


def _box(clock: FakeClock, **changes: Any) -> Sandbox:
    return Sandbox(SandboxConfig(clock=clock, faults=FaultConfig(), **changes))


@pytest.fixture
def make(clock: FakeClock) -> Iterator[Any]:
    """Sandboxes with settings of the test's choosing, closed afterwards."""
    boxes: list[Sandbox] = []

    def factory(**changes: Any) -> Sandbox:
        boxes.append(_box(clock, **changes))
        return boxes[-1]

    yield factory
    for box in boxes:
        box.close()


def _sync(box: Sandbox, clock: FakeClock, host: str = "sandbox.local") -> httpx.Client:
    return httpx.Client(
        transport=SyncASGITransport(box.app), base_url=f"http://{host}", auth=HmacAuth(clock)
    )


def _async(box: Sandbox, clock: FakeClock) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=box.app),
        base_url="http://sandbox.local",
        auth=HmacAuth(clock),
    )


class Stream:
    """A chunked body that counts how much of it the server pulled."""

    def __init__(self, chunk: bytes, count: int, head: bytes = b"", tail: bytes = b"") -> None:
        self.chunk, self.count, self.head, self.tail = chunk, count, head, tail
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.head:
            yield self.head
        for _ in range(self.count):
            self.pulled += len(self.chunk)
            yield self.chunk
        if self.tail:
            yield self.tail


def _multipart_parts(filename: str = "big.bin") -> tuple[bytes, bytes]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


def _multipart(data: bytes, filename: str = "f.bin") -> bytes:
    head, tail = _multipart_parts(filename)
    return head + data + tail


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

MiB = 1024 * 1024


# -- every body has a cap -----------------------------------------------------------------


def test_admin_body_over_the_limit_is_413(client: httpx.Client, sandbox: Sandbox) -> None:
    big = b'{"spec": "' + b"x" * 200_000 + b'"}'
    response = client.post("/_sandbox/faults", content=big, headers=JSON)
    assert response.status_code == 413
    assert response.json()["error"]["messages"] == ["Request Entity Too Large"]
    assert not sandbox.faults.config.enabled


@pytest.mark.anyio
async def test_chunked_admin_body_is_refused_at_the_limit(clock: FakeClock, make: Any) -> None:
    box = make()
    body = Stream(b" " * 16_384, 10_000)  # 160 MB if read whole
    async with _async(box, clock) as http:
        response = await http.post("/_sandbox/reset", content=body, headers=JSON)
    assert response.status_code == 413
    assert body.pulled <= 128 * 1024  # stopped just past the 64 KiB cap


@pytest.mark.anyio
async def test_chunked_upload_is_refused_as_soon_as_it_passes_the_limit(
    clock: FakeClock, make: Any
) -> None:
    box = make(max_upload_bytes=2 * MiB)
    head, tail = _multipart_parts()
    body = Stream(b"\0" * MiB, 300, head, tail)  # 300 MiB, chunked
    async with _async(box, clock) as http:
        response = await http.post(UPLOAD, content=body, headers=MULTIPART)
    assert response.status_code == 413
    assert body.pulled <= 4 * MiB
    assert box.store.upload_bytes() == 0


# -- uploads live on disk, within a quota -------------------------------------------------


def test_upload_is_stored_on_disk_and_served_from_there(
    tmp_path: Path, clock: FakeClock, make: Any
) -> None:
    db = tmp_path / "state.db"
    box = make(db=db)
    data = bytes(range(256)) * 40
    with _sync(box, clock) as http:
        created = http.post(UPLOAD, content=_multipart(data, "r.pdf"), headers=MULTIPART)
        assert created.status_code == 201
        url = created.json()["data"]["url"]
        served = http.get(url)
    assert served.content == data
    [stored] = list((tmp_path / "state.db.uploads").iterdir())
    assert stored.read_bytes() == data
    with sqlite3.connect(db) as conn:  # the database keeps the record, not the bytes
        columns = [row[1] for row in conn.execute("PRAGMA table_info(upload_files)")]
        assert "data" not in columns
    box.close()
    again = make(db=db)  # a restart with the same --db still serves the file
    with _sync(again, clock) as http:
        assert http.get(url).content == data


def test_temporary_upload_folder_is_removed_on_close(clock: FakeClock) -> None:
    box = _box(clock)
    with _sync(box, clock) as http:
        assert http.post(UPLOAD, content=_multipart(b"hi"), headers=MULTIPART).status_code == 201
    folder = box.uploads.folder
    assert [p.read_bytes() for p in folder.iterdir()] == [b"hi"]
    box.close()
    assert not folder.exists()


def test_upload_quota_is_enforced_and_a_reset_frees_it(clock: FakeClock, make: Any) -> None:
    box = make(max_upload_total_bytes=3000)
    file = _multipart(b"a" * 2000)
    with _sync(box, clock) as http:
        assert http.post(UPLOAD, content=file, headers=MULTIPART).status_code == 201
        clock.advance(1)
        refused = http.post(UPLOAD, content=file, headers=MULTIPART)
        assert refused.status_code == 413
        assert "quota" in refused.json()["error"]["messages"][0]
        assert len(list(box.uploads.folder.iterdir())) == 1
        assert http.post("/_sandbox/reset", json={}).status_code == 200
        assert list(box.uploads.folder.iterdir()) == []  # the files went with the records
        clock.advance(1)
        assert http.post(UPLOAD, content=file, headers=MULTIPART).status_code == 201


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
@pytest.mark.anyio
async def test_a_large_upload_does_not_stay_in_memory(clock: FakeClock, make: Any) -> None:
    box = make()
    head, tail = _multipart_parts()
    gc.collect()
    before = _rss()
    async with _async(box, clock) as http:
        body = Stream(b"\1" * MiB, 48, head, tail)
        response = await http.post(UPLOAD, content=body, headers=MULTIPART)
    assert response.status_code == 201
    gc.collect()
    # Kept in SQLite (as before) the 48 MiB stayed in the process for good.
    assert _rss() - before < 24 * MiB
    assert box.store.upload_bytes() == 48 * MiB


# -- admin routes: loopback Host names, or the admin token --------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8765", "localhost", "LOCALHOST.", "[::1]:80", "a.localhost", "127.9.9.9"]
)
def test_admin_routes_answer_loopback_host_names(
    sandbox: Sandbox, clock: FakeClock, host: str
) -> None:
    with _sync(sandbox, clock) as http:
        for path in ["/_sandbox/faults", "/", "/_sandbox/static/inbox.js"]:
            assert http.get(path, headers={"Host": host}).status_code == 200, path


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "10.0.0.5", "", "[::]"])
def test_admin_routes_refuse_other_host_names(
    sandbox: Sandbox, clock: FakeClock, host: str
) -> None:
    with _sync(sandbox, clock) as http:
        for method, path in [("GET", "/_sandbox/faults"), ("POST", "/_sandbox/reset")]:
            response = http.request(method, path, json={}, headers={"Host": host})
            assert response.status_code == 403, (method, path)
            assert response.json()["error"]["code"] == 403
        # Nor the inbox, its files, or any other page of the sandbox's own; a 404 too.
        for path in ["/", "/_sandbox/static/inbox.js", "/favicon.ico", "/_sandbox/nope"]:
            refused = http.get(path, headers={"Host": host})
            assert refused.status_code == 403, path
            assert refused.json()["error"]["code"] == 403
        # The API is left to its HMAC check (a rebinding page cannot sign: see _admin).
        assert http.get(BASE + "/integrations", headers={"Host": host}).status_code == 200


def test_dns_rebinding_page_cannot_switch_faults(sandbox: Sandbox, clock: FakeClock) -> None:
    # A page on evil.example whose name now resolves to 127.0.0.1: its Origin and the Host
    # it sends agree, so the Origin check alone let it through.
    headers = {"Host": "evil.example:8765", "Origin": "http://evil.example:8765"}
    with _sync(sandbox, clock) as http:
        response = http.post("/_sandbox/faults", json={"spec": "error_before=1"}, headers=headers)
    assert response.status_code == 403
    assert not sandbox.faults.config.enabled


def test_configured_host_names_are_accepted(clock: FakeClock, make: Any) -> None:
    box = make(allowed_hosts=("DevBox.internal.",), public_url="http://tunnel.example:9000")
    with _sync(box, clock, host="devbox.internal") as http:
        assert http.get("/_sandbox/faults").status_code == 200
        tunnel = {"Host": "tunnel.example:9000"}
        assert http.get("/_sandbox/faults", headers=tunnel).status_code == 200
        assert http.get("/_sandbox/faults", headers={"Host": "other.internal"}).status_code == 403
        box.allow_host("other.internal")  # what serving on --host other.internal does
        assert http.get("/_sandbox/faults", headers={"Host": "other.internal"}).status_code == 200


def test_remote_sandbox_needs_the_admin_token(clock: FakeClock, make: Any) -> None:
    config = remote_config(SandboxConfig(clock=clock, faults=FaultConfig()))
    assert config.credentials is not None and config.admin_token is not None
    assert config.credentials[1] != SANDBOX_CLIENT_SECRET
    box = make(**{"credentials": config.credentials, "admin_token": config.admin_token})
    token = config.admin_token
    with httpx.Client(transport=SyncASGITransport(box.app), base_url="http://10.1.2.3") as http:
        refused = http.get("/_sandbox/faults")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer " + "x" * len(token)}
        assert http.get("/_sandbox/faults", headers=wrong).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert http.get("/_sandbox/faults", headers=bearer).status_code == 200
        assert http.get("/").status_code == 401  # the inbox page too
        # The printed inbox link trades the token for a same-site, script-proof cookie.
        link = http.get(f"/?token={token}")
        assert link.status_code == 303 and link.headers["location"] == "/"
        cookie = link.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert http.get("/").status_code == 200
        assert http.get("/_sandbox/faults").status_code == 200
        # The page's own files and its feed answer on this non-loopback Host too (what a
        # browser on another machine needs from qontak sandbox --host 0.0.0.0 --allow-remote).
        assert http.get("/_sandbox/static/inbox.js").status_code == 200
        assert http.get("/_sandbox/messages", params={"after": 0}).status_code == 200
    # The well-known credentials are refused; the fresh ones work.
    with _sync(box, clock) as default:
        assert default.get(BASE + "/integrations").status_code == 401
    own = HmacAuth(clock, *config.credentials)
    with httpx.Client(transport=SyncASGITransport(box.app), base_url="http://x", auth=own) as h:
        assert h.get(BASE + "/integrations").status_code == 200


def test_remote_settings_refuse_the_default_credentials(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="default"):
        Sandbox(SandboxConfig(admin_token="t" * 32, faults=FaultConfig()))
    with pytest.raises(ValueError, match="own"):
        remote_config(SandboxConfig(), (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET))


def test_remote_sandbox_on_an_old_database_refuses_the_default_pair(
    tmp_path: Path, clock: FakeClock, make: Any
) -> None:
    db = tmp_path / "kept.db"
    make(db=db).close()  # a run on loopback stored the well-known pair in the file
    config = remote_config(SandboxConfig(clock=clock, faults=FaultConfig(), db=db))
    box = make(**{k: getattr(config, k) for k in ("db", "credentials", "admin_token")})
    with _sync(box, clock) as default:
        assert default.get(BASE + "/integrations").status_code == 401


def test_non_loopback_bind_is_refused_before_anything_listens(clock: FakeClock) -> None:
    box = _box(clock)
    try:
        for host in ("0.0.0.0", "::", "192.0.2.10"):
            with pytest.raises(ValueError, match="loopback"), box.run_in_thread(host=host):
                pass  # pragma: no cover - never reached
            with pytest.raises(ValueError, match="loopback"):
                serve(host=host, sandbox=box)
    finally:
        box.close()


# -- slow clients are shed ----------------------------------------------------------------


def _slow_connections(port: int, count: int) -> list[socket.socket]:
    """``count`` loopback connections that each send half a request head and stall."""
    opened = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /_sandbox/faults HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        opened.append(sock)
    return opened


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.001)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def test_slow_clients_are_shed_and_normal_requests_still_answer(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    limits = ServerLimits(max_connections=40, header_timeout=1.0)
    with sandbox.run_in_thread(limits=limits) as url:
        port = int(url.rsplit(":", 1)[1])
        slow = _slow_connections(port, 200)
        try:
            started = time.monotonic()
            answered = httpx.get(url + "/_sandbox/faults", timeout=5)
            assert answered.status_code == 200
            assert time.monotonic() - started < 4
            # The server closes the evicted ones as new ones arrive: well before the 1 s
            # header timeout could be what closed them (polled: a busy host is slow).
            evicted_by = time.monotonic() + 0.8
            while sum(_closed_by_server(s) for s in slow) < 200 - 40:
                assert time.monotonic() < evicted_by, "the oldest slow connections were kept"
                time.sleep(0.05)
            # The rest run out of time for their request heads.
            deadline = time.monotonic() + 5
            while sum(_closed_by_server(s) for s in slow) < 200:
                assert time.monotonic() < deadline, "slow connections were left open"
                time.sleep(0.1)
        finally:
            for s in slow:
                s.close()


def test_a_request_head_must_arrive_within_the_header_timeout(sandbox: Sandbox) -> None:
    limits = ServerLimits(header_timeout=0.3)
    with sandbox.run_in_thread(limits=limits) as url:
        port = int(url.rsplit(":", 1)[1])
        [sock] = _slow_connections(port, 1)
        with sock:
            sock.settimeout(3)
            started = time.monotonic()
            assert sock.recv(1) == b""  # closed without an answer
            assert time.monotonic() - started < 2
        # A normal keep-alive client is not affected: two requests on one connection.
        with httpx.Client(base_url=url) as http:
            assert http.get("/_sandbox/faults").status_code == 200
            assert http.get("/_sandbox/faults").status_code == 200


def test_an_oversized_request_head_is_refused(sandbox: Sandbox) -> None:
    with sandbox.run_in_thread(limits=ServerLimits(max_header_bytes=8 * 1024)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 12_000)
            assert sock.recv(64).startswith(b"HTTP/1.1 400")


def _trickle(port: int, head: bytes, body: bytes, *, every: float = 0.1) -> tuple[bytes, float]:
    """Send a request head and the start of its ``body``, then the rest one byte every
    ``every`` seconds until the server answers; returns all it sent until it closed the
    connection, and how long after the head its answer began."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body[:1])
        started = time.monotonic()
        rest = iter(body[1:])
        sock.settimeout(every)
        while True:
            assert time.monotonic() - started < 5, "the slow body was never cut"
            try:
                first = sock.recv(65536)
                break
            except TimeoutError:
                with contextlib.suppress(OSError):  # the server may be closing right now
                    sock.sendall(bytes([next(rest, 32)]))
        answered = time.monotonic() - started
        answer = first
        sock.settimeout(3)
        while chunk := sock.recv(65536):  # a timeout here: the connection was kept open
            answer += chunk
        return answer, answered


def _split(answer: bytes) -> tuple[str, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode("latin-1").lower(), json.loads(body)


def test_a_trickled_body_is_cut_with_a_408_and_the_connection_closed(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    limits = ServerLimits(body_timeout=0.3, min_body_rate=200)
    send = json.dumps(TEXT).encode()
    file_head, file_tail = _multipart_parts("slow.pdf")
    upload = file_head + b"%PDF-1.4 " + b"x" * 200 + file_tail
    signed = auth_headers("POST", SEND, clock())
    requests = [
        ("/_sandbox/reset", {"Content-Type": "application/json"}, b'{"full": false}'),
        (SEND, {"Content-Type": "application/json", **signed}, send),
        (UPLOAD, {**MULTIPART, **auth_headers("POST", UPLOAD, clock())}, upload),
    ]
    logger = logging.getLogger("uvicorn.error")
    records = _Records()
    logger.addHandler(records)
    try:
        with sandbox.run_in_thread(limits=limits) as url:
            port = int(url.rsplit(":", 1)[1])
            for path, headers, body in requests:
                lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"]
                lines += [f"{k}: {v}" for k, v in headers.items()]
                lines.append(f"Content-Length: {len(body)}")
                head = ("\r\n".join(lines) + "\r\n\r\n").encode()
                answer, after = _trickle(port, head, body)
                status, envelope = _split(answer)
                assert status.startswith("http/1.1 408"), (path, answer[:300])
                assert "connection: close" in status
                assert envelope == {
                    "status": "error",
                    "error": {"code": 408, "messages": ["Request Timeout"]},
                }
                assert 0.25 < after < 3, (path, after)
            # A body that keeps a fair pace gets the time its size allows: 100 bytes every
            # 0.15 s at 200 bytes/s is on time, though it takes longer than body_timeout.
            lines = [f"POST {SEND} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
            lines += [f"{k}: {v}" for k, v in signed.items()]
            lines.append(f"Content-Length: {len(send)}")
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
                for start in range(0, len(send), 100):
                    sock.sendall(send[start : start + 100])
                    time.sleep(0.15)
                assert sock.recv(65536).startswith(b"HTTP/1.1 201")
    finally:
        logger.removeHandler(records)
    assert len(sandbox.messages()) == 1  # only the fair one: the cut ones never reached it
    assert sandbox.store.upload_ids() == set()
    # One line each, no traceback, no "Exception in ASGI application".
    assert all(r.exc_info is None and r.levelno < logging.ERROR for r in records.records)


def _answer(sock: socket.socket) -> bytes:
    """One whole answer (its head and a Content-Length body) read from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(h for h in head.lower().split(b"\r\n") if h.startswith(b"content-length"))[15:]
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_the_body_timeout_leaves_chunked_expect_and_keep_alive_requests_alone(
    sandbox: Sandbox,
) -> None:
    limits = ServerLimits(body_timeout=0.3, min_body_rate=200)
    reset = "POST /_sandbox/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    with sandbox.run_in_thread(limits=limits) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            # Three requests on one connection: chunked, Expect: 100-continue, plain.
            sock.sendall(f"{reset}Transfer-Encoding: chunked\r\n\r\n".encode() + b"2\r\n{}\r\n")
            time.sleep(0.2)  # a pause, well inside the allowance
            sock.sendall(b"0\r\n\r\n")
            assert _answer(sock).startswith(b"HTTP/1.1 200")
            sock.sendall(f"{reset}Content-Length: 2\r\nExpect: 100-continue\r\n\r\n".encode())
            assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"  # asked for, then sent
            sock.sendall(b"{}")
            assert _answer(sock).startswith(b"HTTP/1.1 200")
            sock.sendall(f"{reset}Content-Length: 2\r\n\r\n{{}}".encode())
            assert _answer(sock).startswith(b"HTTP/1.1 200")
        # A chunked body trickled a byte at a time is cut like any other.
        head = f"{reset}Transfer-Encoding: chunked\r\n\r\n".encode()
        answer, after = _trickle(port, head, b"1\r\n{\r\n" + b"1\r\n \r\n" * 40)
        status, envelope = _split(answer)
        assert status.startswith("http/1.1 408") and "connection: close" in status
        assert envelope["error"]["code"] == 408 and 0.25 < after < 3


# -- odd input is a 4xx, not a 500 with a traceback ---------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'"to_name": "\\ud800"',
        b'"to_name": "Budi \\udfff"',
        b'"name": "\\ud83d"',
    ],
)
def test_lone_surrogate_escape_is_a_400(client: httpx.Client, sandbox: Sandbox, raw: bytes) -> None:
    import json as jsonlib

    body = jsonlib.dumps({k: v for k, v in TEXT.items() if k != "to_name"})
    payload = body[:-1].encode() + b", " + raw + b"}"
    if b"to_name" not in raw:
        payload = payload[:-1] + b', "to_name": "Budi"}'
    response = client.post(SEND, content=payload, headers=JSON)
    assert response.status_code == 400
    assert response.json() == {
        "status": "error",
        "error": {"code": 400, "messages": ["Invalid JSON payload"]},
    }
    assert sandbox.messages() == []


def test_a_surrogate_pair_escape_is_a_character(client: httpx.Client, sandbox: Sandbox) -> None:
    import json as jsonlib

    body = jsonlib.dumps({**TEXT, "to_name": "Budi \U0001f600"})  # ensure_ascii: a pair
    assert "\\ud83d\\ude00" in body
    assert client.post(SEND, content=body, headers=JSON).status_code == 201
    assert sandbox.messages()[0]["to_name"] == "Budi \U0001f600"


#: Text with what breaks servers: lone surrogates (JSON escapes), NUL, controls, long runs.
_HOSTILE_TEXT = st.text(
    st.characters(codec=None, categories=["Cs", "Cc", "Lu", "Ll", "Nd", "Zs", "So"]),
    max_size=40,
) | st.sampled_from(["\ud800", "a\x00b", "\udfff\ud800", "x" * 5000])
_HOSTILE_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_HOSTILE_TEXT, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    example=st.sampled_from(sorted(EXAMPLES)),
    path=st.lists(st.sampled_from(["to_name", "parameters", "body", "0", "value", "language"])),
    value=_HOSTILE_VALUE,
)
def test_hostile_values_anywhere_in_a_send_are_never_a_500(
    example: str, path: list[str], value: Any
) -> None:
    import json as jsonlib

    payload: Any = jsonlib.loads(jsonlib.dumps(EXAMPLES[example]))
    target = payload
    for key in path[:-1]:  # walk as deep as the example goes, then put the value there
        nxt = target.get(key) if isinstance(target, dict) else None
        if not isinstance(nxt, dict):
            break
        target = nxt
    target[path[-1] if path else "to_name"] = value
    body = jsonlib.dumps(payload)  # ensure_ascii: lone surrogates go as \udXXX escapes
    clock = FakeClock()
    box = Sandbox(
        SandboxConfig(clock=clock, faults=FaultConfig(), rate_limits=RateLimitConfig(False))
    )
    try:
        with _sync(box, clock) as http:
            response = http.post(SEND, content=body, headers=JSON)
            assert response.status_code < 500, response.text
            response.json()  # always Qontak's JSON envelope
            assert http.get("/_sandbox/messages").status_code == 200  # and still readable
    finally:
        box.close()


@pytest.mark.parametrize(
    "body", [b'{"\\ud800": 1}', b'{"spec": "\\udfff"}', b'{"scope": "\\ud800"}']
)
def test_admin_body_with_a_lone_surrogate_is_a_400(client: httpx.Client, body: bytes) -> None:
    response = client.post("/_sandbox/faults", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"]["messages"] == ["Invalid JSON payload"]


def _envelope(response: httpx.Response, status: int, text: str | None = None) -> None:
    """``response`` is ``status`` in the sandbox's JSON error envelope (``text`` if given)."""
    assert response.status_code == status, (response.request.url, response.text[:200])
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"status", "error"} and body["status"] == "error"
    assert body["error"]["code"] == status
    [message] = body["error"]["messages"]
    assert text is None or message == text


@pytest.mark.parametrize("path", ["inbox%00.js", "inbox.js%00", "%00", "x" * 5000 + ".js"])
def test_odd_static_paths_are_404(raw_client: httpx.Client, path: str) -> None:
    _envelope(raw_client.get("/_sandbox/static/" + path), 404, "Not Found")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/_sandbox/static/nope.js", 404),  # the route's own 404
        ("GET", "/_sandbox/static/", 404),
        ("GET", "/_sandbox/stati", 404),  # no route at all
        ("GET", "/_sandbox", 404),
        ("GET", "/_sandbox/nope", 404),
        ("GET", "/nope", 404),
        ("GET", "/_sandbox/files/nope/f.txt", 404),
        ("HEAD", "/_sandbox/nope", 404),
        ("DELETE", "/_sandbox/messages", 405),
        ("PUT", "/_sandbox/reset", 405),
        ("POST", "/_sandbox/static/inbox.js", 405),
        ("POST", "/", 405),
    ],
)
def test_the_sandbox_own_errors_are_json(
    raw_client: httpx.Client, method: str, path: str, status: int
) -> None:
    response = raw_client.request(method, path)
    if method == "HEAD":
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
    else:
        _envelope(response, status, "Not Found" if status == 404 else "Method Not Allowed")
    if status == 405:  # the methods the path does serve
        assert "GET" in response.headers["allow"] or "POST" in response.headers["allow"]


def test_an_api_405_names_the_allowed_methods(client: httpx.Client) -> None:
    response = client.delete(SEND)  # signed: the gateway lets it reach the router
    _envelope(response, 405, "Method Not Allowed")
    assert response.headers["allow"] == "POST"


# Any bytes, percent-encoded: NULs, control characters, invalid UTF-8, encoded slashes.
_SEGMENT = st.binary(max_size=12).map(lambda b: quote_from_bytes(b, safe=""))


@pytest.fixture(scope="module")
def shared_box() -> Iterator[Sandbox]:
    """One sandbox for every example: a hundred sandboxes would cost more than the test."""
    box = Sandbox(SandboxConfig(faults=FaultConfig()))
    yield box
    box.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
    prefix=st.sampled_from(["/", "/_sandbox/", "/_sandbox/static/", "/_sandbox/files/"]),
    segments=st.lists(_SEGMENT, max_size=3),
)
def test_any_path_of_the_sandbox_own_is_never_a_500(
    shared_box: Sandbox, method: str, prefix: str, segments: list[str]
) -> None:
    path = prefix + "/".join(segments)
    transport = SyncASGITransport(shared_box.app)
    with httpx.Client(transport=transport, base_url="http://sandbox.local") as http:
        response = http.request(method, path, headers=JSON if method != "GET" else {})
    assert response.status_code < 500, (method, path, response.text[:200])
    if response.status_code >= 400 and method != "HEAD":
        _envelope(response, response.status_code)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_client_gone_mid_body_is_one_log_line(sandbox: Sandbox) -> None:
    logger = logging.getLogger("uvicorn.error")
    with sandbox.run_in_thread() as url:
        records = _Records()
        level = logger.level
        logger.addHandler(records)
        logger.setLevel(logging.INFO)
        try:
            port = int(url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(
                    b"POST /_sandbox/reset HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
                )
                time.sleep(0.2)
            deadline = time.monotonic() + 5
            while not records.records and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            logger.removeHandler(records)
            logger.setLevel(level)
    assert [r.getMessage() for r in records.records] == [
        "client disconnected before its request was read: POST /_sandbox/reset"
    ]
    assert all(r.exc_info is None for r in records.records)


# -- late accepts ---------------------------------------------------------------------------


def _message(client: Any) -> Any:
    channel = client.channels.list()[0]
    template = client.templates.find("order_update", language="id")
    return messages.text("081234567890", ["Budi", "INV-1"], template=template, channel=channel)


def _send(client: Any) -> Any:
    return client.broadcasts.send_direct(_message(client))


def test_accept_late_in_process_is_a_timeout_after_storing() -> None:
    faults = FaultConfig(accept_late=1, scope="send")
    with sandbox_client(config=SandboxConfig(faults=faults)) as (client, sandbox):
        with pytest.raises(DeliveryUnknownError):
            _send(client)
        [truth] = sandbox.messages()  # stored all the same: the late accept
        assert truth["to_number"] == "6281234567890"
        assert [e.fault for e in sandbox.faults.events] == ["accept_late"]


def test_accept_late_through_real_uvicorn(clock: FakeClock) -> None:
    from qontak import Qontak

    box = _box(clock)
    box.set_faults(FaultConfig(accept_late=1, accept_late_seconds=6, scope="send"))
    try:
        with box.run_in_thread() as url:
            client = Qontak(
                SANDBOX_CLIENT_ID,
                SANDBOX_CLIENT_SECRET,
                base_url=url + BASE,
                env_file=None,
                clock=clock,
                timeout=10,
                max_retries=0,
            )
            with client:
                msg = _message(client)  # look-ups at leisure; only the send is hurried
                started = time.monotonic()
                with pytest.raises(DeliveryUnknownError):
                    client.with_options(timeout=0.5).broadcasts.send_direct(msg)
                assert time.monotonic() - started < 5  # the client's timeout, not the delay
                assert len(box.messages()) == 1  # stored all the same
                # A client that waits long enough gets the real answer, late.
                box.set_faults(FaultConfig(accept_late=1, accept_late_seconds=0.3, scope="send"))
                clock.advance(1)
                started = time.monotonic()
                sent = client.broadcasts.send_direct(msg)
                assert time.monotonic() - started >= 0.3
                assert sent.id in {m["broadcast_id"] for m in box.messages()}
    finally:
        box.close()


def test_accept_late_raises_a_read_timeout_in_process(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.set_faults("accept_late=1,accept_late_seconds=60")
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout) as caught:
        client.post(SEND, json=TEXT)
    assert isinstance(caught.value, LateAnswer)
    assert time.monotonic() - started < 5  # no real wait in process
    assert len(sandbox.messages()) == 1


def test_accept_late_through_the_admin_route(client: httpx.Client, sandbox: Sandbox) -> None:
    response = client.post("/_sandbox/faults", json={"accept_late": 0.5, "seed": 3})
    assert response.status_code == 200
    assert response.json()["data"]["accept_late"] == 0.5
    assert sandbox.faults.config.accept_late_seconds == 35.0  # past the SDK's 30 s timeout
