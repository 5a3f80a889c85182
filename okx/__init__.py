"""Signed OKX REST client: the exchange side of the bot. Imports nothing from bot/ or handlers/."""

from okx.auth import Credentials
from okx.client import DEFAULT_BASE_URL, OkxClient
from okx.errors import (
    OkxAccountModeError,
    OkxAuthError,
    OkxClockError,
    OkxEnvironmentError,
    OkxError,
    OkxPermissionError,
    OkxProtocolError,
    OkxRateLimitError,
    OkxRejectedError,
    OkxRequestError,
    OkxUnavailableError,
    OkxWithdrawnError,
)
from okx.models import AccountConfig
from okx.ratelimit import AccountLimits, LimitRegistry, RateLimiter
from okx.retry import RetryPolicy

__all__ = [
    "DEFAULT_BASE_URL",
    "AccountConfig",
    "AccountLimits",
    "Credentials",
    "LimitRegistry",
    "OkxAccountModeError",
    "OkxAuthError",
    "OkxClient",
    "OkxClockError",
    "OkxEnvironmentError",
    "OkxError",
    "OkxPermissionError",
    "OkxProtocolError",
    "OkxRateLimitError",
    "OkxRejectedError",
    "OkxRequestError",
    "OkxUnavailableError",
    "OkxWithdrawnError",
    "RateLimiter",
    "RetryPolicy",
]
