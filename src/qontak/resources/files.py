"""Media upload: ``POST /file_uploader`` (multipart ``file``) returns a URL for headers."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import IO, Protocol

from .._checks import check_choice_text, check_text
from .._media import (
    MAX_MEDIA_BYTES,
    MAX_UPLOAD_BYTES,
    SNIFF_BYTES,
    MediaType,
    check_media,
    check_media_file,
)
from .._pipeline import ApiRequest, ApiResponse
from ..errors import ValidationError
from ..models import HeaderFormat, UploadedFile
from ._base import to_model

__all__ = ["AsyncFileUploader", "FileUploader"]

FileInput = str | os.PathLike[str] | bytes | IO[bytes]


class _SyncClient(Protocol):
    def _request(self, req: ApiRequest) -> ApiResponse: ...


class _AsyncClient(Protocol):
    async def _request(self, req: ApiRequest) -> ApiResponse: ...


def _upload_request(
    file: FileInput,
    filename: str | None,
    content_type: str | None,
    kind: HeaderFormat | str | None = None,
) -> ApiRequest:
    """The multipart request for ``file``, after checking it as header media (type sniffed
    from its first bytes, WhatsApp's size limit): a file WhatsApp would refuse is never
    uploaded."""
    limit = MAX_UPLOAD_BYTES
    if content_type is not None:
        # It goes into the multipart part's headers: a line break would inject more.
        check_choice_text("content_type", content_type, max_len=255)
    if isinstance(file, str | os.PathLike):
        path = Path(check_text("file", os.fspath(file), max_len=4096, multiline=False))
        # Checked from the file system and the first bytes, before reading it whole.
        check_media_file(path, kind=kind)
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise ValidationError("file", f"cannot read {path}: {exc.strerror}") from None
        filename = filename or path.name
    elif isinstance(file, bytes | bytearray | memoryview):
        content = bytes(file)
    elif hasattr(file, "read"):
        wanted = HeaderFormat.of(kind) if isinstance(kind, str) else None
        if isinstance(wanted, HeaderFormat):
            limit = MAX_MEDIA_BYTES.get(wanted, limit)
        # One byte past the limit is enough to refuse it; never read an endless stream whole.
        data = file.read(limit + 1)
        if not isinstance(data, bytes):
            raise ValidationError(
                "file", "open the file in binary mode ('rb')", code="invalid_type"
            )
        content = data
        filename = filename or Path(getattr(file, "name", "") or "upload").name
    else:
        raise ValidationError(
            "file",
            f"expected a path, bytes or a binary file, got {type(file).__name__}",
            code="invalid_type",
        )
    if not filename:
        raise ValidationError("filename", "needed when uploading raw bytes", code="missing")
    # A name taken from the file system may hold what a multipart header cannot.
    check_text("filename", filename, max_len=255, multiline=False)
    sniffed = check_media(content[:SNIFF_BYTES], len(content), kind=kind, filename=filename)
    ctype = content_type or _content_type(sniffed, filename)
    # Uploading twice only stores the file twice, so the upload may be retried like a read.
    return ApiRequest(
        "POST", "/file_uploader", files={"file": (filename, content, ctype)}, idempotent=True
    )


def _content_type(sniffed: MediaType | None, filename: str) -> str:
    """The type the bytes really have; the name's guess only when the content does not tell
    (unknown, or a legacy Office file whose container is the same for .doc/.xls/.ppt)."""
    if sniffed is not None and sniffed.mime != "application/x-ole-storage":
        return sniffed.mime
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


class FileUploader:
    """Upload media to Qontak's storage and use the returned URL as header media."""

    def __init__(self, client: _SyncClient) -> None:
        self._client = client

    def upload(
        self,
        file: FileInput,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        kind: HeaderFormat | str | None = None,
    ) -> UploadedFile:
        """Upload a path, bytes or a binary file object; returns ``UploadedFile(url=…)``.

        The file is checked before anything is sent: its real type is read from its first
        bytes (not its name) and its size held to WhatsApp's limit. With ``kind`` (``IMAGE``,
        ``VIDEO``, ``DOCUMENT``) it must be media that header takes (JPEG/PNG ≤ 5 MB, MP4/3GPP
        ≤ 16 MB, PDF ≤ 100 MB); without it, a file named like media must be that media.
        Raises ``ValidationError`` (code ``wrong_media_type``, ``too_large``, ``not_found``).

        >>> client.file_uploader.upload("invoice.pdf", kind="DOCUMENT").url  # doctest: +SKIP
        """
        resp = self._client._request(_upload_request(file, filename, content_type, kind))
        return to_model(resp, UploadedFile, "uploaded file")


class AsyncFileUploader:
    """Async twin of :class:`FileUploader`."""

    def __init__(self, client: _AsyncClient) -> None:
        self._client = client

    async def upload(
        self,
        file: FileInput,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        kind: HeaderFormat | str | None = None,
    ) -> UploadedFile:
        """See :meth:`FileUploader.upload`."""
        resp = await self._client._request(_upload_request(file, filename, content_type, kind))
        return to_model(resp, UploadedFile, "uploaded file")
