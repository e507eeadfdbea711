"""qontak: send WhatsApp template messages through the Mekari Qontak API.

>>> from qontak import Qontak, messages
>>> client = Qontak()  # doctest: +SKIP
>>> otp = client.templates.find("login_otp", language="id")  # doctest: +SKIP
>>> channel = client.channels.list()[0]  # doctest: +SKIP
>>> msg = messages.otp("0812-3456-7890", "123456", template=otp, channel=channel)  # doctest: +SKIP
>>> sent = client.broadcasts.send_direct(msg)  # doctest: +SKIP
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    DeliveryUnknownError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    QontakError,
    QontakWarning,
    RateLimitError,
    RequestTooLargeError,
    UnprocessableEntityError,
    ValidationError,
)

# Everything else is imported on first use (PEP 562), so `import qontak` (and the `qontak`
# command's --help) does not pay for httpx, pydantic and the models up front. To export a
# name: add it to _LAZY (name -> module), to the TYPE_CHECKING block, and to __all__.
_LAZY: dict[str, str] = {
    "AsyncQontak": "._client",
    "Qontak": "._client",
    "ENVIRONMENTS": "._config",
    "load_dotenv_values": "._config",
    "redact": "._logging",
    "setup_logging": "._logging",
    "Secret": "._config",
    "DEFAULT_LIMITS": "._ratelimit",
    "RateLimiter": "._ratelimit",
    "Rule": "._ratelimit",
    "SharedRateLimiter": "._shared_ratelimit",
    "parse_rate_limits": "._ratelimit",
    "RetryPolicy": "._retry",
    "QontakClient": ".compat",
    "BodyParameter": ".models",
    "Broadcast": ".models",
    "BroadcastLogEntry": ".models",
    "ButtonParameter": ".models",
    "Channel": ".models",
    "DirectMessage": ".models",
    "HeaderParam": ".models",
    "HeaderParameter": ".models",
    "Language": ".models",
    "MessageParameters": ".models",
    "MessageStatusCount": ".models",
    "Page": ".models",
    "Pagination": ".models",
    "ResponseInfo": ".models",
    "Template": ".models",
    "TemplateButton": ".models",
    "TemplateCategory": ".models",
    "TemplateHeader": ".models",
    "UploadedFile": ".models",
    "ButtonType": ".models",
    "Category": ".models",
    "CopyCodeButton": ".models",
    "HeaderFormat": ".models",
    "OTPButton": ".models",
    "OTPType": ".models",
    "PhoneNumberButton": ".models",
    "QuickReplyButton": ".models",
    "TemplateStatus": ".models",
    "URLButton": ".models",
    "SentQuery": ".resources.broadcasts",
    "SentSearch": ".resources.broadcasts",
    "check_notes": ".validation",
    "preview": ".render",
    "check_media_file": "._media",
    "check_message": ".validation",
    "normalize_phone": ".validation",
    "validate_message": ".validation",
}
_LAZY_MODULES = frozenset({"messages"})

if TYPE_CHECKING:
    from . import messages
    from ._client import AsyncQontak, Qontak
    from ._config import ENVIRONMENTS, Secret, load_dotenv_values
    from ._logging import redact, setup_logging
    from ._media import check_media_file
    from ._ratelimit import DEFAULT_LIMITS, RateLimiter, Rule, parse_rate_limits
    from ._retry import RetryPolicy
    from ._shared_ratelimit import SharedRateLimiter
    from .compat import QontakClient
    from .models import (
        BodyParameter,
        Broadcast,
        BroadcastLogEntry,
        ButtonParameter,
        ButtonType,
        Category,
        Channel,
        CopyCodeButton,
        DirectMessage,
        HeaderFormat,
        HeaderParam,
        HeaderParameter,
        Language,
        MessageParameters,
        MessageStatusCount,
        OTPButton,
        OTPType,
        Page,
        Pagination,
        PhoneNumberButton,
        QuickReplyButton,
        ResponseInfo,
        Template,
        TemplateButton,
        TemplateCategory,
        TemplateHeader,
        TemplateStatus,
        UploadedFile,
        URLButton,
    )
    from .render import preview
    from .resources.broadcasts import SentQuery, SentSearch
    from .validation import check_message, check_notes, normalize_phone, validate_message


def __getattr__(name: str) -> Any:
    """Import an exported name on first access, then keep it as a module attribute."""
    import importlib

    if name in _LAZY_MODULES:
        value: Any = importlib.import_module(f".{name}", __name__)
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "DEFAULT_LIMITS",
    "ENVIRONMENTS",
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncQontak",
    "AuthenticationError",
    "BadRequestError",
    "BodyParameter",
    "Broadcast",
    "BroadcastLogEntry",
    "ButtonParameter",
    "ButtonType",
    "Category",
    "Channel",
    "ConfigurationError",
    "CopyCodeButton",
    "DeliveryUnknownError",
    "DirectMessage",
    "HeaderFormat",
    "HeaderParam",
    "HeaderParameter",
    "InternalServerError",
    "Language",
    "MessageParameters",
    "MessageStatusCount",
    "NotFoundError",
    "OTPButton",
    "OTPType",
    "Page",
    "Pagination",
    "PermissionDeniedError",
    "PhoneNumberButton",
    "Qontak",
    "QontakClient",
    "QontakError",
    "QontakWarning",
    "QuickReplyButton",
    "RateLimitError",
    "RateLimiter",
    "RequestTooLargeError",
    "ResponseInfo",
    "RetryPolicy",
    "Rule",
    "Secret",
    "SentQuery",
    "SentSearch",
    "SharedRateLimiter",
    "Template",
    "TemplateButton",
    "TemplateCategory",
    "TemplateHeader",
    "TemplateStatus",
    "URLButton",
    "UnprocessableEntityError",
    "UploadedFile",
    "ValidationError",
    "check_media_file",
    "check_message",
    "check_notes",
    "load_dotenv_values",
    "messages",
    "normalize_phone",
    "parse_rate_limits",
    "preview",
    "redact",
    "setup_logging",
    "validate_message",
]
