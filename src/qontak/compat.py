"""The Node ``qontak-client`` names, for people porting code.

Every method takes and returns what the Node client does: plain dicts in, Qontak's whole
JSON envelope (``{"status": …, "data": …, "meta": …}``) out. Underneath it is the same
:class:`~qontak.Qontak` client, so signing, validation, retries and rate limits apply.

>>> api = QontakClient(client_id="…", client_secret="…")  # doctest: +SKIP
>>> api.template.get_list_whatsapp_template()  # doctest: +SKIP
>>> api.broadcast.create_broadcast_direct({...})  # the Node README's dict  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._checks import check_json, type_name
from ._client import Qontak
from ._pipeline import ApiRequest, path_segment
from .errors import ValidationError

__all__ = ["QontakClient"]


class _Part:
    def __init__(self, client: Qontak) -> None:
        self._client = client

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        _mapping("params", params)
        return self._client._request(ApiRequest("GET", path, params=dict(params or {}))).body

    def _write(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        # A dict from ported code goes out as JSON: NaN, bytes or a lone surrogate would make
        # invalid JSON or fail halfway, so the whole body is checked first.
        _mapping("body", body)
        check_json("", body)
        # Writes have effects, so they follow the send rules: never repeated blindly.
        req = ApiRequest(
            method, path, json=dict(body) if body is not None else None, idempotent=False
        )
        return self._client._request(req).body


def _mapping(field: str, value: object, *, required: bool = False) -> None:
    if (required or value is not None) and not isinstance(value, Mapping):
        raise ValidationError(
            field, f"expected a dict, got {type_name(value)}", code="invalid_type"
        )


class BroadcastApi(_Part):
    """``api.broadcast`` of the Node client."""

    def get_broadcast_list(self, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``/broadcasts/whatsapp``."""
        return self._get("/broadcasts/whatsapp", params)

    def get_broadcast_log(self, broadcast_id: str) -> Any:
        """GET ``/broadcasts/{id}/whatsapp/log``."""
        return self._get(f"/broadcasts/{path_segment(broadcast_id, 'broadcast_id')}/whatsapp/log")

    def get_broadcast_detail(self, broadcast_id: str) -> Any:
        """GET ``/broadcasts/{id}/whatsapp``."""
        return self._get(f"/broadcasts/{path_segment(broadcast_id, 'broadcast_id')}/whatsapp")

    def create_broadcast_direct(self, data: Mapping[str, Any]) -> Any:
        """POST ``/broadcasts/whatsapp/direct`` with the Node README's dict, unchanged.

        Unlike the Node client, the number is checked and the message validated against
        its template before anything is sent.
        """
        _mapping("data", data, required=True)
        broadcast = self._client.broadcasts.send_direct(data)
        return broadcast.response.envelope if broadcast.response else broadcast.to_dict()


class TemplateApi(_Part):
    """``api.template`` of the Node client."""

    def get_list_template_category(self) -> Any:
        """GET ``/templates/category``."""
        return self._get("/templates/category")

    def get_list_template_language(self) -> Any:
        """GET ``/templates/language``."""
        return self._get("/templates/language")

    def get_list_template_languages(self, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``/templates/languages``."""
        return self._get("/templates/languages", params)

    def get_list_whatsapp_template(self, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``/templates/whatsapp`` (``statuses``, ``category`` lists become ``key[]``)."""
        return self._get("/templates/whatsapp", params)

    def get_whatsapp_template_by_id(self, template_id: str) -> Any:
        """GET ``/templates/{id}/whatsapp``."""
        return self._get(f"/templates/{path_segment(template_id, 'template_id')}/whatsapp")

    def create_whatsapp_template(self, body: Mapping[str, Any]) -> Any:
        """POST ``/templates/whatsapp`` (submit a template for approval)."""
        return self._write("POST", "/templates/whatsapp", body)

    def create_whatsapp_hsm_template(self, body: Mapping[str, Any]) -> Any:
        """POST ``/templates/whatsapp/hsm_chat``."""
        return self._write("POST", "/templates/whatsapp/hsm_chat", body)


class IntegrationApi(_Part):
    """``api.integration`` of the Node client."""

    def get_integration_list(self, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``/integrations`` (e.g. ``{"target_channel": "wa_cloud"}``)."""
        return self._get("/integrations", params)

    def get_integration_by_id(self, integration_id: str) -> Any:
        """GET ``/integrations/{id}``."""
        return self._get(f"/integrations/{path_segment(integration_id, 'integration_id')}")


class FileUploaderApi(_Part):
    """``api.file_uploader`` of the Node client."""

    def upload_file(self, data: Mapping[str, Any]) -> Any:
        """POST ``/file_uploader`` with ``{"file": <path, bytes or binary file>}``."""
        _mapping("data", data, required=True)
        if "file" not in data:
            raise ValidationError(
                "file", "missing; pass {'file': <path, bytes or file>}", code="missing"
            )
        uploaded = self._client.file_uploader.upload(data["file"], filename=data.get("filename"))
        return uploaded.response.envelope if uploaded.response else uploaded.to_dict()


class ContactApi(_Part):
    """``api.contact`` of the Node client (contact lists for bulk broadcasts)."""

    def get_contacts_list(self, contact_list_id: str) -> Any:
        """GET ``/contacts/contact_lists/contacts/{id}``."""
        return self._get(
            f"/contacts/contact_lists/contacts/{path_segment(contact_list_id, 'contact_list_id')}"
        )

    def get_contact_list_detail(self, contact_list_id: str) -> Any:
        """GET ``/contacts/contact_lists/{id}``."""
        return self._get(
            f"/contacts/contact_lists/{path_segment(contact_list_id, 'contact_list_id')}"
        )

    def override_contact_name(self, body: Mapping[str, Any]) -> Any:
        """PUT ``/contacts/contact_lists/override_contact_by_upload`` with ``{"enabled": …}``."""
        return self._write("PUT", "/contacts/contact_lists/override_contact_by_upload", body)


class ContactBlockApi(_Part):
    """``api.contact_block`` of the Node client."""

    def block_contact(self, body: Mapping[str, Any]) -> Any:
        """POST ``/contact_block`` with ``{"room_id": …, "reason": …}``."""
        return self._write("POST", "/contact_block", body)

    def remove_block_contact(self, body: Mapping[str, Any], contact_id: str) -> Any:
        """DELETE ``/contact_block/{id}`` with ``{"room_id": …}``."""
        return self._write(
            "DELETE", f"/contact_block/{path_segment(contact_id, 'contact_id')}", body
        )


class UserApi(_Part):
    """``api.user`` of the Node client."""

    def get_list_user(self, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``/users``."""
        return self._get("/users", params)


class QontakClient:
    """Drop-in shape of the Node ``QontakClient`` (snake_case method names).

    ======================================  ==========================================
    Node                                    Python
    ======================================  ==========================================
    ``api.template.getListWhatsappTemplate``  ``api.template.get_list_whatsapp_template``
    ``api.broadcast.createBroadcastDirect``   ``api.broadcast.create_broadcast_direct``
    ``api.broadcast.getBroadcastLog``         ``api.broadcast.get_broadcast_log``
    ``api.integration.getIntegrationList``    ``api.integration.get_integration_list``
    ``api.file_uploader.uploadFile``          ``api.file_uploader.upload_file``
    ======================================  ==========================================

    Keyword arguments beyond the credentials go to :class:`~qontak.Qontak`.
    """

    def __init__(
        self, client_id: str | None = None, client_secret: str | None = None, **options: Any
    ) -> None:
        self.client = Qontak(client_id, client_secret, **options)
        self.broadcast = BroadcastApi(self.client)
        self.template = TemplateApi(self.client)
        self.integration = IntegrationApi(self.client)
        self.file_uploader = FileUploaderApi(self.client)
        self.contact = ContactApi(self.client)
        self.contact_block = ContactBlockApi(self.client)
        self.user = UserApi(self.client)

    def __repr__(self) -> str:
        return f"QontakClient(client_id={self.client.settings.client_id!r})"
