"""Tool calling in the fake OpenRouter: scripted calls, their streamed fragments, and the
checks a real server makes on the messages that carry results back.

docs/openrouter-tools.md §1.3 (the delta shape), §1.4 (the ways providers split, repeat
and mislabel fragments) and §1.5 (what the next request must carry). A scripted
:class:`ToolCall` is streamed as a first fragment with ``id``, ``type`` and
``function.name`` and ``arguments: ""``, then pieces of the arguments; ``StreamReply``'s
``tool_style`` and ``tool_chunk_chars`` choose how badly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TOOL_STYLES",
    "ToolCall",
    "check_tool_history",
    "tool_call_deltas",
    "tool_call_message",
]

# openai: OpenAI's shape. repeat_ids: id and name again in every fragment (Fireworks,
# some DeepSeek and Qwen hosts). shared_index: every parallel call on index 0. no_index:
# fragments without an index. interleaved: parallel calls' fragments alternate.
TOOL_STYLES = ("openai", "repeat_ids", "shared_index", "no_index", "interleaved")
_MISSING_RESULT = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding "
    "to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}"
)
_STRAY_RESULT = (
    "Invalid parameter: messages with role 'tool' must be a response to a preceding "
    "message with 'tool_calls'."
)
# DeepSeek's 400 when a tool-calling turn's reasoning is not passed back (DS-THINK).
_DEEPSEEK_REASONING = "The `reasoning_content` in the thinking mode must be passed back to the API."


@dataclass
class ToolCall:
    """A call the scripted model makes: ``arguments`` as a dict (sent as JSON) or as text
    (sent exactly, malformed or not)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None  # None: call_<position>_fake

    @property
    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)


def _call_id(call: ToolCall, position: int) -> str:
    return call.id if call.id is not None else f"call_{position}_fake"


def tool_call_message(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """The ``tool_calls`` of a whole (non-streamed) assistant message."""
    return [
        {
            "id": _call_id(call, i),
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments_text},
        }
        for i, call in enumerate(calls)
    ]


def _utf16_pieces(text: str, size: int) -> list[str]:
    """``text`` cut every ``size`` UTF-16 code units, as a JavaScript gateway cuts strings:
    a character outside the BMP can be split into its two surrogate halves."""
    units = text.encode("utf-16-le", "surrogatepass")
    step = 2 * size
    return [
        units[i : i + step].decode("utf-16-le", "surrogatepass") for i in range(0, len(units), step)
    ]


def _fragments(call: ToolCall, position: int, style: str, size: int) -> list[dict[str, Any]]:
    call_id = _call_id(call, position)
    index: int | None = {"shared_index": 0, "no_index": None}.get(style, position)
    first: dict[str, Any] = {"index": index, "id": call_id, "type": "function"}
    first["function"] = {"name": call.name, "arguments": ""}
    text = call.arguments_text
    pieces = _utf16_pieces(text, size) if size > 0 else ([text] if text else [])
    later = []
    for piece in pieces:
        fragment: dict[str, Any] = {"index": index, "function": {"arguments": piece}}
        if style == "repeat_ids":
            fragment = {"index": index, "id": call_id, "type": "function"}
            fragment["function"] = {"name": call.name, "arguments": piece}
        later.append(fragment)
    return [
        {k: v for k, v in fragment.items() if not (k == "index" and style == "no_index")}
        for fragment in (first, *later)
    ]


def tool_call_deltas(calls: Sequence[ToolCall], style: str, size: int) -> Iterator[dict[str, Any]]:
    """The ``delta`` objects that stream ``calls`` (one ``tool_calls`` item each)."""
    per_call = [_fragments(call, i, style, size) for i, call in enumerate(calls)]
    if style == "interleaved":
        ordered = [
            f for step in range(max(map(len, per_call), default=0)) for f in _at(per_call, step)
        ]
    else:
        ordered = [f for fragments in per_call for f in fragments]
    for fragment in ordered:
        yield {"role": "assistant", "content": None, "tool_calls": [fragment]}


def _at(per_call: list[list[dict[str, Any]]], step: int) -> list[dict[str, Any]]:
    return [fragments[step] for fragments in per_call if step < len(fragments)]


def _turns(messages: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """The messages after each user message, up to the next one."""
    turn: list[dict[str, Any]] = []
    for message in messages:
        if message.get("role") in ("user", "system"):
            if turn:
                yield turn
            turn = []
        else:
            turn.append(message)
    if turn:
        yield turn


def _ids(message: dict[str, Any]) -> list[str]:
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return []
    return [str(c.get("id")) for c in calls if isinstance(c, dict)]


def _check_results(messages: Sequence[dict[str, Any]]) -> str | None:
    open_ids: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_ids or not isinstance(message.get("content"), str | list):
                return _STRAY_RESULT
            open_ids.remove(call_id)
            continue
        if open_ids:
            return _MISSING_RESULT.format(", ".join(open_ids))
        if role == "assistant":
            open_ids = _ids(message)
    return _MISSING_RESULT.format(", ".join(open_ids)) if open_ids else None


def check_tool_history(messages: Sequence[dict[str, Any]], model: str) -> str | None:
    """Why a real server would refuse these messages (400), or None.

    Every tool call needs a tool message (and no tool message may answer nothing); for
    DeepSeek models, every assistant message of a turn that called tools must carry its
    reasoning back (``reasoning_details`` and the reasoning text).
    """
    problem = _check_results(messages)
    if problem is not None or not model.startswith("deepseek/"):
        return problem
    for turn in _turns(messages):
        if not any(_ids(m) for m in turn):
            continue
        for message in turn:
            if message.get("role") != "assistant":
                continue
            has_text = isinstance(message.get("reasoning"), str) or isinstance(
                message.get("reasoning_content"), str
            )
            if not (has_text and isinstance(message.get("reasoning_details"), list)):
                return _DEEPSEEK_REASONING
    return None
