"""Exit codes of the ``qontak`` command. They are part of the CLI's contract and stable.

====  ===================  =============================================================
code  name                 when
====  ===================  =============================================================
0     ``OK``               the command did what it was asked
1     ``API_ERROR``        the API answered with an error (4xx/5xx other than below)
                           or with a 2xx it does not document
                           (``APIResponseValidationError``), the server could not be
                           reached, a message failed to deliver (``send --wait``,
                           ``log --watch``), or ``qontak sandbox`` could not listen
2     ``USAGE``            bad arguments, invalid configuration (``ConfigurationError``) or a
                           message that fails validation (``ValidationError``); nothing sent
3     ``AUTH``             credentials or signature rejected (HTTP 401/403)
4     ``RATE_LIMITED``     HTTP 429 after the client's retries
5     ``OUTCOME_UNKNOWN``  a send may or may not have been accepted (``DeliveryUnknownError``):
                           do not resend blindly, check ``qontak broadcasts`` first
====  ===================  =============================================================
"""

from __future__ import annotations

from enum import IntEnum

from qontak.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    DeliveryUnknownError,
    PermissionDeniedError,
    RateLimitError,
    ValidationError,
)

__all__ = ["ExitCode", "exit_code_for"]


class ExitCode(IntEnum):
    """The process exit status of every ``qontak`` command."""

    OK = 0
    API_ERROR = 1
    USAGE = 2
    AUTH = 3
    RATE_LIMITED = 4
    OUTCOME_UNKNOWN = 5


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for an exception raised by the SDK (``API_ERROR`` for anything else).

    >>> exit_code_for(ValidationError("to_number", "too short"))
    <ExitCode.USAGE: 2>
    """
    if isinstance(exc, ConfigurationError | ValidationError):
        return ExitCode.USAGE
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return ExitCode.AUTH
    if isinstance(exc, RateLimitError):
        return ExitCode.RATE_LIMITED
    if isinstance(exc, DeliveryUnknownError):
        return ExitCode.OUTCOME_UNKNOWN
    if isinstance(exc, APIStatusError | APIConnectionError | APIResponseValidationError):
        return ExitCode.API_ERROR
    return ExitCode.API_ERROR
