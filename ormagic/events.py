"""Typed stream events: what the client yields and the renderer consumes.

The set is closed. A stream yields any number of ``TextDelta``, ``ReasoningDelta``,
``ToolCallDelta`` and ``KeepAlive`` events, at most one ``Usage``, and ends with exactly one
terminal event: ``Finished`` (the server ended the stream) or ``StreamFailed`` (an error
chunk, a dropped connection or a protocol violation after the response began). Errors
*before* the stream begins are raised by the client instead (see ``_errors``).

When the model calls tools, the engine strings several streams (rounds) together: after a
round's terminal event come one ``ToolResult`` per call it asked for, then ``ToolRound``
and the next round's stream.
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
    "ToolCallDelta",
    "ToolCallKeys",
    "ToolResult",
    "ToolRound",
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


# -- tool calling (docs/openrouter-tools.md) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call the model is writing (one item of ``delta.tool_calls``).

    The first fragment of a call usually carries ``id`` and ``name``, later ones a piece of
    ``arguments`` (a JSON text, split anywhere). Fields are as received: some providers
    repeat ``id`` and ``name`` in every fragment, omit ``index`` or reuse it. Which call a
    fragment belongs to is :class:`ToolCallKeys`' rule; assembling calls from fragments is
    the client's ``ToolCallAssembler``'s job.
    """

    index: int | None
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class ToolCallKeys:
    """Which call each :class:`ToolCallDelta` of one round belongs to.

    One rule for every reader of the fragments (the client assembling calls, a view
    showing a line per call), so they never count calls differently:

    - a fragment with an ``index`` continues the call on that index, except that a new
      ``id`` on an index whose call already has a name and an id starts a new call (some
      backends give parallel calls one shared index);
    - a fragment without ``index`` continues the last call, or starts one when it has an
      ``id``;
    - repeating the ``id`` and ``name`` in every fragment starts nothing.
    """

    __slots__ = ("_calls", "_latest", "order")

    def __init__(self) -> None:
        self.order: list[object] = []  # the calls' keys, in the order they began
        self._latest: dict[object, object] = {}  # index -> the call it now continues
        self._calls: dict[object, tuple[str | None, bool]] = {}  # key -> (id, named)

    def add(self, delta: ToolCallDelta) -> tuple[object, bool]:
        """(the key of the call ``delta`` belongs to, True when it is that call's first name).

        The second item is what a view needs: the moment a line for the call can say which
        tool it calls.
        """
        index: object = delta.index
        if index is None:
            index = self.order[-1] if self.order and not delta.id else len(self.order)
        key = self._latest.get(index, index)
        known = self._calls.get(key)
        if known is not None and delta.id and known[0] and delta.id != known[0] and known[1]:
            key, known = ("extra", len(self.order)), None  # a shared index: a new call
        if known is None:
            known = (None, False)
            self.order.append(key)
        self._latest[index] = key
        call_id, named = known
        self._calls[key] = (delta.id or call_id, named or bool(delta.name))
        return key, bool(delta.name) and not named


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One tool call and what was sent back to the model for it (a ``role: "tool"`` message).

    ``error`` is True when the call was not run or failed: the result is then one line
    starting with ``Error:`` that the model can act on. ``arguments`` are the model's,
    as written (untrusted text).
    """

    call_id: str
    name: str
    arguments: str
    result: str
    error: bool = False
    round: int = 1

    @property
    def lines(self) -> int:
        """Lines in the result (what the compact call line reports)."""
        return self.result.count("\n") + 1 if self.result else 0


@dataclass(frozen=True, slots=True)
class ToolRound:
    """The results went back: the next request of the exchange (round ``number``) begins.

    ``final`` is True for the last request after the round limit (``tool_choice: "none"``);
    ``note`` says why, for the user.
    """

    number: int
    final: bool = False
    note: str | None = None


Event = (
    TextDelta
    | ReasoningDelta
    | ToolCallDelta
    | Usage
    | Finished
    | StreamFailed
    | KeepAlive
    | ToolResult
    | ToolRound
)
