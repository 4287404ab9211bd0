"""The one exception tree of ormagic.

Every error ormagic raises on purpose is an :class:`OrmagicError`. Messages say what to
do next; the useful context travels as attributes, never inside a traceback.

::

    OrmagicError
    ├── ConfigError                  bad setting or flag value
    │   └── MissingKeyError          no API key (no request was sent)
    ├── BudgetExceededError          ChatMagics.max_cost reached
    ├── BatchStoppedError            a batch stopped early (.result: the rows answered)
    ├── TransportError               could not talk to the server
    │   └── TimeoutError_            connect or read timeout
    ├── ProtocolError                the server spoke something that is not the protocol
    ├── APIError                     the server answered with an error (status_code)
    │   ├── BadRequestError          400
    │   ├── AuthenticationError      401
    │   ├── PaymentRequiredError     402
    │   ├── PermissionDeniedError    403 (moderation: reasons)
    │   ├── NotFoundError            404
    │   ├── RequestTimeoutError      408
    │   ├── PayloadTooLargeError     413
    │   ├── RateLimitError           429
    │   └── ServerError              5xx
    └── StreamError                  an error chunk arrived after the answer began
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BatchStoppedError",
    "BudgetExceededError",
    "ConfigError",
    "MissingKeyError",
    "NotFoundError",
    "OrmagicError",
    "PayloadTooLargeError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "ProtocolError",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerError",
    "StreamError",
    "TimeoutError_",
    "TransportError",
]


class OrmagicError(Exception):
    """Base of every error ormagic raises on purpose."""


class ConfigError(OrmagicError):
    """A setting or flag has a value ormagic cannot use."""


class MissingKeyError(ConfigError):
    """No OpenRouter API key is configured; nothing was sent."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "No OpenRouter API key: set OPENROUTER_API_KEY or `%config ChatMagics.api_key`."
        )


class BudgetExceededError(OrmagicError):
    """The session's spending reached ``ChatMagics.max_cost``."""


class BatchStoppedError(OrmagicError):
    """A batch (``ormagic.map``) stopped before every row was sent: a rejected key, no
    credits left, an unknown model, ``max_cost`` reached. ``result`` holds what was
    answered, in the input's shape (the rest missing); those answers are cached too, so
    running the batch again sends only the rest."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class TransportError(OrmagicError):
    """The server could not be reached, or the connection broke."""


class TimeoutError_(TransportError):
    """Connecting or waiting for the next chunk took longer than the configured timeout."""


class ProtocolError(OrmagicError):
    """The server's answer does not follow the chat completions protocol."""


class APIError(OrmagicError):
    """The server answered with an error status and a JSON error body."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: int | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        generation_id: str | None = None,
        retry_after: float | None = None,
        reset_at: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.metadata: Mapping[str, Any] = dict(metadata or {})
        self.generation_id = generation_id
        self.retry_after = retry_after
        self.reset_at = reset_at  # a 429's X-RateLimit-Reset: when the limit resets (epoch s)


class BadRequestError(APIError):
    """400: the request was malformed (unknown model, bad parameter)."""


class AuthenticationError(APIError):
    """401: the API key is missing, invalid or revoked."""


class PaymentRequiredError(APIError):
    """402: not enough credits for this request."""


class PermissionDeniedError(APIError):
    """403: blocked by moderation, a guardrail or missing permissions."""


class NotFoundError(APIError):
    """404: the model or endpoint does not exist."""


class RequestTimeoutError(APIError):
    """408: the server timed out the request."""


class PayloadTooLargeError(APIError):
    """413: the request is too large."""


class RateLimitError(APIError):
    """429: rate limited, by OpenRouter or the provider."""


class ServerError(APIError):
    """5xx: OpenRouter or the provider failed."""


class StreamError(OrmagicError):
    """An error arrived after the answer had started streaming."""

    def __init__(
        self,
        message: str,
        *,
        code: int | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        generation_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.metadata: Mapping[str, Any] = dict(metadata or {})
        self.generation_id = generation_id
