"""Header media: what a file really is (from its first bytes) and WhatsApp's size limits.

A file's name says little (``photo.jpg`` can be a PDF, a signed URL has no extension), and
WhatsApp fetches the media only after Qontak accepted the send, so a wrong type or a file too
large shows up later as a failed delivery (131053 "media upload error"). Checked here, before an
upload, it is a :class:`~qontak.errors.ValidationError` naming the file instead.

Rules (``whatsapp-rules.md`` §1.5, §1.2):

========  ===========================  =========  =============================================
header    accepted (sniffed) types     max size   note
========  ===========================  =========  =============================================
IMAGE     JPEG, PNG                    5 MB       GIF/WebP/HEIC are images WhatsApp refuses here
VIDEO     MP4, 3GPP                    16 MB      QuickTime ``.mov`` is refused
DOCUMENT  PDF                          100 MB     Word/Excel/PowerPoint are documents, but a
                                                  template header takes PDF only
========  ===========================  =========  =============================================

"MB" is read as MiB (the larger reading), so nothing WhatsApp accepts is refused here.

>>> sniff(b"%PDF-1.7 ...").mime
'application/pdf'
>>> sniff(b"\\x89PNG\\r\\n\\x1a\\n....").kind
<HeaderFormat.IMAGE: 'IMAGE'>
>>> check_media(b"%PDF-1.4", 10, kind="IMAGE", filename="promo.jpg")
Traceback (most recent call last):
...
qontak.errors.ValidationError: file: promo.jpg is a PDF document (application/pdf); an IMAGE header takes JPEG or PNG
"""  # noqa: E501

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath

from .errors import ValidationError
from .models import HeaderFormat

__all__ = [
    "HEADER_EXTENSIONS",
    "HEADER_MEDIA_TYPES",
    "MAX_MEDIA_BYTES",
    "MAX_UPLOAD_BYTES",
    "SNIFF_BYTES",
    "MediaType",
    "check_media",
    "check_media_file",
    "sniff",
]

_MIB = 1024 * 1024

#: WhatsApp's size limit per header kind (§1.5).
MAX_MEDIA_BYTES: Mapping[HeaderFormat, int] = {
    HeaderFormat.IMAGE: 5 * _MIB,
    HeaderFormat.VIDEO: 16 * _MIB,
    HeaderFormat.DOCUMENT: 100 * _MIB,
}
#: No header media is larger than the document limit, so no upload for a header is either.
MAX_UPLOAD_BYTES = max(MAX_MEDIA_BYTES.values())
#: How much of a file is read to tell its type (an office file's part names sit near the start).
SNIFF_BYTES = 64 * 1024

#: MIME types a template header of each kind accepts (§1.2, §1.5: documents are PDF only).
HEADER_MEDIA_TYPES: Mapping[HeaderFormat, frozenset[str]] = {
    HeaderFormat.IMAGE: frozenset({"image/jpeg", "image/png"}),
    HeaderFormat.VIDEO: frozenset({"video/mp4", "video/3gpp"}),
    HeaderFormat.DOCUMENT: frozenset({"application/pdf"}),
}
#: File extensions of the types each header kind accepts (for a URL, whose bytes are not read).
HEADER_EXTENSIONS: Mapping[HeaderFormat, frozenset[str]] = {
    HeaderFormat.IMAGE: frozenset({".jpg", ".jpeg", ".png"}),
    HeaderFormat.VIDEO: frozenset({".mp4", ".3gp", ".3gpp"}),
    HeaderFormat.DOCUMENT: frozenset({".pdf"}),
}
_ACCEPTED_TEXT = {
    HeaderFormat.IMAGE: "JPEG or PNG",
    HeaderFormat.VIDEO: "MP4 or 3GPP",
    HeaderFormat.DOCUMENT: "PDF",
}
# Extensions that claim a header kind: a file named like one must be one.
_CLAIMS = {
    ".jpg": HeaderFormat.IMAGE,
    ".jpeg": HeaderFormat.IMAGE,
    ".png": HeaderFormat.IMAGE,
    ".mp4": HeaderFormat.VIDEO,
    ".3gp": HeaderFormat.VIDEO,
    ".3gpp": HeaderFormat.VIDEO,
    ".pdf": HeaderFormat.DOCUMENT,
    ".doc": HeaderFormat.DOCUMENT,
    ".docx": HeaderFormat.DOCUMENT,
    ".xls": HeaderFormat.DOCUMENT,
    ".xlsx": HeaderFormat.DOCUMENT,
    ".ppt": HeaderFormat.DOCUMENT,
    ".pptx": HeaderFormat.DOCUMENT,
}


@dataclass(frozen=True)
class MediaType:
    """A file type told from content: ``mime``, a readable ``name`` and the header ``kind`` it
    belongs to in WhatsApp's media table (``None`` for audio)."""

    mime: str
    name: str
    kind: HeaderFormat | None

    @property
    def header_ok(self) -> bool:
        """Whether a template header of its kind accepts this type."""
        return self.kind is not None and self.mime in HEADER_MEDIA_TYPES[self.kind]


_OOXML = (
    (b"word/", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "Word"),
    (b"xl/", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "Excel"),
    (b"ppt/", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
     "PowerPoint"),
)  # fmt: skip


def sniff(head: bytes) -> MediaType | None:
    """The type of a file from its first bytes (magic numbers), or ``None`` when unknown.

    Knows JPEG, PNG, GIF, WebP, MP4/3GPP/QuickTime (ISO base media), PDF, Office Open XML
    (docx/xlsx/pptx) and legacy Office (OLE2) files.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return MediaType("image/jpeg", "a JPEG image", HeaderFormat.IMAGE)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaType("image/png", "a PNG image", HeaderFormat.IMAGE)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return MediaType("image/gif", "a GIF image", HeaderFormat.IMAGE)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return MediaType("image/webp", "a WebP image", HeaderFormat.IMAGE)
    if head[4:8] == b"ftyp":
        return _iso_media(head[8:12])
    # PDF readers accept the marker within the first KiB (some writers put junk before it).
    if b"%PDF-" in head[:1024]:
        return MediaType("application/pdf", "a PDF document", HeaderFormat.DOCUMENT)
    if head.startswith(b"PK\x03\x04") and b"[Content_Types].xml" in head:
        for marker, mime, app in _OOXML:
            if marker in head:
                return MediaType(mime, f"a {app} document", HeaderFormat.DOCUMENT)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return MediaType("application/x-ole-storage", "an Office document", HeaderFormat.DOCUMENT)
    return None


def _iso_media(brand: bytes) -> MediaType:
    """An ISO base media file (``ftyp`` box) by its major brand."""
    if brand.startswith((b"3gp", b"3g2")):
        return MediaType("video/3gpp", "a 3GPP video", HeaderFormat.VIDEO)
    if brand == b"qt  ":
        return MediaType("video/quicktime", "a QuickTime video", HeaderFormat.VIDEO)
    if brand in (b"M4A ", b"M4B ", b"M4P "):
        return MediaType("audio/mp4", "an MP4 audio file", None)
    if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return MediaType("image/heic", "a HEIC/AVIF image", HeaderFormat.IMAGE)
    return MediaType("video/mp4", "an MP4 video", HeaderFormat.VIDEO)


def _header_kind(kind: HeaderFormat | str, field: str) -> HeaderFormat:
    parsed = HeaderFormat.of(kind) if isinstance(kind, str) else None
    if not isinstance(parsed, HeaderFormat) or not parsed.is_media:
        raise ValidationError(
            field,
            f"media kind must be IMAGE, VIDEO or DOCUMENT, got {kind!r}",
            code="invalid_value",
        )
    return parsed


def check_media(
    head: bytes,
    size: int,
    *,
    kind: HeaderFormat | str | None = None,
    filename: str | None = None,
    field: str = "file",
) -> MediaType | None:
    """Check a file (its first bytes ``head`` and its ``size``) as header media; return its
    sniffed type (``None`` when unknown and allowed).

    With ``kind`` (IMAGE/VIDEO/DOCUMENT) the file must be of a type that header accepts and
    within its size limit. Without it, a file named like media (``.jpg``, ``.pdf``…) must
    really be of that kind, and a known type must fit its kind's limit. Raises
    ``ValidationError(field, …)`` with code ``wrong_media_type`` or ``too_large``.
    """
    what = repr(filename) if filename else "the file"
    label = filename or "the file"
    sniffed = sniff(head)
    if kind is not None:
        wanted = _header_kind(kind, field)
        if sniffed is None or not (sniffed.kind == wanted and sniffed.header_ok):
            found = f"{sniffed.name} ({sniffed.mime})" if sniffed else "of an unknown type"
            raise ValidationError(
                field,
                f"{label} is {found}; an {wanted} header takes {_ACCEPTED_TEXT[wanted]}",
                code="wrong_media_type",
            )
        limit = MAX_MEDIA_BYTES[wanted]
        limit_of = f"an {wanted} header"
    else:
        claimed = _CLAIMS.get(PurePath(filename).suffix.lower()) if filename else None
        if claimed is not None and (sniffed is None or sniffed.kind != claimed):
            found = f"{sniffed.name} ({sniffed.mime})" if sniffed else "not one (unknown content)"
            raise ValidationError(
                field,
                f"{what} is named like {claimed.lower()} media but is {found}",
                code="wrong_media_type",
            )
        kind_of = sniffed.kind if sniffed is not None else None
        limit = MAX_MEDIA_BYTES[kind_of] if kind_of is not None else MAX_UPLOAD_BYTES
        limit_of = f"{kind_of.lower()} media" if kind_of is not None else "header media"
    if size > limit:
        raise ValidationError(
            field,
            f"{label} is {_size(size)}; WhatsApp takes at most {_size(limit)} for {limit_of}",
            code="too_large",
        )
    return sniffed


def check_media_file(
    path: str | os.PathLike[str],
    *,
    kind: HeaderFormat | str | None = None,
    field: str = "file",
) -> MediaType | None:
    """:func:`check_media` for a local file: its size from the file system, its type from its
    first :data:`SNIFF_BYTES` (the file is not read whole). Raises ``ValidationError`` with
    code ``not_found`` when there is no such file."""
    file = Path(path)
    try:
        size = file.stat().st_size
        if not file.is_file():
            raise ValidationError(field, f"not a file: {file}", code="not_found")
        with file.open("rb") as stream:
            head = stream.read(SNIFF_BYTES)
    except OSError:
        raise ValidationError(field, f"no such file: {file}", code="not_found") from None
    return check_media(head, size, kind=kind, filename=file.name, field=field)


def _size(n: int) -> str:
    """A byte count for people: ``5 MB`` (MiB, as the limits), ``812 KB``, ``12 bytes``."""
    if n >= _MIB:
        text = f"{n / _MIB:.1f}".removesuffix(".0")
        return f"{text} MB"
    if n >= 1024:
        return f"{n // 1024} KB"
    return f"{n} bytes"
