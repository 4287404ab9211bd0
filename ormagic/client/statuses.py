"""HTTP error responses -> the ormagic exception for their status (docs/openrouter-api.md §6).

Bodies look like ``{"error": {"code", "message", "metadata"}}`` but ``code`` may be missing
or a string, ``metadata.raw`` may be a JSON string, and a proxy may answer with HTML: every
shape gives one exception whose message says what to do next.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ..errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)

__all__ = ["error_fields", "error_for", "rate_limit_reset", "retry_after"]

_CREDITS_URL = "https://openrouter.ai/settings/credits"

_STATUS_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}


def retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` in seconds: a number or an HTTP date (RFC 9110 §10.2.3)."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def rate_limit_reset(headers: httpx.Headers) -> float | None:
    """``X-RateLimit-Reset`` as a time (seconds since the epoch), or None.

    OpenRouter sends milliseconds since the epoch with a 429 that has no ``Retry-After``
    (the free models' daily quota, for one); seconds are accepted as well.
    """
    value = headers.get("x-ratelimit-reset", "").strip()
    try:
        when = float(value)
    except ValueError:
        return None
    if not math.isfinite(when) or when <= 0:
        return None
    return when / 1000 if when > 1e11 else when


def error_fields(payload: Any) -> Mapping[str, Any]:
    """The ``error`` object of an error body ``{"error": {code, message, metadata}}``."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return error
    if isinstance(error, str) and error:
        return {"message": error}
    return {}


def error_for(status: int, payload: Any, response: httpx.Response) -> APIError:
    """The APIError subclass for ``status``, carrying the body's code and metadata.

    ``code`` may be missing or a string and ``metadata`` missing (§6.1 [CONFLICT]); a body
    that is not JSON leaves the status reason as the message.
    """
    error = error_fields(payload)
    message = error.get("message")
    if not isinstance(message, str) or not message.strip():
        message = httpx.codes.get_reason_phrase(status) or f"HTTP {status}"
    raw_metadata = error.get("metadata")
    metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    code = error.get("code")
    wait = retry_after(response.headers)
    reset_at = rate_limit_reset(response.headers) if status == 429 else None
    cls = _STATUS_CLASSES.get(status, ServerError if status >= 500 else APIError)
    return cls(
        _describe(status, message.strip(), metadata, wait, reset_at),
        status_code=status,
        code=code if isinstance(code, int | str) and not isinstance(code, bool) else None,
        metadata=metadata,
        generation_id=response.headers.get("x-generation-id"),
        retry_after=wait,
        reset_at=reset_at,
    )


def _describe(
    status: int,
    message: str,
    metadata: Mapping[str, Any],
    retry_after: float | None,
    reset_at: float | None = None,
) -> str:
    """What went wrong and what to do about it, in one or two lines."""
    if status == 401:
        return f"OpenRouter rejected the API key ({message}). Check OPENROUTER_API_KEY."
    if status == 402:
        return (
            f"Not enough credits ({message}). Add credits at {_CREDITS_URL} or lower --max-tokens."
        )
    if status == 403:
        return _forbidden(message, metadata)
    if status == 404:
        return f"Not found: {_sentence(message)} Check the model id (%chat models lists them)."
    if status == 408:
        return "OpenRouter timed out the request. Try again."
    if status == 413:
        return "The request is too large. Send less context (--context N) or a shorter prompt."
    if status == 429:
        return f"Rate limited ({message}). Try again {_when(retry_after, reset_at)}."
    return _describe_other(status, _with_detail(message, metadata))


def _when(retry_after: float | None, reset_at: float | None) -> str:
    if retry_after is not None:
        return f"in {max(1, math.ceil(retry_after))} s"
    if reset_at is not None:
        moment = datetime.fromtimestamp(math.ceil(reset_at / 60) * 60, timezone.utc)
        return f"after {moment:%Y-%m-%d %H:%M} UTC, when the limit resets"
    return "shortly"


def _describe_other(status: int, detail: str) -> str:
    if status >= 500:
        return f"OpenRouter error {status}: {detail}. Try again or choose another model."
    if status == 400:
        return f"Bad request: {detail}. Check the model id and options."
    if status < 400:  # an error body inside a 2xx answer (§3)
        return f"The server reported an error: {detail}."
    return f"OpenRouter error {status}: {detail}."


def _forbidden(message: str, metadata: Mapping[str, Any]) -> str:
    """403: moderation lists its reasons and the flagged input (§6.1)."""
    reasons = metadata.get("reasons")
    if isinstance(reasons, list) and reasons:
        text = "Blocked by moderation: " + ", ".join(str(reason) for reason in reasons)
        flagged = metadata.get("flagged_input")
        if isinstance(flagged, str) and flagged:
            text += f' (flagged: "{flagged}")'
        return text
    return f"OpenRouter refused the request ({message}). Check the key's permissions."


def _with_detail(message: str, metadata: Mapping[str, Any]) -> str:
    """``message: provider detail (provider: Name)``: provider errors hide the useful
    part in ``metadata.raw`` and ``metadata.provider_name`` (§6.1, OR-AISDK)."""
    text = _clause(message)
    raw = _raw_detail(metadata.get("raw"))
    if raw and raw not in text:
        text += f": {raw}"
    provider = metadata.get("provider_name")
    if isinstance(provider, str) and provider:
        text += f" (provider: {provider})"
    return text


def _raw_detail(raw: Any, limit: int = 200) -> str:
    """The message inside ``metadata.raw``, which may be a JSON string, an object or text."""
    if isinstance(raw, str):
        with contextlib.suppress(ValueError, RecursionError):
            raw = json.loads(raw)
    if isinstance(raw, dict):
        inner = raw.get("error", raw)
        raw = inner.get("message") if isinstance(inner, dict) else inner
    if not isinstance(raw, str):
        return ""
    text = " ".join(raw.split())
    return _clause(text if len(text) <= limit else text[: limit - 3] + "...")


def _clause(text: str) -> str:
    return text.strip().rstrip(".")


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."
