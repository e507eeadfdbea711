"""Typed pydantic v2 models of Qontak's requests and responses."""

from ._base import QontakModel, ResponseInfo
from .broadcast import (
    FINAL_STATUSES,
    Broadcast,
    BroadcastLogEntry,
    MessageStatusCount,
    UploadedFile,
)
from .channel import Channel
from .common import Cursor, Page, Pagination
from .message import (
    BodyParameter,
    ButtonParameter,
    DirectMessage,
    HeaderParam,
    HeaderParameter,
    Language,
    MessageParameters,
)
from .template import (
    MEDIA_FORMATS,
    Template,
    TemplateButton,
    TemplateCategory,
    TemplateHeader,
    placeholders,
)

__all__ = [
    "FINAL_STATUSES",
    "MEDIA_FORMATS",
    "BodyParameter",
    "Broadcast",
    "BroadcastLogEntry",
    "ButtonParameter",
    "Channel",
    "Cursor",
    "DirectMessage",
    "HeaderParam",
    "HeaderParameter",
    "Language",
    "MessageParameters",
    "MessageStatusCount",
    "Page",
    "Pagination",
    "QontakModel",
    "ResponseInfo",
    "Template",
    "TemplateButton",
    "TemplateCategory",
    "TemplateHeader",
    "UploadedFile",
    "placeholders",
]
