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
from ._config import ENVIRONMENTS, Secret, load_dotenv_values
from ._logging import redact, setup_logging
from ._ratelimit import DEFAULT_LIMITS, RateLimiter, Rule
from ._retry import RetryPolicy
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
    Channel,
    DirectMessage,
    HeaderParam,
    HeaderParameter,
    Language,
    MessageParameters,
    MessageStatusCount,
    Page,
    Pagination,
    ResponseInfo,
    Template,
    TemplateButton,
    TemplateCategory,
    TemplateHeader,
    UploadedFile,
)
from .render import preview
from .validation import check_message, normalize_phone, validate_message

__version__ = "0.1.0"

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
    "Channel",
    "ConfigurationError",
    "DeliveryUnknownError",
    "DirectMessage",
    "HeaderParam",
    "HeaderParameter",
    "InternalServerError",
    "Language",
    "MessageParameters",
    "MessageStatusCount",
    "NotFoundError",
    "Page",
    "Pagination",
    "PermissionDeniedError",
    "Qontak",
    "QontakClient",
    "QontakError",
    "RateLimitError",
    "RateLimiter",
    "RequestTooLargeError",
    "ResponseInfo",
    "RetryPolicy",
    "Rule",
    "Secret",
    "Template",
    "TemplateButton",
    "TemplateCategory",
    "TemplateHeader",
    "UnprocessableEntityError",
    "UploadedFile",
    "ValidationError",
    "check_message",
    "load_dotenv_values",
    "messages",
    "normalize_phone",
    "preview",
    "redact",
    "setup_logging",
    "validate_message",
]
