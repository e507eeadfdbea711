"""Base model: unknown fields are kept, and the HTTP response behind a model is reachable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

__all__ = ["QontakModel", "ResponseInfo"]


@dataclass(frozen=True)
class ResponseInfo:
    """What came back with a model: status, headers, the raw JSON envelope, the request id.

    ``request_id`` is the ``x-request-id`` header, or ``meta.log_id`` when the body has one.
    """

    status_code: int
    headers: Mapping[str, str] = field(repr=False)
    envelope: Any = field(repr=False)
    request_id: str | None = None


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
