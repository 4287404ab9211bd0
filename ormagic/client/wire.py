"""What every request to the server shares, synchronous or not (docs/openrouter-api.md §1, §6).

The key checked before any I/O, sent only in the ``Authorization`` header and redacted
from every error that may quote it; the attribution headers; what a failed connection
means to the user; and the error a 2xx JSON body may carry. ``http`` (the synchronous
client) and ``aio`` (the asynchronous one that batches use) both build on these, so that
they say the same things in the same words.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from ..errors import (
    APIError,
    ConfigError,
    MissingKeyError,
    OrmagicError,
    StreamError,
    TimeoutError_,
    TransportError,
)
from ..formatting import printable
from ..version import __version__
from .settings import ClientSettings
from .statuses import error_fields, error_for
from .toolcalls import join_surrogates

__all__ = [
    "JSON",
    "SSE",
    "api_key",
    "bad_url",
    "base_url",
    "body_error",
    "connect_error",
    "json_body",
    "reason",
    "request_error",
    "request_headers",
    "scrub",
    "scrubbing",
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


def json_body(body: Mapping[str, Any]) -> bytes:
    """``body`` as the UTF-8 JSON a request sends.

    A lone UTF-16 surrogate (text decoded with ``surrogateescape``, a file cut mid-pair)
    cannot be encoded as UTF-8: it is sent as U+FFFD rather than failing the request
    (and a pair split in two is joined again).
    """
    text = json.dumps(body, ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return join_surrogates(text).encode()


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


# -- what an error may quote: the key, redacted; control characters, shown

_REDACTED = "[REDACTED]"


@contextlib.contextmanager
def scrubbing(secret: str) -> Iterator[None]:
    """Errors raised inside are fit to show (see :func:`scrub`)."""
    try:
        yield
    except OrmagicError as error:
        scrub(error, secret=secret)
        raise


def scrub(error: OrmagicError, *, secret: str) -> None:
    """Make an error that may quote the server fit to show, print and save.

    A server (or a proxy in front of it) may echo the Authorization header in an error
    message, which would then be shown in the notebook and saved with it: the key
    becomes ``[REDACTED]``. Control characters are shown, not obeyed (the message is
    printed in terminals).
    """

    def clean(text: str) -> str:
        return printable(_without_secret(text, secret))

    error.args = tuple(clean(arg) if isinstance(arg, str) else arg for arg in error.args)
    if isinstance(error, APIError | StreamError):
        error.message = clean(error.message)


# A piece of the key this long is redacted too: an error message may quote a request or a
# body cut short (a ProtocolError shows the first 80 characters of a bad chunk).
_SECRET_PIECE = 12


def _without_secret(text: str, secret: str) -> str:
    """``text`` with the secret, and every piece of it of 12 characters or more, redacted."""
    if len(secret) < _SECRET_PIECE:
        return text.replace(secret, _REDACTED) if secret else text
    pieces = _secret_pieces(secret)
    out: list[str] = []
    done = 0
    for match in pieces.finditer(text):
        if match.start() < done:
            continue
        end = match.end()
        while end < len(text) and text[match.start() : end + 1] in secret:
            end += 1  # a longer piece: up to where it stops matching the key
        out += [text[done : match.start()], _REDACTED]
        done = end
    return "".join([*out, text[done:]]) if out else text


@functools.lru_cache(maxsize=4)
def _secret_pieces(secret: str) -> re.Pattern[str]:
    starts = range(len(secret) - _SECRET_PIECE + 1)
    return re.compile("|".join(re.escape(secret[i : i + _SECRET_PIECE]) for i in starts))
