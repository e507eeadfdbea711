"""API resources, sync and async side by side."""

from .broadcasts import AsyncBroadcasts, Broadcasts
from .channels import AsyncChannels, Channels
from .files import AsyncFileUploader, FileUploader
from .templates import AsyncTemplates, Templates
from .webhooks import AsyncWebhooks, Webhooks, WebhookSettings

__all__ = [
    "AsyncBroadcasts",
    "AsyncChannels",
    "AsyncFileUploader",
    "AsyncTemplates",
    "AsyncWebhooks",
    "Broadcasts",
    "Channels",
    "FileUploader",
    "Templates",
    "WebhookSettings",
    "Webhooks",
]
