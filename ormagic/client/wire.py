"""What every request to the server shares, synchronous or not (docs/openrouter-api.md §1, §6).

The key checked before any I/O and sent only in the ``Authorization`` header, the
attribution headers, what a failed connection means to the user, and the error a 2xx JSON
body may carry. ``http`` (the synchronous client) and ``aio`` (the asynchronous one that
batches use) both build on these, so that they say the same things in the same words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

from ..errors import APIError, ConfigError, MissingKeyError, TimeoutError_, TransportError
from ..version import __version__
from .settings import ClientSettings
from .statuses import error_fields, error_for

__all__ = [
    "JSON",
    "SSE",
    "api_key",
    "bad_url",
    "base_url",
    "body_error",
    "connect_error",
    "reason",
    "request_error",
    "request_headers",
]

SSE = "text/event-stream"
JSON = "application/json"
# What can go into an HTTP header; anything else would make httpx raise an error that
# could quote the key.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


def base_url(settings: ClientSettings) -> str:
    return settings.base_url.rstrip("/")


def api_key(settings: ClientSettings) -> str:
    """The API key, checked before any I/O; it goes only into the Authorization header."""
    secret = settings.api_key
    if secret is None or not secret:
        raise MissingKeyError()
    key = secret.reveal()
    if not _HEADER_SAFE.fullmatch(key):
        raise ConfigError(
            "The API key contains a character that cannot be sent (a space, quote or "
            "non-ASCII letter?). Check OPENROUTER_API_KEY."
        )
    return key


def request_headers(
    settings: ClientSettings, key: str, accept: str, has_body: bool
) -> dict[str, str]:
    """Accept, User-Agent, attribution and extra headers, then the key (which wins)."""
    headers = {"Accept": accept, "User-Agent": f"ormagic/{__version__}"}
    if has_body:
        headers["Content-Type"] = JSON
    headers.update(settings.headers())
    headers["Authorization"] = f"Bearer {key}"
    return headers


def bad_url(settings: ClientSettings) -> ConfigError:
    return ConfigError(
        f"{settings.base_url!r} is not a usable http(s) URL. Check OPENROUTER_BASE_URL."
    )


def connect_error(settings: ClientSettings, exc: httpx.TransportError) -> TransportError:
    """The server could not be reached at all."""
    if isinstance(exc, httpx.TimeoutException):
        return TimeoutError_(
            f"Could not reach {base_url(settings)}: no answer within "
            f"{settings.connect_timeout:g} s. Check your network or OPENROUTER_BASE_URL."
        )
    return TransportError(
        f"Could not reach {base_url(settings)}: {reason(exc)}. "
        "Check your network or OPENROUTER_BASE_URL."
    )


def request_error(
    settings: ClientSettings, exc: httpx.TransportError
) -> ConfigError | TransportError:
    """A request that was sent but failed on the way (timeout, reset, bad scheme)."""
    if isinstance(exc, httpx.UnsupportedProtocol):
        return bad_url(settings)
    if isinstance(exc, httpx.TimeoutException):
        return TimeoutError_(
            f"{base_url(settings)} did not answer within {settings.read_timeout:g} s. Try again."
        )
    return TransportError(
        f"The connection to {base_url(settings)} failed: {reason(exc)}. Try again."
    )


def body_error(body: Mapping[str, Any], response: httpx.Response) -> APIError | None:
    """The error a 2xx JSON body carries (``{"error": …}``, docs §3), or None."""
    if not body.get("error"):
        return None
    code = error_fields(body).get("code")
    status = code if isinstance(code, int) and 400 <= code <= 599 else 0
    return error_for(status or response.status_code, body, response)


def reason(exc: Exception) -> str:
    return str(exc).rstrip(".") or type(exc).__name__
