"""One turn: stream a request into a view and collect what happened, losing nothing.

Knows the client's event stream and the view's interface, not IPython. A keyboard interrupt
(the kernel's stop button is SIGINT, raised inside the socket read) leaves the client's
``with`` block, which closes the HTTP response at once: that is how OpenRouter learns to
stop generating and billing (docs/openrouter-api.md §4.1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._client import ChatRequest, OpenRouterClient
from ._errors import OrmagicError
from ._events import Event, Finished, StreamFailed, Usage
from ._message import MessageBuilder
from ._render import View

__all__ = ["TurnOutcome", "run_turn"]


@dataclass
class TurnOutcome:
    """What a streamed turn produced."""

    message: dict[str, Any]
    usage: Usage | None = None
    finished: Finished | None = None
    failure: OrmagicError | None = None
    interrupted: bool = False
    elapsed: float = 0.0
    model: str | None = None
    provider: str | None = None
    generation_id: str | None = None

    @property
    def produced(self) -> bool:
        """True when any answer or reasoning arrived (the turn is worth recording)."""
        return bool(
            self.message.get("content")
            or self.message.get("reasoning")
            or self.message.get("reasoning_details")
        )


def run_turn(
    client: OpenRouterClient,
    request: ChatRequest,
    view: View,
    clock: Callable[[], float] = time.monotonic,
) -> TurnOutcome:
    """Stream ``request`` into ``view``.

    Errors raised before the stream begins (no key, HTTP errors, unreachable server)
    propagate unchanged: nothing was shown and nothing is to be recorded.
    """
    builder = MessageBuilder()
    outcome = TurnOutcome(message={})
    start = clock()
    try:
        with client.stream_chat(request) as events:
            for event in events:
                builder.add(event)
                view.handle(event)
                _note(outcome, event)
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        outcome.elapsed = clock() - start
        outcome.message = builder.message()
    return outcome


def _note(outcome: TurnOutcome, event: Event) -> None:
    if isinstance(event, Usage):
        outcome.usage = event
    elif isinstance(event, Finished):
        outcome.finished = event
        _identify(outcome, event.model, event.provider, event.generation_id)
    elif isinstance(event, StreamFailed):
        outcome.failure = event.error
        _identify(outcome, event.model, event.provider, event.generation_id)


def _identify(
    outcome: TurnOutcome, model: str | None, provider: str | None, generation_id: str | None
) -> None:
    outcome.model = model
    outcome.provider = provider
    outcome.generation_id = generation_id
