"""The HTTP client for OpenRouter's chat completions API (docs/openrouter-api.md).

One ``httpx.Client``, synchronous (IPython runs magics synchronously). A chat is a context
manager that owns the connection::

    with client.stream_chat(ChatRequest(messages)) as events:
        for event in events:
            ...

Errors *before* the answer begins (bad key, no credits, rate limits, unreachable server)
are raised on entering the ``with`` block, after retries; errors *after* it began arrive
as the terminal ``StreamFailed`` event, so whatever streamed is kept. Leaving the block,
however it happens, closes the response: closing the connection is how OpenRouter learns
to stop generating and billing (§4.1 "Stream cancellation").
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import (
    APIError,
    ConfigError,
    NotFoundError,
    OrmagicError,
    ProtocolError,
    TimeoutError_,
    TransportError,
)
from ..events import Event
from . import wire
from .request import ChatRequest
from .settings import ClientSettings
from .sse import iter_lines, iter_sse
from .statuses import error_for, retry_after
from .stream import iter_completion_events, iter_events

__all__ = ["ChatRequest", "EventStream", "OpenRouterClient"]

# Retried before the answer begins: OpenRouter's transient statuses (§6.2). 500 is not
# retried: its message is masked and it rarely clears on an immediate retry.
_RETRY_STATUSES = frozenset({408, 429, 502, 503})
# Longer waits are not worth blocking a notebook cell for (openai-python uses 60 s too).
_MAX_RETRY_AFTER = 60.0
_WRITE_TIMEOUT = 60.0
_SSE = wire.SSE
_JSON = wire.JSON
_DROPPED = "The connection dropped before the answer finished; what arrived is kept."


class OpenRouterClient:
    """Talks to OpenRouter (or any OpenAI-compatible server at ``settings.base_url``)."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._sleep = sleep
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"OpenRouterClient(base_url={self.settings.base_url!r})"

    def __enter__(self) -> OpenRouterClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool; the client can still be used afterwards."""
        if self._http is not None:
            self._http.close()
            self._http = None

    @contextlib.contextmanager
    def stream_chat(self, request: ChatRequest) -> Iterator[EventStream]:
        """POST the request and yield its events; raise pre-stream errors on entry."""
        key = self._key()
        content = wire.json_body(request.to_json())
        with wire.scrubbing(key):
            response = self._send(self._build("POST", "/chat/completions", key, _SSE, content))
        events: EventStream | None = None
        try:
            with wire.scrubbing(key):
                raw = self._events(response, functools.partial(wire.scrub, secret=key))
            events = EventStream(
                raw, response.headers.get("x-generation-id"), abort=lambda: _shut_down(response)
            )
            yield events
        finally:
            if events is not None:
                events.close()
            response.close()

    def get_models(self) -> list[dict[str, Any]]:
        """``GET /models``: every model's id, name, context length, prices (§7)."""
        data = self._get_data("/models")
        if not isinstance(data, list):
            raise ProtocolError(f"{self._base()}/models did not return a list of models.")
        return [model for model in data if isinstance(model, dict)]

    def get_endpoints(self, model_id: str) -> dict[str, Any]:
        """``GET /models/{author}/{slug}/endpoints``: who serves a model and how well.

        The ``data`` object: the model's ``id`` and ``name`` and its ``endpoints``, one per
        provider, with prices, limits, latency, throughput and uptime (docs appendix).
        The key is sent: without it OpenRouter leaves latency and throughput out. A model
        that does not exist is a :class:`NotFoundError`.
        """
        author, _, slug = model_id.partition("/")
        if not author or not slug or "/" in slug:
            raise NotFoundError(f"{model_id!r} is not a model id (author/slug).", status_code=404)
        path = f"/models/{quote(author, safe='')}/{quote(slug, safe=':')}/endpoints"
        return self._get_object(path, not_found=f"No model {model_id!r} at {self._base()}.")

    def get_key(self) -> dict[str, Any]:
        """``GET /key``: the key's label, limit, remaining credit and usage (§7)."""
        return self._get_object("/key")

    def get_generation(self, generation_id: str) -> dict[str, Any]:
        """``GET /generation?id=``: a finished generation's stats and cost (§7)."""
        not_found = (
            f"No stats for generation {generation_id} (yet): they appear a few seconds "
            "after the answer ends. Try again shortly."
        )
        return self._get_object("/generation", {"id": generation_id}, not_found)

    # -- requests -------------------------------------------------------------------------

    def _base(self) -> str:
        return self.settings.base_url.rstrip("/")

    def _client(self) -> httpx.Client:
        if self._http is None:
            s = self.settings
            timeout = httpx.Timeout(
                connect=s.connect_timeout,
                read=s.read_timeout,
                write=_WRITE_TIMEOUT,
                pool=s.connect_timeout,
            )
            self._http = httpx.Client(transport=self._transport, timeout=timeout)
        return self._http

    def _key(self) -> str:
        """The API key, checked before any I/O; it goes only into the Authorization header."""
        return wire.api_key(self.settings)

    def _headers(self, key: str, accept: str, has_body: bool) -> dict[str, str]:
        return wire.request_headers(self.settings, key, accept, has_body)

    def _build(
        self,
        method: str,
        path: str,
        key: str,
        accept: str,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Request:
        headers = self._headers(key, accept, content is not None)
        try:
            return self._client().build_request(
                method, self._base() + path, headers=headers, content=content, params=params
            )
        except httpx.InvalidURL as exc:
            raise self._bad_url() from exc

    def _bad_url(self) -> ConfigError:
        return wire.bad_url(self.settings)

    def _send(self, request: httpx.Request) -> httpx.Response:
        """Send, retrying connection failures and transient statuses (§6.2).

        Retries happen only here, before any of the answer has been read. A response
        that is returned is open and must be closed by the caller.
        """
        attempt = 0
        while True:
            retries_left = attempt < self.settings.max_retries
            try:
                response = self._client().send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if not retries_left:
                    raise self._connect_error(exc) from exc
                self._sleep(self._backoff(attempt))
            except httpx.TransportError as exc:
                raise self._request_error(exc) from exc
            else:
                delay = self._retry_delay(response, attempt) if retries_left else None
                if delay is None:
                    return response
                response.close()
                self._sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        return float(min(s.backoff_initial * 2**attempt, s.backoff_max))

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying ``response``, or None to give up on it now.

        A server's ``Retry-After`` wins over our backoff; one beyond a minute is not
        waited for: the error is raised at once with ``retry_after`` set.
        """
        if response.status_code not in _RETRY_STATUSES:
            return None
        after = retry_after(response.headers)
        if after is None:
            return self._backoff(attempt)
        return after if after <= _MAX_RETRY_AFTER else None

    def _connect_error(self, exc: httpx.TransportError) -> TransportError:
        return wire.connect_error(self.settings, exc)

    def _request_error(self, exc: httpx.TransportError) -> ConfigError | TransportError:
        return wire.request_error(self.settings, exc)

    # -- responses ------------------------------------------------------------------------

    def _events(
        self, response: httpx.Response, clean: Callable[[OrmagicError], None]
    ) -> Iterator[Event]:
        """The event iterator for a response, or the pre-stream error it carries.

        ``clean`` makes the error of a ``StreamFailed`` fit to show (:func:`_scrub`).
        """
        if not response.is_success:
            raise self._api_error(response)
        generation_id = response.headers.get("x-generation-id")
        content_type = response.headers.get("content-type", "").lower()
        if "json" in content_type:
            return self._json_events(response, generation_id, clean)
        if "html" in content_type:
            # A proxy or captive portal page, not an event stream.
            raise ProtocolError(
                f"{self._base()} answered with a web page, not an event stream. "
                "Check OPENROUTER_BASE_URL."
            )
        chunks = _iter_chunks(response, self.settings.read_timeout)
        return iter_events(iter_sse(iter_lines(chunks)), generation_id=generation_id, clean=clean)

    def _json_events(
        self,
        response: httpx.Response,
        generation_id: str | None,
        clean: Callable[[OrmagicError], None],
    ) -> Iterator[Event]:
        """A 2xx JSON body: an error (raised, §3) or a whole non-streaming completion."""
        body = self._read_json(response)
        if not isinstance(body, dict):
            raise ProtocolError(f"{self._base()} answered with JSON that is not an object.")
        error = wire.body_error(body, response)
        if error is not None:
            raise error
        return iter_completion_events(body, generation_id=generation_id, clean=clean)

    def _read(self, response: httpx.Response) -> bytes:
        try:
            return response.read()
        except httpx.TimeoutException as exc:
            raise TimeoutError_(
                f"{self._base()} stopped answering for {self.settings.read_timeout:g} s. Try again."
            ) from exc
        except httpx.TransportError as exc:
            raise TransportError(
                f"The connection to {self._base()} dropped: {_reason(exc)}. Try again."
            ) from exc

    def _read_json(self, response: httpx.Response) -> Any:
        body = self._read(response)
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(
                f"{self._base()} answered with something that is not JSON: {body[:80]!r}"
            ) from exc

    def _api_error(self, response: httpx.Response, not_found: str | None = None) -> APIError:
        """The exception for a non-2xx response; an unreadable body is tolerated."""
        try:
            body = response.read()
        except httpx.HTTPError:
            body = b""
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            payload = None  # e.g. a proxy's HTML error page: the status reason is used
        error = error_for(response.status_code, payload, response)
        if not_found is not None and isinstance(error, NotFoundError):
            return NotFoundError(
                not_found,
                status_code=error.status_code,
                code=error.code,
                metadata=error.metadata,
                generation_id=error.generation_id,
            )
        return error

    def _get_data(
        self, path: str, params: Mapping[str, str] | None = None, not_found: str | None = None
    ) -> Any:
        """``GET {base}{path}`` with the chat's error mapping; the body's ``data``."""
        key = self._key()
        with wire.scrubbing(key):
            response = self._send(self._build("GET", path, key, _JSON, params=params))
            try:
                if not response.is_success:
                    raise self._api_error(response, not_found)
                body = self._read_json(response)
            finally:
                response.close()
        if not isinstance(body, dict) or "data" not in body:
            raise ProtocolError(f'{self._base()}{path} answered without a "data" field.')
        return body["data"]

    def _get_object(
        self, path: str, params: Mapping[str, str] | None = None, not_found: str | None = None
    ) -> dict[str, Any]:
        data = self._get_data(path, params, not_found)
        if not isinstance(data, dict):
            raise ProtocolError(
                f'{self._base()}{path} answered with a "data" that is not an object.'
            )
        return data


class EventStream:
    """The events of one response, with the generation id its headers announced.

    The id is known before any event (``X-Generation-Id``, docs §1), so a stream that is
    interrupted still says which generation it was: its cost can be looked up later.
    """

    def __init__(
        self,
        events: Iterator[Event],
        generation_id: str | None,
        *,
        abort: Callable[[], None] | None = None,
    ) -> None:
        self._events = events
        self.generation_id = generation_id
        self._abort = abort

    def abort(self) -> None:
        """Stop the stream from another thread than the one reading it.

        The connection is shut down, which wakes a read blocked on it at once (closing a
        socket does not, on Linux) and tells the server the client left, so OpenRouter
        stops generating and billing (§4.1). The reading thread then sees the stream end
        as a dropped connection and leaves ``stream_chat``, which closes the response.
        """
        if self._abort is not None:
            self._abort()

    def __iter__(self) -> Iterator[Event]:
        return self._events  # a for loop reads the events directly: one call less each

    def __next__(self) -> Event:
        return next(self._events)

    def close(self) -> None:
        """Close the underlying generator (the response is closed by ``stream_chat``)."""
        if isinstance(self._events, Generator):
            self._events.close()


def _shut_down(response: httpx.Response) -> None:
    """Shut down the response's connection (both ways), from any thread.

    httpcore exposes the connection as the ``network_stream`` extension; a transport
    without one (a test's ``MockTransport``) has nothing to shut down.
    """
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _iter_chunks(response: httpx.Response, read_timeout: float) -> Iterator[bytes]:
    """The response's bytes; a broken connection becomes an ormagic error.

    ``iter_bytes`` (not ``iter_raw``) so that a gzip-encoded stream is decoded.
    ``iter_events`` turns the error raised here into the terminal ``StreamFailed``.
    """
    try:
        yield from response.iter_bytes()
    except httpx.TimeoutException as exc:
        raise TimeoutError_(
            f"Nothing arrived for {read_timeout:g} s, so the answer was cut short; "
            "what arrived is kept."
        ) from exc
    except httpx.TransportError as exc:
        raise TransportError(_DROPPED) from exc
    except httpx.DecodingError as exc:
        raise ProtocolError(f"The response could not be decoded ({exc}).") from exc


_reason = wire.reason
