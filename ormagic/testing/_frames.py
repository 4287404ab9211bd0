"""The bodies of a fake chat answer: SSE frames of a stream, the JSON result, error bodies.

:func:`plan_stream` lays out every frame of one streamed answer, in order and with the
wait before each (the reconstructed stream of docs/openrouter-api.md §4.4), so the HTTP
handler only writes them; :func:`chat_result` is the non-streaming answer (§3) and
:func:`error_body` OpenRouter's error JSON (§6.1).
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ._replies import StreamReply
from ._tools import tool_call_deltas, tool_call_message

__all__ = [
    "Chat",
    "Frame",
    "chat_result",
    "error_body",
    "new_generation_id",
    "plan_stream",
    "reasoning_text",
    "to_json",
]

_KEEPALIVE = "OPENROUTER PROCESSING"  # docs §4.1
_ID_ALPHABET = string.ascii_letters + string.digits
_JSON_SEPARATORS = (",", ":")


@dataclass(frozen=True)
class Chat:
    """What every chunk of one answer shares."""

    generation_id: str
    created: int
    model: str
    provider: str


def new_generation_id() -> str:
    """A fresh ``gen-<unix time>-<20 letters and digits>`` id, shaped like OpenRouter's."""
    tail = "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))
    return f"gen-{int(time.time())}-{tail}"


def _readable(item: Mapping[str, Any]) -> str | None:
    """The text a reader sees in one reasoning_details item (docs §5), if any."""
    if item.get("type") == "reasoning.text":
        return str(item.get("text") or "")
    if item.get("type") == "reasoning.summary":
        return str(item.get("summary") or "")
    return None


def reasoning_text(reply: StreamReply) -> str:
    """The reasoning a reader sees: ``reasoning``, or the readable text of the details."""
    if reply.reasoning_details is None:
        return reply.reasoning
    return "".join(_readable(item) or "" for item in reply.reasoning_details)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# --------------------------------------------------------------------------- SSE frames


@dataclass(frozen=True)
class Frame:
    """Bytes to write after waiting ``wait`` seconds; with a ``gate``, the keep-alive to
    send every second until the gate opens (nothing more)."""

    data: bytes
    wait: float = 0.0
    gate: threading.Event | None = None


def to_json(obj: Any) -> str:
    """Compact JSON, as OpenRouter writes it."""
    # Raw UTF-8 (no \\u escapes) so multi-byte characters can split across writes; a lone
    # surrogate (half a character, cut by a JavaScript gateway) can only be an escape.
    text = json.dumps(obj, ensure_ascii=False, separators=_JSON_SEPARATORS)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(obj, separators=_JSON_SEPARATORS)
    return text


def _sse_data(payload: str, eol: str) -> bytes:
    return f"data: {payload}{eol}{eol}".encode()


def _sse_comment(text: str, eol: str) -> bytes:
    return f": {text}{eol}{eol}".encode()


def _choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "index": 0,
        "delta": delta,
        "finish_reason": finish,
        "native_finish_reason": finish,
        "logprobs": None,
    }


def _chunk(
    chat: Chat,
    choices: list[dict[str, Any]],
    *,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` (docs §4.2). Key order follows the documented examples:
    ``error`` before the choices (§6.3), ``usage`` after them (§4.4)."""
    chunk: dict[str, Any] = {
        "id": chat.generation_id,
        "object": "chat.completion.chunk",
        "created": chat.created,
        "model": chat.model,
        "provider": chat.provider,
    }
    if error is not None:
        chunk["error"] = error
    chunk["choices"] = choices
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def _reasoning_deltas(reply: StreamReply) -> Iterator[dict[str, Any]]:
    """Reasoning deltas: ``reasoning`` text plus a parallel ``reasoning.text`` item (§5)."""
    if reply.reasoning_details is not None:
        for item in reply.reasoning_details:
            yield {
                "role": "assistant",
                "content": "",
                "reasoning": _readable(item),
                "reasoning_details": [item],
            }
        return
    for piece in _pieces(reply.reasoning, reply.chunk_chars):
        detail = {"type": "reasoning.text", "text": piece, "format": "unknown", "index": 0}
        yield {
            "role": "assistant",
            "content": "",
            "reasoning": piece,
            "reasoning_details": [detail],
        }


def _usage_choices(reply: StreamReply) -> list[dict[str, Any]]:
    """The three shapes of the usage chunk's ``choices`` seen in the wild (§4.3)."""
    empty = {"role": "assistant", "content": ""}
    if reply.usage_variant == "one_choice":
        return [_choice(empty)]
    if reply.usage_variant == "with_finish":
        return [_choice(empty, reply.finish)]
    return []


def _tail(reply: StreamReply, chat: Chat, usage: dict[str, Any]) -> list[Frame]:
    """What follows the text: an error chunk, or finish + usage; then ``[DONE]``."""
    eol = reply.line_ending
    frames: list[Frame] = []
    if reply.error is not None:
        # Mid-stream error shape of docs §6.3: top-level error, finish_reason "error".
        choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
        frames.append(Frame(_sse_data(to_json(_chunk(chat, [choice], error=reply.error)), eol)))
    else:
        finish = _choice({"role": "assistant", "content": ""}, reply.finish)
        frames.append(Frame(_sse_data(to_json(_chunk(chat, [finish])), eol), reply.delay))
        if reply.keepalives:
            frames.append(Frame(_sse_comment(_KEEPALIVE, eol)))
        last = _chunk(chat, _usage_choices(reply), usage=usage)
        frames.append(Frame(_sse_data(to_json(last), eol), reply.delay))
    if reply.send_done:
        frames.append(Frame(_sse_data("[DONE]", eol)))
    return frames


def plan_stream(reply: StreamReply, chat: Chat, usage: dict[str, Any]) -> list[Frame]:
    """Every SSE frame of one answer, in order (the reconstructed stream of docs §4.4)."""
    eol = reply.line_ending
    frames = [Frame(_sse_comment(_KEEPALIVE, eol))] if reply.keepalives else []
    deltas = list(_reasoning_deltas(reply))
    deltas += [{"role": "assistant", "content": p} for p in _pieces(reply.text, reply.chunk_chars)]
    deltas += tool_call_deltas(reply.tool_calls, reply.tool_style, reply.tool_chunk_chars)
    gates, sent = dict(reply.gates), 0
    held = _sse_comment(_KEEPALIVE, eol) if reply.keepalives else b""  # sent while held
    for delta in deltas:
        content = delta.get("content")
        if isinstance(content, str) and content:  # a gate at or before this piece holds it
            for at in sorted(at for at in gates if at <= sent):
                frames.append(Frame(held, gate=gates.pop(at)))
            sent += len(content)
        data = _sse_data(to_json(_chunk(chat, [_choice(delta)])), eol)
        frames.append(Frame(data, reply.delay))
    frames += [Frame(held, gate=gates[at]) for at in sorted(gates)]  # after the text
    if reply.stall:
        frames.append(Frame(b"", reply.stall))
    if not reply.drop:
        frames += _tail(reply, chat, usage)
    return frames


def chat_result(reply: StreamReply, chat: Chat, usage: dict[str, Any]) -> dict[str, Any]:
    """The non-streaming ``ChatResult`` (docs §3)."""
    reasoning = reasoning_text(reply)
    details = reply.reasoning_details
    if details is None and reasoning:
        details = [{"type": "reasoning.text", "text": reasoning, "format": "unknown", "index": 0}]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text or (None if reply.tool_calls else ""),
        "refusal": None,
        "reasoning": reasoning or None,
        "reasoning_details": details or [],
    }
    if reply.tool_calls:
        message["tool_calls"] = tool_call_message(reply.tool_calls)
    finish = "error" if reply.error is not None else reply.finish
    choice: dict[str, Any] = {
        "index": 0,
        "logprobs": None,
        "finish_reason": finish,
        "native_finish_reason": finish,
        "message": message,
    }
    if reply.error is not None:
        choice["error"] = reply.error  # partial output then an error, HTTP 200 (docs §3)
    return {
        "id": chat.generation_id,
        "object": "chat.completion",
        "created": chat.created,
        "model": chat.model,
        "provider": chat.provider,
        "system_fingerprint": None,
        "choices": [choice],
        "usage": usage,
    }


def error_body(message: str, code: int | str | None, metadata: Any = None) -> dict[str, Any]:
    """OpenRouter's error body, keys in the order real bodies use (docs §6.1)."""
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error["code"] = code
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error}
