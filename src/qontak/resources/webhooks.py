"""Webhook registration: ``PUT /message_interactions`` (and reading the current settings back).

Qontak documents the registration for API generation 1 (spec §5); the generation-2 path is the
one-to-one mapping of it and is **unconfirmed**: it lives in :data:`REGISTRATION_PATH` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .._pipeline import ApiRequest, ApiResponse
from ..errors import APIResponseValidationError, ValidationError
from ._base import AsyncRequester, SyncRequester

__all__ = ["REGISTRATION_PATH", "AsyncWebhooks", "WebhookSettings", "Webhooks"]

#: Unconfirmed for gen 2 (spec §8.9): change it here and nowhere else.
REGISTRATION_PATH = "/message_interactions"

_EVENTS = ("status_message", "receive_message_from_agent", "receive_message_from_customer")


@dataclass(frozen=True)
class WebhookSettings:
    """Which callbacks are on, and the URLs they go to."""

    status_message: bool
    receive_message_from_agent: bool
    receive_message_from_customer: bool
    urls: tuple[str, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> WebhookSettings:
        """Read Qontak's echo (``{"status_message": {"enabled": true, "webhooks": [...]}}``)
        or the flat request shape (``{"status_message": true, "url": "..."}``)."""
        flags: dict[str, bool] = {}
        urls: list[str] = []
        for name in _EVENTS:
            value = data.get(name)
            if isinstance(value, Mapping):
                flags[name] = value.get("enabled") is True
                hooks = value.get("webhooks")
                if isinstance(hooks, list):
                    urls += [h["url"] for h in hooks if isinstance(h, Mapping) and "url" in h]
            else:
                flags[name] = value is True
        if isinstance(data.get("url"), str):
            urls.append(data["url"])
        return cls(**flags, urls=tuple(dict.fromkeys(urls)), raw=dict(data))


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise ValidationError("url", "must be a string", code="invalid_type")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("url", "must be an absolute http(s) URL", code="invalid")
    if len(url) > 2048 or any(ord(c) < 33 for c in url):
        raise ValidationError("url", "must be at most 2048 printable characters", code="invalid")
    return url


def _register_request(url: object, **flags: object) -> ApiRequest:
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise ValidationError(name, "must be True or False", code="invalid_type")
    return ApiRequest("PUT", REGISTRATION_PATH, json={**flags, "url": _check_url(url)})


def _settings(resp: ApiResponse) -> WebhookSettings:
    data = resp.data
    if not isinstance(data, Mapping):
        raise APIResponseValidationError(
            "webhook settings are not an object",
            status_code=resp.info.status_code,
            body=resp.body,
            request_id=resp.info.request_id,
            path=REGISTRATION_PATH,
        )
    return WebhookSettings.from_data(data)


class Webhooks:
    """Register the URL Qontak posts status changes to (see :mod:`qontak.webhooks`)."""

    def __init__(self, client: SyncRequester) -> None:
        self._client = client

    def register(
        self,
        url: str,
        *,
        status_message: bool = True,
        receive_message_from_agent: bool = False,
        receive_message_from_customer: bool = False,
    ) -> WebhookSettings:
        """Send status changes (and optionally chat messages) to ``url``.

        >>> client.webhooks.register("https://shop.example/qontak/" + TOKEN)  # doctest: +SKIP
        """
        req = _register_request(
            url,
            receive_message_from_agent=receive_message_from_agent,
            receive_message_from_customer=receive_message_from_customer,
            status_message=status_message,
        )
        return _settings(self._client._request(req))

    def get(self) -> WebhookSettings:
        """The current webhook settings."""
        return _settings(self._client._request(ApiRequest("GET", REGISTRATION_PATH)))


class AsyncWebhooks:
    """Async twin of :class:`Webhooks`."""

    def __init__(self, client: AsyncRequester) -> None:
        self._client = client

    async def register(
        self,
        url: str,
        *,
        status_message: bool = True,
        receive_message_from_agent: bool = False,
        receive_message_from_customer: bool = False,
    ) -> WebhookSettings:
        """See :meth:`Webhooks.register`."""
        req = _register_request(
            url,
            receive_message_from_agent=receive_message_from_agent,
            receive_message_from_customer=receive_message_from_customer,
            status_message=status_message,
        )
        return _settings(await self._client._request(req))

    async def get(self) -> WebhookSettings:
        """See :meth:`Webhooks.get`."""
        return _settings(await self._client._request(ApiRequest("GET", REGISTRATION_PATH)))
