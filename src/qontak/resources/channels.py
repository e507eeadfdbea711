"""Channel integrations: ``GET /integrations`` and ``GET /integrations/{id}``."""

from __future__ import annotations

from typing import Any

from .._pipeline import ApiRequest, path_segment
from ..models import Channel, Page
from ._base import AsyncRequester, SyncRequester, to_model, to_page

__all__ = ["AsyncChannels", "Channels"]


def _list_request(target_channel: str | None, params: dict[str, Any]) -> ApiRequest:
    return ApiRequest("GET", "/integrations", params={"target_channel": target_channel, **params})


def _get_request(channel_id: str) -> ApiRequest:
    return ApiRequest("GET", f"/integrations/{path_segment(channel_id, 'channel_id')}")


class Channels:
    """Your channel integrations (WhatsApp numbers and other channels)."""

    def __init__(self, client: SyncRequester) -> None:
        self._client = client

    def list(self, target_channel: str | None = "wa_cloud", **params: Any) -> Page[Channel]:
        """Channels, by default the WhatsApp Cloud ones (``target_channel=None`` for all).

        Extra ``params`` (``limit``, ``offset``, ``query``…) go to the query string.

        >>> channel = client.channels.list()[0]  # doctest: +SKIP
        """
        resp = self._client._request(_list_request(target_channel, params))
        return to_page(resp, Channel, "channels")

    def get(self, channel_id: str) -> Channel:
        """One channel by its ``channel_integration_id``."""
        return to_model(self._client._request(_get_request(channel_id)), Channel, "channel")


class AsyncChannels:
    """Async twin of :class:`Channels`."""

    def __init__(self, client: AsyncRequester) -> None:
        self._client = client

    async def list(self, target_channel: str | None = "wa_cloud", **params: Any) -> Page[Channel]:
        """See :meth:`Channels.list`."""
        resp = await self._client._request(_list_request(target_channel, params))
        return to_page(resp, Channel, "channels")

    async def get(self, channel_id: str) -> Channel:
        """See :meth:`Channels.get`."""
        resp = await self._client._request(_get_request(channel_id))
        return to_model(resp, Channel, "channel")
