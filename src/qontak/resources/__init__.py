"""API resources, sync and async side by side."""

from .broadcasts import AsyncBroadcasts, Broadcasts
from .channels import AsyncChannels, Channels
from .files import AsyncFileUploader, FileUploader
from .templates import AsyncTemplates, Templates

__all__ = [
    "AsyncBroadcasts",
    "AsyncChannels",
    "AsyncFileUploader",
    "AsyncTemplates",
    "Broadcasts",
    "Channels",
    "FileUploader",
    "Templates",
]
