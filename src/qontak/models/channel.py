"""Channel integrations (``GET /integrations``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._base import QontakModel

__all__ = ["Channel"]


class Channel(QontakModel):
    """A channel integration; ``id`` is the ``channel_integration_id`` a send needs.

    ``settings`` is provider configuration and may hold secrets, so it is left out of
    ``repr``.
    """

    id: str
    target_channel: str | None = None
    webhook: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict, repr=False)
    organization_id: str | None = None
    created_at: str | None = None
    is_active: bool | None = None

    @property
    def phone_number(self) -> str | None:
        """The business phone number of a WhatsApp channel, when Qontak reports it."""
        value = self.settings.get("phone_number")
        return str(value) if value is not None else None

    @property
    def account_name(self) -> str | None:
        """The account (display) name of the channel, when Qontak reports it."""
        value = self.settings.get("account_name")
        return str(value) if value is not None else None
