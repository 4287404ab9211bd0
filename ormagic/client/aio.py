"""The asynchronous client: many whole (non-streaming) answers at once, for batches over rows.

A row does not need streaming: ``stream: false`` returns the whole answer with its usage
(docs/openrouter-api.md §3). The JSON body becomes events through the same
``iter_completion_events`` the synchronous client uses for a server that ignored
``stream``, and an error status becomes the same exception (``statuses.error_for``), so a
row fails with the words a single ``%%chat`` would use. This client does not retry: the
batch decides, since a 429 slows the whole batch down while a 5xx concerns one row.

The connections of a batch are shared out between a few ``httpx.AsyncClient`` pools of
at most eight: httpcore's pool looks at every connection (and, for each idle one, at every
other) each time a request starts or ends, which at 32 connections was most of the
client's CPU per row. Closing the client (or cancelling a request) closes the
connections, which is how OpenRouter learns to stop generating.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from ..errors import ConfigError, OrmagicError, ProtocolError
from ..events import Finished, StreamFailed, Usage
from . import wire
from .message import MessageBuilder
from .settings import ClientSettings
from .statuses import error_for
from .stream import iter_completion_events

__all__ = ["AsyncChatClient", "Completion", "batches_url", "completion_from_body"]

_WRITE_TIMEOUT = 60.0
_POOL_SIZE = 8  # connections per httpx pool (see the module's docstring)


@dataclass(frozen=True)
class Completion:
    """One whole answer: the assistant message, its usage and who answered."""

    message: Mapping[str, Any]
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None
    provider: str | None = None
    generation_id: str | None = None
    failure: OrmagicError | None = None
    """An error the 200 body carried (``choices[0].error``, docs §3)."""

    @property
    def text(self) -> str:
        content = self.message.get("content")
        return content if isinstance(content, str) else ""


def completion_from_body(body: Mapping[str, Any], generation_id: str | None = None) -> Completion:
    """A chat completion JSON body (a live answer or a batch result) as a :class:`Completion`."""
    builder = MessageBuilder()
    usage: Usage | None = None
    end: Finished | StreamFailed | None = None
    for event in iter_completion_events(body, generation_id=generation_id):
        builder.add(event)
        if isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finished | StreamFailed):
            end = event
    return Completion(
        message=builder.message(),
        usage=usage,
        finish_reason=end.reason if isinstance(end, Finished) else None,
        model=end.model if end else None,
        provider=end.provider if end else None,
        generation_id=end.generation_id if end else generation_id,
        failure=end.error if isinstance(end, StreamFailed) else None,
    )


def batches_url(settings: ClientSettings) -> str:
    """OpenRouter's batch endpoint next to the API base: ``…/api/v1`` -> ``…/api/beta/batches``."""
    base = wire.base_url(settings)
    if not base.endswith("/v1"):
        raise ConfigError(
            f"The deferred mode needs OpenRouter's batch endpoint, which lives next to "
            f"…/api/v1; {base!r} is not such a base URL."
        )
    return base[: -len("/v1")] + "/beta/batches"


class AsyncChatClient:
    """Whole answers from ``settings.base_url``; the key is checked when it is made."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        connections: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._key = wire.api_key(settings)
        s = settings
        # no pool timeout: the batch bounds what is in flight, and a queued request waits
        timeout = httpx.Timeout(
            connect=s.connect_timeout, read=s.read_timeout, write=_WRITE_TIMEOUT, pool=None
        )
        self._pools: list[httpx.AsyncClient] = []
        self._busy: list[int] = []
        left = max(connections, 1)
        while left > 0:
            size = min(left, _POOL_SIZE)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            self._pools.append(
                httpx.AsyncClient(
                    transport=transport, timeout=timeout, limits=limits, verify=_ssl_context()
                )
            )
            self._busy.append(0)
            left -= size

    def __repr__(self) -> str:
        return f"AsyncChatClient(base_url={self.settings.base_url!r})"

    async def __aenter__(self) -> AsyncChatClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()

    async def complete(self, body: Mapping[str, Any]) -> Completion:
        """POST one chat completion (the body should say ``stream: false``) and read it."""
        url = wire.base_url(self.settings) + "/chat/completions"
        with wire.scrubbing(self._key):
            response = await self._request("POST", url, body)
            data = _json(response, url)
            if not isinstance(data, dict):
                raise ProtocolError(f"{url} answered with JSON that is not an object.")
            error = wire.body_error(data, response)
            if error is not None:
                raise error
        return completion_from_body(data, response.headers.get("x-generation-id"))

    async def post_json(self, url: str, body: Mapping[str, Any]) -> Any:
        """POST ``body`` to ``url`` (an absolute URL) and return the JSON answer."""
        with wire.scrubbing(self._key):
            return _json(await self._request("POST", url, body), url)

    async def get_json(self, url: str) -> Any:
        with wire.scrubbing(self._key):
            return _json(await self._request("GET", url), url)

    async def _request(
        self, method: str, url: str, body: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        """Send and read the whole response; an error status raises its APIError."""
        headers = wire.request_headers(self.settings, self._key, wire.JSON, body is not None)
        content = None if body is None else wire.json_body(body)
        pool = min(range(len(self._pools)), key=self._busy.__getitem__)  # the least busy
        self._busy[pool] += 1
        try:
            response = await self._pools[pool].request(
                method, url, content=content, headers=headers
            )
        except httpx.InvalidURL as exc:
            raise wire.bad_url(self.settings) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise wire.connect_error(self.settings, exc) from exc
        except httpx.TransportError as exc:
            raise wire.request_error(self.settings, exc) from exc
        except httpx.DecodingError as exc:  # a body its Content-Encoding does not fit
            raise ProtocolError(f"The response could not be decoded ({exc}).") from exc
        finally:
            self._busy[pool] -= 1
        if not response.is_success:
            try:
                payload = response.json()
            except ValueError:
                payload = None  # a proxy's HTML page: the status reason is used
            raise error_for(response.status_code, payload, response)
        return response


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """httpx's default context, made once: making one costs about 20 ms of CPU, and a
    batch (or each Dask partition) would otherwise make one per pool."""
    return httpx.create_ssl_context()


def _json(response: httpx.Response, url: str) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise ProtocolError(
            f"{url} answered with something that is not JSON: {response.content[:80]!r}"
        ) from exc
