"""Media upload: ``POST /file_uploader`` (multipart ``file``) returns a URL for headers."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import IO, Protocol

from .._checks import check_choice_text, check_text
from .._pipeline import ApiRequest, ApiResponse
from ..errors import ValidationError
from ..models import UploadedFile
from ._base import to_model

__all__ = ["AsyncFileUploader", "FileUploader"]

FileInput = str | os.PathLike[str] | bytes | IO[bytes]


class _SyncClient(Protocol):
    def _request(self, req: ApiRequest) -> ApiResponse: ...


class _AsyncClient(Protocol):
    async def _request(self, req: ApiRequest) -> ApiResponse: ...


def _upload_request(file: FileInput, filename: str | None, content_type: str | None) -> ApiRequest:
    if content_type is not None:
        # It goes into the multipart part's headers: a line break would inject more.
        check_choice_text("content_type", content_type, max_len=255)
    if isinstance(file, str | os.PathLike):
        path = Path(check_text("file", os.fspath(file), max_len=4096, multiline=False))
        try:
            if not path.is_file():
                raise ValidationError("file", f"no such file: {path}", code="not_found")
            content: bytes | IO[bytes] = path.read_bytes()
        except OSError as exc:
            raise ValidationError("file", f"cannot read {path}: {exc.strerror}") from None
        filename = filename or path.name
    elif isinstance(file, bytes):
        content = file
    elif callable(getattr(file, "read", None)) and not isinstance(file, bytearray | memoryview):
        content = file
        name = getattr(file, "name", "")
        filename = filename or Path(name if isinstance(name, str) and name else "upload").name
    else:
        raise ValidationError(
            "file",
            f"expected a path, bytes or a binary file, got {type(file).__name__}",
            code="invalid_type",
        )
    if not filename:
        raise ValidationError("filename", "needed when uploading raw bytes")
    # A name taken from the file system may hold what a multipart header cannot.
    check_text("filename", filename, max_len=255, multiline=False)
    ctype = content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    # Uploading twice only stores the file twice, so the upload may be retried like a read.
    return ApiRequest(
        "POST", "/file_uploader", files={"file": (filename, content, ctype)}, idempotent=True
    )


class FileUploader:
    """Upload media to Qontak's storage and use the returned URL as header media."""

    def __init__(self, client: _SyncClient) -> None:
        self._client = client

    def upload(
        self, file: FileInput, *, filename: str | None = None, content_type: str | None = None
    ) -> UploadedFile:
        """Upload a path, bytes or a binary file object; returns ``UploadedFile(url=…)``.

        >>> client.file_uploader.upload("invoice.pdf").url  # doctest: +SKIP
        """
        resp = self._client._request(_upload_request(file, filename, content_type))
        return to_model(resp, UploadedFile, "uploaded file")


class AsyncFileUploader:
    """Async twin of :class:`FileUploader`."""

    def __init__(self, client: _AsyncClient) -> None:
        self._client = client

    async def upload(
        self, file: FileInput, *, filename: str | None = None, content_type: str | None = None
    ) -> UploadedFile:
        """See :meth:`FileUploader.upload`."""
        resp = await self._client._request(_upload_request(file, filename, content_type))
        return to_model(resp, UploadedFile, "uploaded file")
