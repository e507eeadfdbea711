"""The exception hierarchy.

Errors are grouped by what the caller can do about them::

    QontakError
    ├── ConfigurationError        missing/invalid settings (names the variable, never the secret)
    ├── ValidationError           bad input, caught before any request (field + reason)
    ├── APIConnectionError        nothing reached the server: safe to retry
    │   └── APITimeoutError       the connection could not be made in time
    ├── DeliveryUnknownError      a send may or may not have been accepted: never retried
    │                             automatically; carries what is needed to reconcile
    ├── APIResponseValidationError  a 2xx whose body is not what the API documents
    └── APIStatusError            the server answered with an error status
        ├── BadRequestError 400, AuthenticationError 401, PermissionDeniedError 403,
        ├── NotFoundError 404, RequestTooLargeError 413, UnprocessableEntityError 422,
        └── RateLimitError 429 (retry_after), InternalServerError 5xx
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "DeliveryUnknownError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "QontakError",
    "QontakWarning",
    "RateLimitError",
    "RequestTooLargeError",
    "UnprocessableEntityError",
    "ValidationError",
    "error_messages",
    "status_error",
]


class QontakError(Exception):
    """Base class of every error this library raises."""


class QontakWarning(UserWarning):
    """Something looks wrong but Qontak and WhatsApp accept it, so it is sent anyway.

    Emitted with :func:`warnings.warn` (filter it like any warning) and listed by
    :func:`qontak.validation.check_notes` and in previews. Like :class:`ValidationError` it
    carries ``field``, ``reason`` and a stable ``code`` (``mismatch``…).
    """

    def __init__(self, field: str, reason: str, *, code: str = "suspicious") -> None:
        self.field = field
        self.reason = reason
        self.code = code
        super().__init__(f"{field}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields (the default would pass only the message back).
        return (self.__class__, (self.field, self.reason), {"code": self.code})


class ConfigurationError(QontakError):
    """A setting is missing or invalid. The message names the setting, never its value.

    ``setting`` names the argument or environment variable (``client_secret``,
    ``QONTAK_BASE_URL``, ``timeout``) so callers (the CLI included) never parse the text.
    ``reason`` is the rule it broke, without the value.
    """

    def __init__(self, message: str, *, setting: str = "", reason: str = "") -> None:
        self.setting = setting
        self.reason = reason or message
        super().__init__(message)


class ValidationError(QontakError, ValueError):
    """Input was rejected before any request was sent.

    ``field`` is the dotted path of the offending value (``to_number``,
    ``parameters.body.2``), ``reason`` says which rule it broke and ``code`` is a
    stable machine-readable name for that rule (``invalid_type``, ``too_long``,
    ``missing``, ``invalid_phone``…) so callers can branch without parsing text.
    """

    def __init__(self, field: str, reason: str, *, code: str = "invalid") -> None:
        self.field = field
        self.reason = reason
        self.code = code
        super().__init__(f"{field}: {reason}")


class APIConnectionError(QontakError):
    """The request never reached the server, so it had no effect and may be retried."""

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        self.method = method
        self.url = url
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """Connecting to the server took too long."""


class DeliveryUnknownError(QontakError):
    """A send may or may not have been accepted by Qontak.

    Raised when the request body may have reached the server but no usable answer came
    back (read timeout, connection reset after the body was written, a 5xx on a send).
    It is never retried automatically: sending again could deliver the message twice.
    Reconcile with ``client.broadcasts.find_sent(...)`` (or the broadcast list) using
    ``to_number``, ``message_template_id`` and ``sent_at``.
    """

    def __init__(
        self,
        message: str,
        *,
        payload: Mapping[str, Any] | None = None,
        sent_at: float | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        cause: str = "",
    ) -> None:
        self.payload: dict[str, Any] = dict(payload or {})
        self.sent_at = sent_at
        self.status_code = status_code
        self.request_id = request_id
        self.cause = cause
        self.to_number: str | None = self.payload.get("to_number")
        self.message_template_id: str | None = self.payload.get("message_template_id")
        suffix = f" (request_id={request_id})" if request_id else ""
        super().__init__(message + suffix)


#: How much of a web page (or other markup) an error message quotes.
PAGE_EXCERPT_CHARS = 120
_TITLE = re.compile(r"(?is)<title[^>]*>(.*?)</title\s*>")
_HIDDEN = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>")
_TAG = re.compile(r"<[^<>]*>")
#: Only the start of a page is looked at (its title and first words are there), which also
#: bounds the work the patterns above do on a hostile or huge body.
_PAGE_SCAN_CHARS = 16_384


def _page_excerpt(text: str, content_type: str | None) -> str | None:
    """For an HTML/XML body (a proxy's or web server's error page): its content type and a
    short one-line excerpt (the page title, else its first words), never the page itself."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if "html" not in kind and "xml" not in kind and not text.lstrip().startswith("<"):
        return None
    text = text[:_PAGE_SCAN_CHARS]
    title = _TITLE.search(text)
    words = title.group(1) if title and title.group(1).strip() else ""
    if not words:
        words = _TAG.sub(" ", _HIDDEN.sub(" ", text))
    excerpt = " ".join(html.unescape(words).split())
    if len(excerpt) > PAGE_EXCERPT_CHARS:
        excerpt = excerpt[: PAGE_EXCERPT_CHARS - 1].rstrip() + "…"
    page = f"{kind or 'markup'} page"
    return f"{page}: {excerpt}" if excerpt else f"{page} (no text)"


def error_messages(body: Any, *, content_type: str | None = None) -> list[str]:
    """Pull the human-readable messages out of a Qontak or gateway error body.

    Handles ``{"status":"error","error":{"code":422,"messages":[…]}}``,
    ``{"message":"Unauthorized"}`` and plain strings. An HTML (or XML) page, as a proxy or
    a wrong base URL answers, becomes its content type and a short excerpt
    (``text/html page: 502 Bad Gateway``).
    """
    if isinstance(body, str):
        page = _page_excerpt(body, content_type)
        if page is not None:
            return [page]
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            messages = error.get("messages")
            if isinstance(messages, list):
                return [str(m) for m in messages]
            if isinstance(messages, str):
                return [messages]
            if "message" in error:
                return [str(error["message"])]
        if isinstance(error, str):
            return [error]
        if "message" in body:
            return [str(body["message"])]
        if isinstance(body.get("errors"), list):
            return [str(e) for e in body["errors"]]
    elif isinstance(body, str) and body.strip():
        return [body.strip()[:500]]
    return []


class _ResponseError(QontakError):
    """An answer came back: its status, body, headers, request id, and where it was sent."""

    def __init__(
        self,
        summary: str,
        *,
        status_code: int,
        body: Any,
        headers: Mapping[str, str] | None,
        request_id: str | None,
        method: str,
        path: str,
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})
        self.request_id = request_id
        self.method = method
        self.path = path
        where = f" on {method} {path}" if method else ""
        rid = f" (request_id={request_id})" if request_id else ""
        # Subclasses set what _detail() reads before calling this.
        super().__init__(f"{summary}{where}: {self._detail()}{rid}")

    def _detail(self) -> str:
        return ""


class APIStatusError(_ResponseError):
    """The server answered with an HTTP error status.

    ``status_code``, the parsed ``body``, response ``headers``, the ``request_id``
    (``x-request-id`` header when present) and the list of ``messages`` are attached.
    """

    def __init__(
        self,
        status_code: int,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        content_type = next(
            (v for k, v in (headers or {}).items() if k.lower() == "content-type"), None
        )
        self.messages = error_messages(body, content_type=content_type)
        super().__init__(
            f"HTTP {status_code}",
            status_code=status_code,
            body=body,
            headers=headers,
            request_id=request_id,
            method=method,
            path=path,
        )

    def _detail(self) -> str:
        return "; ".join(self.messages) or "no error message"


class APIResponseValidationError(_ResponseError):
    """The server answered 2xx, but the body is not what the API documents.

    Carries ``status_code``, the parsed ``body`` (or text), ``headers``, ``request_id``,
    ``method`` and ``path``. (For a *send*, an unreadable 2xx is raised as
    :class:`DeliveryUnknownError` instead: the message may have been accepted.)
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.reason = message
        super().__init__(
            f"unexpected response (HTTP {status_code})",
            status_code=status_code,
            body=body,
            headers=headers,
            request_id=request_id,
            method=method,
            path=path,
        )

    def _detail(self) -> str:
        return self.reason


class BadRequestError(APIStatusError):
    """400: the request was malformed."""


class AuthenticationError(APIStatusError):
    """401: the credentials or the signature were rejected (check the id, secret and clock)."""


class PermissionDeniedError(APIStatusError):
    """403: the application lacks the scope for this endpoint."""


class NotFoundError(APIStatusError):
    """404: no such resource."""


class RequestTooLargeError(APIStatusError):
    """413: the request body is too large."""


class UnprocessableEntityError(APIStatusError):
    """422: Qontak refused the content (template variables, channel, template state…)."""


class RateLimitError(APIStatusError):
    """429: too many requests. ``retry_after`` is how long to wait, in seconds, when known."""

    def __init__(self, status_code: int, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(status_code, **kw)


class InternalServerError(APIStatusError):
    """5xx: the server failed."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error(
    status_code: int,
    *,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
    method: str = "",
    path: str = "",
    retry_after: float | None = None,
) -> APIStatusError:
    """Build the exception class that matches ``status_code``."""
    common: dict[str, Any] = {
        "body": body,
        "headers": headers,
        "request_id": request_id,
        "method": method,
        "path": path,
    }
    if status_code == 429:
        return RateLimitError(status_code, retry_after=retry_after, **common)
    cls = _BY_STATUS.get(status_code)
    if cls is None:
        cls = InternalServerError if status_code >= 500 else APIStatusError
    return cls(status_code, **common)
