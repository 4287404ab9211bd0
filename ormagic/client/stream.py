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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import OrmagicError, ProtocolError, StreamError
from ..events import (
    Event,
    Finished,
    KeepAlive,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from .sse import SSEComment, SSEEvent

__all__ = ["iter_completion_events", "iter_events"]

_DONE = "[DONE]"
_SNIPPET = 80
_TRUNCATED = (
    "The stream ended before the answer was complete (no [DONE], no finish reason); "
    "what arrived is kept."
)


def iter_events(
    items: Iterable[SSEEvent | SSEComment],
    *,
    generation_id: str | None = None,
    clean: Callable[[OrmagicError], None] | None = None,
) -> Iterator[Event]:
    """Turn SSE items into ormagic events, ending with one terminal event.

    ``generation_id`` (the ``X-Generation-Id`` header) is used until a chunk carries its
    own ``id``. An :class:`OrmagicError` raised by ``items`` itself (the client turns a
    dropped connection into one) becomes the terminal ``StreamFailed``. ``clean`` is
    called on the error of a ``StreamFailed`` before it is yielded (the client redacts
    the key from the server's words there).
    """
    state = _State(generation_id, clean)
    try:
        for item in items:
            if isinstance(item, SSEComment):
                yield KeepAlive(item.text)
                continue
            data = item.data
            if data[:1].isspace() or data[-1:].isspace():  # rare: strip only then
                data = data.strip()
            if data == _DONE:
                # Stop at once: nothing after [DONE] is read (§4.1, OR-TS).
                state.done = True
                break
            if not data:
                continue
            chunk = _parse_chunk(data)
            if isinstance(chunk, ProtocolError):
                yield from state.fail(chunk)
                return
            choices = _choices(chunk)
            yield from _chunk_events(choices)
            error = state.note(chunk, choices)
            if error is not None:
                yield from state.fail(error)
                return
    except OrmagicError as exc:  # raised by ``items``: the connection broke, say
        yield from state.fail(exc)
        return
    if not state.complete:
        yield from state.fail(ProtocolError(_TRUNCATED))
        return
    yield from state.finish()


def iter_completion_events(
    body: Mapping[str, Any],
    *,
    generation_id: str | None = None,
    clean: Callable[[OrmagicError], None] | None = None,
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
    state = _State(generation_id, clean)
    choices = _choices(as_chunk)
    yield from _chunk_events(choices)
    error = state.note(as_chunk, choices)
    yield from state.finish() if error is None else state.fail(error)


# The JSON scanner itself: ``json.loads`` would check its argument and skip whitespace
# (already stripped) around the document on every chunk (bench/bench_client.py).
def _scanner() -> Callable[[str, int], tuple[Any, int]]:
    decoder: Any = json.JSONDecoder()  # scan_once is not in the type stubs
    scan: Callable[[str, int], tuple[Any, int]] = decoder.scan_once
    return scan


_SCAN = _scanner()


def _parse_chunk(data: str) -> dict[str, Any] | ProtocolError:
    """``data`` (stripped) as a JSON object, or the protocol error it is."""
    try:
        value, end = _SCAN(data, 0)
    except (StopIteration, ValueError, RecursionError):  # RecursionError: deeper than Python
        value, end = None, 0
    if end != len(data):
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
    if len(choices) == 1 and isinstance(choices[0], dict):
        return choices  # the usual shape, as it is
    return [choice for choice in choices if isinstance(choice, dict)]


def _chunk_events(choices: list[Mapping[str, Any]]) -> tuple[Event, ...]:
    """Reasoning, text, then tool-call fragments of the first choice (ormagic asks for one)."""
    delta = choices[0].get("delta") if choices else None
    if not isinstance(delta, dict):
        return ()
    content = delta.get("content")
    text = TextDelta(content) if isinstance(content, str) and content else None
    if (
        "reasoning" not in delta
        and "reasoning_details" not in delta
        and "reasoning_content" not in delta
        and "tool_calls" not in delta
    ):
        return (text,) if text else ()  # the common case: a piece of the answer
    reasoning = _reasoning_delta(delta)
    calls = tuple(_tool_call_deltas(delta.get("tool_calls")))
    return tuple(event for event in (reasoning, text) if event is not None) + calls


def _tool_call_deltas(items: Any) -> Iterator[ToolCallDelta]:
    """``delta.tool_calls`` items as received (OAS ``ChatStreamToolCall``, tools doc §1.3).

    A non-streaming answer's ``message.tool_calls`` has the same shape without ``index``
    and with whole calls, so it goes through here too.
    """
    if not isinstance(items, list):
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        index = item.get("index")
        function = _mapping(item.get("function"))
        arguments = function.get("arguments")
        if isinstance(arguments, dict | list):  # a few servers send the object itself
            arguments = json.dumps(arguments, ensure_ascii=False)
        yield ToolCallDelta(
            index=index if isinstance(index, int) and not isinstance(index, bool) else None,
            id=_text(item.get("id")),
            name=_text(function.get("name")),
            arguments=arguments if isinstance(arguments, str) else "",
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


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


def _error_object(
    chunk: Mapping[str, Any], choices: list[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The chunk's top-level ``error``, else the first ``choices[i].error`` (§3, §6.3)."""
    candidates = [chunk.get("error")] + [choice.get("error") for choice in choices]
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


@dataclass
class _State:
    """What a stream has told us so far about itself, for the terminal event."""

    generation_id: str | None
    clean: Callable[[OrmagicError], None] | None = None
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

    def note(
        self, chunk: Mapping[str, Any], choices: list[Mapping[str, Any]]
    ) -> StreamError | None:
        """Remember the chunk's metadata and usage; return its error, if it has one."""
        # written out, not looped: this runs for every chunk (bench/bench_client.py)
        value = chunk.get("id")
        if value and isinstance(value, str):
            self.generation_id = value
        value = chunk.get("model")
        if value and isinstance(value, str):
            self.model = value
        value = chunk.get("provider")
        if value and isinstance(value, str):
            self.provider = value
        for choice in choices:
            value = choice.get("finish_reason")
            if value and isinstance(value, str):
                self.reason = value
            value = choice.get("native_finish_reason")
            if value and isinstance(value, str):
                self.native_reason = value
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = _usage(usage)
        if (
            "error" not in chunk
            and (not choices or "error" not in choices[0])
            and (len(choices) < 2 or not any("error" in choice for choice in choices))
        ):
            return None
        error = _error_object(chunk, choices)
        return None if error is None else _stream_error(error, self.generation_id)

    def finish(self) -> Iterator[Event]:
        if self.usage is not None:
            yield self.usage
        yield Finished(
            self.reason, self.native_reason, self.generation_id, self.model, self.provider
        )

    def fail(self, error: OrmagicError) -> Iterator[Event]:
        if self.clean is not None:
            self.clean(error)
        if self.usage is not None:
            yield self.usage
        yield StreamFailed(error, self.generation_id, self.model, self.provider)
