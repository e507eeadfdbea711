"""qontak: send WhatsApp template messages through the Mekari Qontak API.

>>> from qontak import Qontak, messages
>>> client = Qontak()  # doctest: +SKIP
>>> otp = client.templates.find("login_otp", language="id")  # doctest: +SKIP
>>> channel = client.channels.list()[0]  # doctest: +SKIP
>>> msg = messages.otp("0812-3456-7890", "123456", template=otp, channel=channel)  # doctest: +SKIP
>>> sent = client.broadcasts.send_direct(msg)  # doctest: +SKIP
"""

from . import messages
from ._client import AsyncQontak, Qontak
from ._config import ENVIRONMENTS, Secret
from ._ratelimit import DEFAULT_LIMITS, RateLimiter, Rule
from ._retry import RetryPolicy
from ._shared_ratelimit import SharedRateLimiter
from ._version import __version__ as __version__
from .compat import QontakClient
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
    "check_message",
    "check_notes",
    "messages",
    "normalize_phone",
    "preview",
    "validate_message",
]
