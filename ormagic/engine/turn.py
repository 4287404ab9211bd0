"""One model answering: stream a request, collect what happened, lose nothing.

Knows the client's event stream, not IPython nor any view. A keyboard interrupt (the
kernel's stop button is SIGINT, raised inside the socket read) leaves the client's
``with`` block, which closes the HTTP response at once: that is how OpenRouter learns to
stop generating and billing (docs/openrouter-api.md §4.1).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..client.message import MessageBuilder
from ..errors import OrmagicError
from ..events import Event, Finished, StreamFailed, ToolResult, Usage
from ..view import FinalSummary
from .conversation import Response, RoundRecord
from .usage import footer_text

if TYPE_CHECKING:
    from ..client.http import OpenRouterClient
    from ..client.request import ChatRequest

__all__ = ["Outcome", "iter_answer"]

Clock = Callable[[], float]


@dataclass
class Outcome:
    """What one model's stream produced; filled in while it streams."""

    requested_model: str
    message: dict[str, Any]
    usage: Usage | None = None
    finished: Finished | None = None
    failure: OrmagicError | None = None
    interrupted: bool = False
    elapsed: float = 0.0
    model: str | None = None
    provider: str | None = None
    generation_id: str | None = None
    cost: float | None = None  # usage.cost, or priced later from the model's listed prices
    # -- tool calling (engine/rounds.py): every round's messages, in order, as sent back
    messages: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[RoundRecord] = field(default_factory=list)
    calls: list[ToolResult] = field(default_factory=list)
    tool_status: str | None = None  # why the exchange ended early, for the user
    tools_note: str | None = None  # said once in the footer: the model cannot use tools

    @property
    def answered_by(self) -> str:
        """The model that answered (the one asked for when the stream never said)."""
        return self.model or self.requested_model

    @property
    def text(self) -> str:
        content = self.message.get("content")
        return content if isinstance(content, str) else ""

    @property
    def finish_reason(self) -> str | None:
        return self.finished.reason if self.finished else None

    @property
    def produced(self) -> bool:
        """True when any answer, reasoning or tool call arrived (the turn is worth recording)."""
        return len(self.messages) > 1 or bool(
            self.message.get("content")
            or self.message.get("reasoning")
            or self.message.get("reasoning_details")
            or self.message.get("tool_calls")
        )

    def status_line(self) -> str | None:
        """One line under the answer when the turn did not end normally."""
        if self.interrupted:
            return "⏹ Interrupted: the partial answer is kept in the conversation."
        if self.failure is not None:
            return f"⚠ {self.failure}"
        if self.tool_status is not None:
            return self.tool_status
        if self.finish_reason == "length":
            return "⚠ The answer hit the --max-tokens cap and is cut short; raise it for more."
        if self.finish_reason == "content_filter":
            return "⚠ The provider's content filter stopped the answer."
        return None

    def to_response(self) -> Response:
        """The conversation's record of this answer."""
        return Response(
            list(self.messages) or [self.message],
            model=self.answered_by,
            requested_model=self.requested_model,
            provider=self.provider,
            generation_id=self.generation_id,
            usage=self.usage,
            cost=self.cost,
            elapsed=self.elapsed,
            interrupted=self.interrupted,
            error=str(self.failure) if self.failure else None,
            finish_reason=self.finish_reason,
            rounds=self.rounds,  # shared: a cost found later for a round shows in both
        )

    def summary(self, metadata: Mapping[str, Any]) -> FinalSummary:
        """What the view shows under the answer, with the output's ``metadata``."""
        footer = footer_text(
            model=self.model,
            requested_model=self.requested_model,
            provider=self.provider,
            usage=self.usage,
            cost=self.cost,
            seconds=self.elapsed,
            tool_calls=len(self.calls),
            note=self.tools_note,
        )  # an interruption is said once, in the status line above the footer
        return FinalSummary(
            footer=footer,
            status=self.status_line(),
            metadata=metadata,
            reasoning_tokens=self.usage.reasoning_tokens if self.usage else None,
            tool_calls=tuple(self.calls),
        )

    def tool_metadata(self) -> dict[str, Any]:
        """The calls, for output metadata (results are in the conversation's messages)."""
        if not self.calls:
            return {}
        return {
            "rounds": len(self.rounds),
            "generation_ids": [r.generation_id for r in self.rounds],
            "tool_calls": [
                {
                    "id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "round": call.round,
                    "error": call.error,
                    "result_lines": call.lines,
                }
                for call in self.calls
            ],
        }


def iter_answer(
    client: OpenRouterClient,
    request: ChatRequest,
    outcome: Outcome,
    clock: Clock = time.monotonic,
    *,
    keep_reasoning: bool = False,
) -> Iterator[Event]:
    """Stream ``request``, yielding its events and filling ``outcome`` as they arrive.

    Errors raised before the stream begins (no key, HTTP errors, unreachable server)
    propagate: nothing was shown and nothing is to be recorded. An interrupt, in the
    socket read or while the caller handles an event (the generator is then closed),
    marks the outcome interrupted and keeps what arrived. ``keep_reasoning`` gives the
    message ``reasoning`` and ``reasoning_details`` even when none arrived (a later round
    of a tool-calling turn, see ``MessageBuilder.message``).
    """
    builder = MessageBuilder()
    start = clock()
    try:
        with client.stream_chat(request) as events:
            outcome.generation_id = events.generation_id
            for event in events:
                builder.add(event)
                _note(outcome, event)
                yield event
    except (KeyboardInterrupt, GeneratorExit) as stop:
        outcome.interrupted = True
        if isinstance(stop, GeneratorExit):
            raise
    finally:
        outcome.elapsed = clock() - start
        outcome.message = builder.message(keep_reasoning=keep_reasoning)


def _note(outcome: Outcome, event: Event) -> None:
    if isinstance(event, Usage):
        outcome.usage = event
    elif isinstance(event, Finished):
        outcome.finished = event
        _identify(outcome, event.model, event.provider, event.generation_id)
    elif isinstance(event, StreamFailed):
        outcome.failure = event.error
        _identify(outcome, event.model, event.provider, event.generation_id)


def _identify(
    outcome: Outcome, model: str | None, provider: str | None, generation_id: str | None
) -> None:
    outcome.model = model
    outcome.provider = provider
    outcome.generation_id = generation_id or outcome.generation_id
