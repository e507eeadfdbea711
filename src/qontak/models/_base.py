"""Base model: unknown fields are kept, and the HTTP response behind a model is reachable."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

__all__ = ["QontakModel", "ResponseInfo"]


_UNSET: Any = object()


class ResponseInfo:
    """What came back with a model: status, headers, the raw JSON envelope, the request id.

    ``request_id`` is the ``x-request-id`` header, or ``meta.log_id`` when the body has one.
    The envelope is kept as the response bytes and decoded on first access: a decoded
    envelope costs ~10× its size in Python objects, and most callers never look at it.
    """

    __slots__ = ("_content", "_envelope", "headers", "request_id", "status_code")

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str],
        envelope: Any = _UNSET,
        request_id: str | None = None,
        *,
        content: bytes | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.request_id = request_id
        self._envelope = envelope
        self._content = content

    @property
    def envelope(self) -> Any:
        """The decoded JSON body (``{"status": …, "data": …, "meta": …}``); text if it was
        not JSON, ``None`` if it was empty."""
        if self._envelope is _UNSET:
            self._envelope = _decode_body(self._content or b"")
            self._content = None
        return self._envelope

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResponseInfo):
            return NotImplemented
        return (self.status_code, dict(self.headers), self.envelope, self.request_id) == (
            other.status_code,
            dict(other.headers),
            other.envelope,
            other.request_id,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ResponseInfo(status_code={self.status_code!r}, request_id={self.request_id!r})"


def _decode_body(content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return content.decode("utf-8", errors="replace")


class QontakModel(BaseModel):
    """Base of every wire model. Fields Qontak adds later are kept (``model_extra``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    _response: ResponseInfo | None = PrivateAttr(default=None)

    @property
    def response(self) -> ResponseInfo | None:
        """The HTTP response this model was read from, if it came from the API."""
        return self._response

    def with_response(self, info: ResponseInfo | None) -> QontakModel:
        """Attach response metadata (used by the client); returns ``self``."""
        self._response = info
        return self

    def to_dict(self) -> dict[str, Any]:
        """The model as JSON-ready data, unknown fields included, ``None`` fields kept."""
        return self.model_dump(mode="json", by_alias=True)
