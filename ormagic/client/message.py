"""The assistant message to store and send back on the next turn, built from stream events.

Reasoning is kept so it can be passed back unmodified (docs/openrouter-api.md §5
"Preserving Reasoning", §8: DeepSeek needs it after tool turns). ``reasoning_details`` are
accumulated the way OpenRouter's AI SDK provider does (OR-AISDK ``src/chat/index.ts``):
consecutive ``reasoning.text`` items with the same ``index`` merge into one item; every
other item is kept unchanged, in order.

Tool calls are assembled from their fragments by a :class:`ToolCallAssembler`. A message
that calls tools goes back with ``content`` null when the model wrote no text, and always
with ``reasoning`` and ``reasoning_details`` (``""`` and ``[]`` when none arrived):
DeepSeek V4, the default model, rejects the next request when an assistant message of a
tool-calling turn lacks them (docs/openrouter-tools.md §1.5).

Pieces are collected in lists and joined when read, so adding a delta costs O(1) however
long the answer grows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..events import Event, ReasoningDelta, TextDelta, ToolCallDelta
from .toolcalls import AssembledCall, ToolCallAssembler

__all__ = ["MessageBuilder"]

_TEXT_TYPE = "reasoning.text"


def _joined(parts: list[str]) -> str:
    """Join ``parts`` and keep the result as the single part, so rereading is cheap."""
    if len(parts) > 1:
        parts[:] = ["".join(parts)]
    return parts[0] if parts else ""


def _piece(item: Mapping[str, Any]) -> str:
    text = item.get("text")
    return text if isinstance(text, str) else ""


class _TextRun:
    """Consecutive ``reasoning.text`` items with one ``index``, merged into one item."""

    __slots__ = ("_first", "_has_text", "_parts", "index")

    def __init__(self, item: Mapping[str, Any]) -> None:
        self._first = dict(item)
        self._parts = [_piece(item)]
        self._has_text = "text" in item
        self.index = item.get("index")

    def extend(self, item: Mapping[str, Any]) -> None:
        self._parts.append(_piece(item))
        self._has_text = self._has_text or "text" in item
        # A signature often arrives last, in a delta of its own (§5): keep the first
        # non-empty signature and format; every other key comes from the first item.
        for key in ("signature", "format"):
            if not self._first.get(key) and item.get(key):
                self._first[key] = item[key]

    def to_dict(self) -> dict[str, Any]:
        merged = dict(self._first)
        if self._has_text:
            merged["text"] = _joined(self._parts)
        return merged


class MessageBuilder:
    """Accumulates text, reasoning and tool-call deltas into an assistant message."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._details: list[_TextRun | dict[str, Any]] = []
        self._tool_calls = ToolCallAssembler()

    def add(self, event: Event) -> None:
        """Take one event; anything but a text, reasoning or tool-call delta is ignored."""
        if isinstance(event, ToolCallDelta):
            self._tool_calls.add(event)
        elif isinstance(event, TextDelta):
            if event.text:
                self._content.append(event.text)
        elif isinstance(event, ReasoningDelta):
            if event.text:
                self._reasoning.append(event.text)
            for item in event.details:
                self._add_detail(item)

    def _add_detail(self, item: Mapping[str, Any]) -> None:
        if item.get("type") != _TEXT_TYPE:
            self._details.append(dict(item))
            return
        last = self._details[-1] if self._details else None
        if isinstance(last, _TextRun) and last.index == item.get("index"):
            last.extend(item)
        else:
            self._details.append(_TextRun(item))

    @property
    def content(self) -> str:
        """The answer text so far."""
        return _joined(self._content)

    @property
    def reasoning(self) -> str:
        """All readable reasoning text so far."""
        return _joined(self._reasoning)

    @property
    def reasoning_details(self) -> list[dict[str, Any]]:
        """The accumulated ``reasoning_details`` items (fresh dicts)."""
        return [d.to_dict() if isinstance(d, _TextRun) else dict(d) for d in self._details]

    @property
    def tool_calls(self) -> list[AssembledCall]:
        """The tool calls the model asked for (see :class:`ToolCallAssembler`)."""
        return self._tool_calls.calls()

    def message(self, *, keep_reasoning: bool = False) -> dict[str, Any]:
        """``{"role": "assistant", "content": ...}`` plus reasoning when any arrived.

        With tool calls (or ``keep_reasoning``, for the other messages of a tool-calling
        turn) ``reasoning`` and ``reasoning_details`` are always there.
        """
        calls = self.tool_calls
        keep = keep_reasoning or bool(calls)
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if calls:
            message["content"] = self.content or None
        if self._reasoning or keep:
            message["reasoning"] = self.reasoning
        if self._details or keep:
            message["reasoning_details"] = self.reasoning_details
        if calls:
            message["tool_calls"] = [call.to_message() for call in calls]
        return message
