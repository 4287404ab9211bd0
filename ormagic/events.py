"""Typed stream events: what the client yields and the renderer consumes.

The set is closed. A stream yields any number of ``TextDelta``, ``ReasoningDelta`` and
``KeepAlive`` events, at most one ``Usage``, and ends with exactly one terminal event:
``Finished`` (the server ended the stream) or ``StreamFailed`` (an error chunk, a dropped
connection or a protocol violation after the response began). Errors *before* the stream
begins are raised by the client instead (see ``_errors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import OrmagicError

__all__ = [
    "Event",
    "Finished",
    "KeepAlive",
    "ReasoningDelta",
    "StreamFailed",
    "TextDelta",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer text (``delta.content``)."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning.

    ``text`` is what a reader sees: the text of ``reasoning.text`` items, the summary of
    ``reasoning.summary`` items, or ``delta.reasoning`` when no details came with it.
    ``details`` holds the chunk's ``reasoning_details`` items exactly as received, so the
    assistant message can be sent back unchanged; ``reasoning.encrypted`` items carry no
    readable text but are kept here.
    """

    text: str
    details: tuple[Mapping[str, Any], ...] = ()

    @property
    def encrypted(self) -> bool:
        """True when this delta carries encrypted (unreadable) reasoning."""
        return any(d.get("type") == "reasoning.encrypted" for d in self.details)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts and cost from the stream's usage chunk (OpenRouter ``ChatUsage``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Finished:
    """The stream ended: after ``[DONE]`` or a clean EOF."""

    reason: str | None = None
    native_reason: str | None = None
    generation_id: str | None = None
    model: str | None = None
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The stream ended with an error after it had begun; what streamed before stays."""

    error: OrmagicError
    generation_id: str | None = None
    model: str | None = None
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """An SSE comment such as ``: OPENROUTER PROCESSING``: the server is still working."""

    comment: str = ""


Event = TextDelta | ReasoningDelta | Usage | Finished | StreamFailed | KeepAlive
