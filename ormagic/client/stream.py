"""SSE events -> ormagic events: interpret OpenRouter's chat completion chunks.

Follows docs/openrouter-api.md: §4 (chunk shape, the three usage-chunk variants, ``[DONE]``),
§5 (``reasoning_details``) and §6.3 (an error chunk after the answer began). The chunk
format is the OpenAI one, so OpenAI-compatible servers (vLLM, DeepSeek) work as well.

Every stream ends with exactly one terminal event, ``Finished`` or ``StreamFailed``, and
nothing follows it. The usage chunk is held back and emitted just before the terminal
event, so a stream yields at most one ``Usage`` (the last one the server sent).

A stream is complete when it says so: ``[DONE]``, a ``finish_reason`` or the usage chunk
(which OpenRouter sends last). One that just stops (a clean end of the body without any
of them: truncated, or not a chat stream at all) ends in a ``ProtocolError``, so a cut
answer is never recorded as a whole one; what arrived is kept either way. EOF without
``[DONE]`` after a finish reason is tolerated (§9).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import OrmagicError, ProtocolError, StreamError
from ..events import Event, Finished, KeepAlive, ReasoningDelta, StreamFailed, TextDelta, Usage
from .sse import SSEComment, SSEEvent

__all__ = ["iter_completion_events", "iter_events"]

_DONE = "[DONE]"
_SNIPPET = 80
_TRUNCATED = (
    "The stream ended before the answer was complete (no [DONE], no finish reason); "
    "what arrived is kept."
)


def iter_events(
    items: Iterable[SSEEvent | SSEComment], *, generation_id: str | None = None
) -> Iterator[Event]:
    """Turn SSE items into ormagic events, ending with one terminal event.

    ``generation_id`` (the ``X-Generation-Id`` header) is used until a chunk carries its
    own ``id``. An :class:`OrmagicError` raised by ``items`` itself (the client turns a
    dropped connection into one) becomes the terminal ``StreamFailed``.
    """
    state = _State(generation_id)
    source = iter(items)
    while True:
        try:
            item = next(source)
        except StopIteration:
            break
        except OrmagicError as exc:
            yield from state.fail(exc)
            return
        if isinstance(item, SSEComment):
            yield KeepAlive(item.text)
            continue
        if item.data.strip() == _DONE:
            # Stop at once: nothing after [DONE] is read (§4.1, OR-TS).
            state.done = True
            break
        if not item.data.strip():
            continue
        chunk = _parse_chunk(item.data)
        if isinstance(chunk, ProtocolError):
            yield from state.fail(chunk)
            return
        yield from _chunk_events(chunk)
        error = state.note(chunk)
        if error is not None:
            yield from state.fail(error)
            return
    if not state.complete:
        yield from state.fail(ProtocolError(_TRUNCATED))
        return
    yield from state.finish()


def iter_completion_events(
    body: Mapping[str, Any], *, generation_id: str | None = None
) -> Iterator[Event]:
    """Events for a non-streaming chat completion (a server that ignored ``stream``).

    The ``message`` of each choice is read as if it were one delta (§3), so the result
    looks exactly like a stream that sent the whole answer in one chunk.
    """
    choices = body.get("choices")
    as_chunk = dict(body)
    as_chunk["choices"] = [
        {**choice, "delta": choice.get("message") or {}}
        for choice in (choices if isinstance(choices, list) else [])
        if isinstance(choice, dict)
    ]
    state = _State(generation_id)
    yield from _chunk_events(as_chunk)
    error = state.note(as_chunk)
    yield from state.finish() if error is None else state.fail(error)


def _parse_chunk(data: str) -> dict[str, Any] | ProtocolError:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python goes
        value = None
    if isinstance(value, dict):
        return value
    snippet = repr(data[:_SNIPPET]) + ("..." if len(data) > _SNIPPET else "")
    return ProtocolError(f"The server sent a stream chunk that is not a JSON object: {snippet}")


def _choices(chunk: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The chunk's choices that are objects; ``choices`` may be absent or empty (§4.3)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return []
    return [choice for choice in choices if isinstance(choice, dict)]


def _chunk_events(chunk: Mapping[str, Any]) -> Iterator[Event]:
    """Reasoning then text of the first choice (ormagic asks for one choice)."""
    choices = _choices(chunk)
    delta = choices[0].get("delta") if choices else None
    if not isinstance(delta, dict):
        return
    reasoning = _reasoning_delta(delta)
    if reasoning is not None:
        yield reasoning
    content = delta.get("content")
    if isinstance(content, str) and content:
        yield TextDelta(content)


def _reasoning_delta(delta: Mapping[str, Any]) -> ReasoningDelta | None:
    """One reasoning event per chunk: ``reasoning_details`` win over the plain string.

    A chunk usually carries the same text in both ``reasoning`` and ``reasoning_details``;
    taking only one of them avoids showing it twice (OR-AISDK, §4.2).
    """
    raw = delta.get("reasoning_details")
    details = tuple(d for d in raw if isinstance(d, dict)) if isinstance(raw, list) else ()
    if details:
        return ReasoningDelta("".join(_detail_text(d) for d in details), details)
    for key in ("reasoning", "reasoning_content"):  # reasoning_content: vLLM/DeepSeek alias
        text = delta.get(key)
        if isinstance(text, str) and text:
            return ReasoningDelta(text)
    return None


def _detail_text(detail: Mapping[str, Any]) -> str:
    """The readable text of one reasoning detail; encrypted and unknown types have none."""
    kind = detail.get("type")
    key = "text" if kind == "reasoning.text" else "summary" if kind == "reasoning.summary" else ""
    text = detail.get(key) if key else None
    return text if isinstance(text, str) else ""


def _usage(raw: Mapping[str, Any]) -> Usage:
    """OpenRouter ``ChatUsage`` (§4.3); missing nested counts are 0, missing cost None."""
    prompt_details = _mapping(raw.get("prompt_tokens_details"))
    completion_details = _mapping(raw.get("completion_tokens_details"))
    return Usage(
        prompt_tokens=_count(raw.get("prompt_tokens")),
        completion_tokens=_count(raw.get("completion_tokens")),
        reasoning_tokens=_count(completion_details.get("reasoning_tokens")),
        cached_tokens=_count(prompt_details.get("cached_tokens")),
        cost=_cost(raw.get("cost")),
        raw=dict(raw),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def _cost(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _error_object(chunk: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The chunk's top-level ``error``, else the first ``choices[i].error`` (§3, §6.3)."""
    candidates = [chunk.get("error")] + [choice.get("error") for choice in _choices(chunk)]
    for error in candidates:
        if isinstance(error, dict) and error:
            return error
        if isinstance(error, str) and error:
            return {"message": error}
    return None


def _stream_error(error: Mapping[str, Any], generation_id: str | None) -> StreamError:
    message = error.get("message")
    code = error.get("code")
    return StreamError(
        message if isinstance(message, str) and message else "The provider reported an error.",
        code=code if isinstance(code, int | str) and not isinstance(code, bool) else None,
        metadata=_mapping(error.get("metadata")),
        generation_id=generation_id,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class _State:
    """What a stream has told us so far about itself, for the terminal event."""

    generation_id: str | None
    model: str | None = None
    provider: str | None = None
    reason: str | None = None
    native_reason: str | None = None
    usage: Usage | None = None
    done: bool = False  # [DONE] arrived

    @property
    def complete(self) -> bool:
        """The stream said it ended: [DONE], a finish reason or the (last) usage chunk."""
        return self.done or self.reason is not None or self.usage is not None

    def note(self, chunk: Mapping[str, Any]) -> StreamError | None:
        """Remember the chunk's metadata and usage; return its error, if it has one."""
        self.generation_id = _text(chunk.get("id")) or self.generation_id
        self.model = _text(chunk.get("model")) or self.model
        self.provider = _text(chunk.get("provider")) or self.provider
        for choice in _choices(chunk):
            self.reason = _text(choice.get("finish_reason")) or self.reason
            self.native_reason = _text(choice.get("native_finish_reason")) or self.native_reason
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = _usage(usage)
        error = _error_object(chunk)
        return None if error is None else _stream_error(error, self.generation_id)

    def finish(self) -> Iterator[Event]:
        if self.usage is not None:
            yield self.usage
        yield Finished(
            self.reason, self.native_reason, self.generation_id, self.model, self.provider
        )

    def fail(self, error: OrmagicError) -> Iterator[Event]:
        if self.usage is not None:
            yield self.usage
        yield StreamFailed(error, self.generation_id, self.model, self.provider)
