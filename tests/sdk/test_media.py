"""Header media: the real type from the first bytes, WhatsApp's size limits, checked before any
upload (SDK and CLI)."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from qontak import Qontak, ValidationError
from qontak._media import (
    MAX_MEDIA_BYTES,
    MAX_UPLOAD_BYTES,
    check_media,
    check_media_file,
    sniff,
)
from qontak.cli import app
from qontak.cli.demo import sample_pdf, sample_png
from qontak.models import HeaderFormat
from qontak.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, Sandbox, SyncASGITransport

MIB = 1024 * 1024
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32
PNG = sample_png()
GIF = b"GIF89a" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 32
GPP = b"\x00\x00\x00\x14ftyp3gp4\x00\x00\x00\x00" + b"\x00" * 32
MOV = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00" + b"\x00" * 32
M4A = b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00" + b"\x00" * 32
PDF = sample_pdf()
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64


def office(part: str) -> bytes:
    """A real (tiny) Office Open XML container with the given main part."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("_rels/.rels", "<Relationships/>")
        z.writestr(part, "<x/>")
    return buffer.getvalue()


DOCX = office("word/document.xml")
XLSX = office("xl/workbook.xml")
PPTX = office("ppt/presentation.xml")


@pytest.mark.parametrize(
    ("data", "mime", "kind"),
    [
        (JPEG, "image/jpeg", HeaderFormat.IMAGE),
        (PNG, "image/png", HeaderFormat.IMAGE),
        (GIF, "image/gif", HeaderFormat.IMAGE),
        (WEBP, "image/webp", HeaderFormat.IMAGE),
        (MP4, "video/mp4", HeaderFormat.VIDEO),
        (GPP, "video/3gpp", HeaderFormat.VIDEO),
        (MOV, "video/quicktime", HeaderFormat.VIDEO),
        (M4A, "audio/mp4", None),
        (PDF, "application/pdf", HeaderFormat.DOCUMENT),
        (b"\n\n%PDF-1.4 junk before the marker", "application/pdf", HeaderFormat.DOCUMENT),
        (DOCX, "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         HeaderFormat.DOCUMENT),
        (XLSX, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         HeaderFormat.DOCUMENT),
        (PPTX, "application/vnd.openxmlformats-officedocument.presentationml.presentation",
         HeaderFormat.DOCUMENT),
        (OLE, "application/x-ole-storage", HeaderFormat.DOCUMENT),
    ],
)  # fmt: skip
def test_sniff_tells_the_type_from_the_first_bytes(
    data: bytes, mime: str, kind: HeaderFormat | None
) -> None:
    found = sniff(data)
    assert found is not None
    assert (found.mime, found.kind) == (mime, kind)


@pytest.mark.parametrize("data", [b"", b"hello, world", b"PK\x03\x04 a plain zip", b"\x00" * 64])
def test_sniff_does_not_guess(data: bytes) -> None:
    assert sniff(data) is None


# --- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [(JPEG, "IMAGE"), (PNG, "image"), (MP4, "VIDEO"), (GPP, "VIDEO"), (PDF, "DOCUMENT")],
)
def test_accepted_header_media(data: bytes, kind: str) -> None:
    assert check_media(data, len(data), kind=kind, filename="whatever.bin") is not None


@pytest.mark.parametrize(
    ("data", "kind", "says"),
    [
        (PDF, "IMAGE", "is a PDF document (application/pdf); an IMAGE header takes JPEG or PNG"),
        (GIF, "IMAGE", "is a GIF image (image/gif)"),
        (WEBP, "IMAGE", "WebP"),
        (MOV, "VIDEO", "QuickTime"),
        (M4A, "VIDEO", "audio"),
        (DOCX, "DOCUMENT", "Word document"),  # a document, but a template header takes PDF only
        (PNG, "DOCUMENT", "takes PDF"),
        (b"plain text", "DOCUMENT", "of an unknown type"),
    ],
)
def test_wrong_type_for_the_header_is_refused(data: bytes, kind: str, says: str) -> None:
    with pytest.raises(ValidationError) as err:
        check_media(data, len(data), kind=kind, filename="file.x")
    assert err.value.code == "wrong_media_type"
    assert err.value.field == "file"
    assert says in err.value.reason


def test_a_file_named_like_media_must_be_that_media() -> None:
    with pytest.raises(ValidationError) as err:
        check_media(PDF, len(PDF), filename="photo.JPG")
    assert err.value.code == "wrong_media_type"
    assert "'photo.JPG' is named like image media but is a PDF document" in err.value.reason
    # The name only has to agree on the kind; the bytes decide the rest.
    assert check_media(PNG, len(PNG), filename="photo.jpg") is not None
    assert check_media(DOCX, len(DOCX), filename="report.pdf") is not None
    # Names that claim nothing are not judged by their bytes.
    assert check_media(b"plain text", 10, filename="notes.txt") is None


@pytest.mark.parametrize(
    ("data", "kind", "limit"),
    [
        (JPEG, HeaderFormat.IMAGE, 5 * MIB),
        (MP4, HeaderFormat.VIDEO, 16 * MIB),
        (PDF, HeaderFormat.DOCUMENT, 100 * MIB),
    ],
)
def test_whatsapp_size_limits_per_kind(data: bytes, kind: HeaderFormat, limit: int) -> None:
    assert MAX_MEDIA_BYTES[kind] == limit
    assert check_media(data, limit, kind=kind) is not None
    with pytest.raises(ValidationError) as err:
        check_media(data, limit + 1, kind=kind, filename="big")
    assert err.value.code == "too_large"
    assert f"at most {limit // MIB} MB for an {kind} header" in err.value.reason
    # Without a kind, the sniffed kind's limit applies.
    with pytest.raises(ValidationError):
        check_media(data, limit + 1)


def test_unknown_files_are_held_to_the_largest_limit() -> None:
    assert MAX_UPLOAD_BYTES == 100 * MIB
    assert check_media(b"text", MAX_UPLOAD_BYTES, filename="a.txt") is None
    with pytest.raises(ValidationError) as err:
        check_media(b"text", MAX_UPLOAD_BYTES + 1, filename="a.txt")
    assert err.value.code == "too_large"


def test_kind_must_be_a_media_header() -> None:
    for kind in ("TEXT", "AUDIO", "LOCATION"):
        with pytest.raises(ValidationError) as err:
            check_media(PNG, len(PNG), kind=kind)
        assert err.value.code == "invalid_value"


def test_check_media_file_reads_size_from_the_file_system(tmp_path: Path) -> None:
    big = tmp_path / "poster.png"
    with big.open("wb") as f:
        f.write(PNG)
        f.truncate(5 * MIB + 1)  # sparse: nothing of this size is written or read
    with pytest.raises(ValidationError) as err:
        check_media_file(big, kind="IMAGE")
    assert err.value.code == "too_large" and "5 MB" in err.value.reason
    with pytest.raises(ValidationError) as err:
        check_media_file(tmp_path / "missing.png")
    assert err.value.code == "not_found"
    with pytest.raises(ValidationError) as err:
        check_media_file(tmp_path)
    assert err.value.code == "not_found"


# --- uploads: checked before anything is sent ------------------------------------------------


@pytest.fixture
def client_and_requests() -> Iterator[tuple[Qontak, list[httpx.Request]]]:
    sandbox = Sandbox()
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> None:
        request.read()
        seen.append(request)

    client = Qontak(
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        base_url="http://sandbox.local",
        http_client=httpx.Client(
            transport=SyncASGITransport(sandbox.app), event_hooks={"request": [record]}
        ),
        env_file=None,
        rate_limits=False,
    )
    yield client, seen
    client.close()
    sandbox.close()


def test_upload_of_a_mislabelled_file_sends_nothing(client_and_requests, tmp_path: Path) -> None:
    client, seen = client_and_requests
    fake = tmp_path / "promo.jpg"
    fake.write_bytes(PDF)
    with pytest.raises(ValidationError) as err:
        client.file_uploader.upload(fake)
    assert err.value.code == "wrong_media_type"
    with pytest.raises(ValidationError):
        client.file_uploader.upload(PDF, filename="a.png", kind="IMAGE")
    with pytest.raises(ValidationError):
        client.file_uploader.upload(io.BytesIO(PDF), filename="a.pdf", kind="VIDEO")
    assert seen == []


def test_upload_of_a_file_too_large_sends_nothing(client_and_requests, tmp_path: Path) -> None:
    client, seen = client_and_requests
    video = tmp_path / "clip.mp4"
    with video.open("wb") as f:
        f.write(MP4)
        f.truncate(16 * MIB + 1)
    with pytest.raises(ValidationError) as err:
        client.file_uploader.upload(video)
    assert err.value.code == "too_large"
    stream = io.BytesIO(JPEG + b"\x00" * (5 * MIB))
    with pytest.raises(ValidationError) as err:
        client.file_uploader.upload(stream, filename="a.jpg", kind="IMAGE")
    assert err.value.code == "too_large"
    assert stream.tell() == 5 * MIB + 1  # read one byte past the limit, not the whole stream
    assert seen == []


def test_upload_sends_the_type_the_bytes_have(client_and_requests) -> None:
    client, seen = client_and_requests
    uploaded = client.file_uploader.upload(PNG, filename="picture.bin", kind="IMAGE")
    assert uploaded.url
    [request] = seen
    assert b'filename="picture.bin"' in request.content
    assert b"Content-Type: image/png" in request.content


def test_upload_refuses_text_mode_files_and_odd_inputs(client_and_requests, tmp_path: Path) -> None:
    client, seen = client_and_requests
    text = tmp_path / "a.pdf"
    text.write_bytes(PDF)
    with text.open("r", encoding="latin-1") as f, pytest.raises(ValidationError) as err:
        client.file_uploader.upload(f)  # type: ignore[arg-type]
    assert err.value.code == "invalid_type"
    with pytest.raises(ValidationError) as err:
        client.file_uploader.upload(12345)  # type: ignore[arg-type]
    assert err.value.code == "invalid_type"
    assert seen == []


# --- the CLI refuses before building or uploading --------------------------------------------


@pytest.fixture(scope="module")
def served_url() -> Iterator[tuple[Sandbox, str]]:
    sandbox = Sandbox()
    with sandbox.run_in_thread() as url:
        yield sandbox, url
    sandbox.close()


def _cli(url: str, *args: str) -> Any:
    env = {
        "QONTAK_BASE_URL": url,
        "QONTAK_CLIENT_ID": SANDBOX_CLIENT_ID,
        "QONTAK_CLIENT_SECRET": SANDBOX_CLIENT_SECRET,
        "QONTAK_ENV": None,
        "QONTAK_LOG": None,
        "COLUMNS": "200",
    }
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.mark.parametrize("dry_run", [True, False])
def test_cli_send_refuses_a_local_header_file_of_the_wrong_type(
    served_url: tuple[Sandbox, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dry_run: bool
) -> None:
    sandbox, url = served_url
    monkeypatch.chdir(tmp_path)
    fake = tmp_path / "promo.png"
    fake.write_bytes(PDF)
    args = ["send", "--to", "081234567890", "-t", "promo_image", "-l", "id"]
    args += ["--header-image", str(fake)] + (["--dry-run"] if dry_run else [])
    result = _cli(url, *args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "--header-image" in result.stderr and "PDF" in result.stderr
    assert sandbox.messages() == []


def test_a_huge_local_file_is_refused_without_being_read(
    client_and_requests, tmp_path: Path
) -> None:
    """The size comes from the file system and the type from the first bytes: a 150 MB file is
    refused before it is read into memory."""
    client, seen = client_and_requests
    huge = tmp_path / "archive.pdf"
    with huge.open("wb") as f:
        f.write(PDF)
        f.truncate(150 * MIB)
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError) as err:
            client.file_uploader.upload(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.code == "too_large"
    assert peak < 10 * MIB
    assert seen == []
