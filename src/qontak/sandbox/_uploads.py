"""Uploaded files: streamed to disk with a per-file limit and a total quota, served from disk.

``POST /file_uploader`` used to read the whole multipart body into memory and keep the
file as a SQLite blob: a 100 MiB upload held about 260 MB of memory for good, and a chunked
300 MiB one was read whole before the 413. Now:

- the body is counted as it arrives and refused with 413 the moment it passes the per-file
  limit (:attr:`SandboxConfig.max_upload_bytes`, plus room for the multipart framing) or the
  room left in the quota, declared ``Content-Length`` or chunked alike;
- the multipart parser spools the file part to a temporary file (never more than 1 MiB of
  it in memory), which is then copied into the upload folder under the upload's id (a
  UUID: the client's file name never becomes a path);
- SQLite keeps only the record (name, type, size); the quota
  (:attr:`SandboxConfig.max_upload_total_bytes`) counts the recorded sizes plus uploads
  being written, so concurrent uploads cannot overshoot it together;
- a reset removes the files with their records.

The folder is :attr:`SandboxConfig.upload_dir` when set, else ``<db>.uploads`` beside the
``--db`` file (kept with it across restarts), else a temporary folder the sandbox removes
when it closes (or when the process exits).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import quote

import anyio.to_thread
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message

from ._store import Store, Upload

if TYPE_CHECKING:
    from . import Sandbox

__all__ = ["MULTIPART_OVERHEAD", "UploadStorage", "receive_upload"]

#: Bytes of multipart framing (boundaries, part headers, the form's other fields) allowed
#: on top of the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class _TooLarge(Exception):
    """The body passed its cap while it was being read."""


class QuotaExceeded(Exception):
    """Storing a file would pass the total upload quota."""


def _error(status: int, text: str) -> JSONResponse:
    body = {"status": "error", "error": {"code": status, "messages": [text]}}
    return JSONResponse(body, status_code=status)


def _too_large() -> JSONResponse:
    return _error(413, "Request Entity Too Large")


_QUOTA_TEXT = "The sandbox's upload quota is used up; POST /_sandbox/reset frees it"


def _refused(size: int, limit: int) -> JSONResponse:
    """413 for a body of ``size`` bytes: over the per-file limit, or over the quota's room."""
    return _too_large() if size > limit + MULTIPART_OVERHEAD else _error(413, _QUOTA_TEXT)


class UploadStorage:
    """The upload folder of one sandbox: where files go, how much room is left."""

    def __init__(
        self, store: Store, *, folder: str | Path | None, db: str | Path | None, quota: int
    ) -> None:
        self._store = store
        self._quota = quota
        self._lock = threading.Lock()
        self._reserved = 0
        self._temporary = False
        if folder is not None:
            self._folder: Path | None = Path(folder)
        elif db is not None and str(db) != ":memory:":
            self._folder = Path(f"{db}.uploads")
        else:
            self._folder = None  # made on first use, so a sandbox without uploads makes none
        self._cleanup: weakref.finalize[..., UploadStorage] | None = None

    @property
    def folder(self) -> Path:
        """The folder holding the files (created if needed)."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="qontak-sandbox-uploads-"))
                self._temporary = True
                # Also removed when the process exits without close() (a test's forgotten box).
                self._cleanup = weakref.finalize(
                    self, shutil.rmtree, str(self._folder), ignore_errors=True
                )
            self._folder.mkdir(parents=True, exist_ok=True)
            return self._folder

    def path(self, upload: Upload) -> Path | None:
        """The file of a recorded upload, or None if it is gone."""
        try:
            uuid.UUID(upload.id)
        except ValueError:  # only ids we made ever name a file
            return None
        candidate = self.folder / upload.id
        return candidate if candidate.is_file() else None

    def room(self) -> int:
        """Bytes the quota still allows (what is stored and being stored subtracted)."""
        with self._lock:
            reserved = self._reserved
        return max(0, self._quota - self._store.upload_bytes() - reserved)

    @contextlib.contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        """Hold ``size`` bytes of the quota while a file is written, or QuotaExceeded."""
        with self._lock:
            used = self._store.upload_bytes() + self._reserved
            if used + size > self._quota:
                raise QuotaExceeded(f"{used} of {self._quota} bytes in use")
            self._reserved += size
        try:
            yield
        finally:
            with self._lock:
                self._reserved -= size

    def save(self, upload_id: str, source: IO[bytes]) -> None:
        """Copy ``source`` (from its start) to the file of ``upload_id`` (blocking)."""
        source.seek(0)
        target = self.folder / upload_id
        try:
            with target.open("xb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    def clear(self, keep: set[str]) -> None:
        """Remove every file whose id is not in ``keep`` (after a reset dropped the records)."""
        with self._lock:
            folder = self._folder
        if folder is None or not folder.is_dir():
            return
        for item in folder.iterdir():
            if item.name not in keep and item.is_file():
                item.unlink(missing_ok=True)

    def close(self) -> None:
        """Remove the folder if it is a temporary one."""
        if self._cleanup is not None:
            self._cleanup()


async def receive_upload(request: Request, sandbox: Sandbox) -> Response:
    """``POST /file_uploader``: stream the file to disk within the limits; 201 with its URL."""
    storage = sandbox.uploads
    limit = sandbox.config.max_upload_bytes
    room = storage.room()
    cap = min(limit, room) + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        return _refused(int(declared), limit)

    seen = 0
    receive = request.receive

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise _TooLarge
        return message

    form_request = Request(request.scope, capped)
    try:
        form = await form_request.form(max_files=1, max_fields=10)
    except _TooLarge:
        return _refused(seen, limit)
    except ClientDisconnect:
        raise
    except Exception:  # malformed multipart of any kind is the client's fault
        return _error(400, "Invalid multipart payload")
    try:
        item = form.get("file")
        if not isinstance(item, UploadFile):
            return _error(422, "file is missing")
        size = item.size if item.size is not None else 0
        if size > limit:
            return _too_large()
        filename = (item.filename or "file").replace("\\", "/").rsplit("/", 1)[-1] or "file"
        content_type = item.content_type or "application/octet-stream"
        upload = Upload(str(uuid.uuid4()), filename, content_type, size)
        try:
            with storage.reserve(size):
                await anyio.to_thread.run_sync(storage.save, upload.id, item.file)
                sandbox.store.add_upload(upload, sandbox.now())
        except QuotaExceeded:
            return _error(413, _QUOTA_TEXT)
    finally:
        await form.close()
    base = sandbox.config.public_url or str(request.base_url)
    url = f"{base.rstrip('/')}/_sandbox/files/{upload.id}/{quote(filename)}"
    body = {"status": "success", "data": {"filename": filename, "url": url}}
    return JSONResponse(body, status_code=201)
