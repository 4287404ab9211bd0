"""Conversations held in the kernel: turns, and the messages sent to the model.

A :class:`Turn` is one question and what came back: one :class:`Response` per model asked
(several when models answer side by side), one of which (``chosen``) continues the
conversation. A response keeps the messages exactly as they go back to the model on the
next turn: the assistant message with ``reasoning`` and ``reasoning_details`` as received
(docs/openrouter-api.md §5), and, when the model called tools, each round's assistant
message and tool results in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..events import Usage

__all__ = [
    "Conversation",
    "ConversationStore",
    "Response",
    "RoundRecord",
    "Turn",
    "new_session_id",
    "sum_usage",
]


def new_session_id() -> str:
    """A fresh ``session_id``: OpenRouter keeps one conversation on one provider with it."""
    return f"ormagic-{uuid.uuid4().hex}"


@dataclass
class RoundRecord:
    """One request of an answer that called tools: its generation and what it cost.

    An interrupted round streams no usage; its cost is looked up later by its generation
    id (``%chat usage``), and the response's totals follow.
    """

    generation_id: str | None
    usage: Usage | None = None
    cost: float | None = None
    elapsed: float = 0.0


def sum_usage(usages: list[Usage | None]) -> Usage | None:
    """Token counts added up over rounds; None when any round's usage is unknown.

    Every round sends the whole conversation again, so prompt tokens add up too: that is
    what is billed. The cost is the sum when every round has one.
    """
    if not usages or any(u is None for u in usages):
        return None
    known = [u for u in usages if u is not None]
    if len(known) == 1:
        return known[0]
    costs = [u.cost for u in known]
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in known),
        completion_tokens=sum(u.completion_tokens for u in known),
        reasoning_tokens=sum(u.reasoning_tokens for u in known),
        cached_tokens=sum(u.cached_tokens for u in known),
        cost=sum(c for c in costs if c is not None) if None not in costs else None,
        raw={"rounds": [dict(u.raw) for u in known]},
    )


@dataclass
class Response:
    """One model's answer to a turn's question, and what it cost."""

    messages: list[dict[str, Any]]
    """The messages after the user's, as sent back: the final one is the answer."""
    model: str | None = None
    """The model that answered (a fallback may differ from the one asked for)."""
    requested_model: str | None = None
    provider: str | None = None
    generation_id: str | None = None
    usage: Usage | None = None
    cost: float | None = None
    elapsed: float = 0.0
    interrupted: bool = False
    error: str | None = None
    finish_reason: str | None = None
    rounds: list[RoundRecord] = field(default_factory=list)
    """The requests of an answer that called tools, each with its generation and cost;
    ``usage`` and ``cost`` are their totals."""

    def settle(self) -> None:
        """Set ``usage`` and ``cost`` from the rounds (after a round's cost was found)."""
        if self.rounds:
            self.usage = sum_usage([r.usage for r in self.rounds])
            costs = [r.cost for r in self.rounds]
            self.cost = sum(c for c in costs if c is not None) if None not in costs else None

    @property
    def final(self) -> dict[str, Any]:
        """The last assistant message (an empty one when there is none)."""
        assistant = [m for m in self.messages if m.get("role") == "assistant"]
        return assistant[-1] if assistant else {"role": "assistant", "content": ""}

    @property
    def text(self) -> str:
        """The answer's text."""
        content = self.final.get("content")
        return content if isinstance(content, str) else ""


@dataclass
class Turn:
    """One question (the user's message as sent) and the responses to it."""

    prompt: str
    user_message: dict[str, Any]
    responses: list[Response]
    cell_id: str | None = None
    chosen: int = 0

    @classmethod
    def single(
        cls,
        prompt: str,
        user_message: dict[str, Any],
        assistant_message: dict[str, Any],
        *,
        cell_id: str | None = None,
        **response: Any,
    ) -> Turn:
        """A turn with one response made of one assistant message."""
        return cls(prompt, user_message, [Response([assistant_message], **response)], cell_id)

    @property
    def response(self) -> Response:
        """The response that continues the conversation."""
        return self.responses[self.chosen]

    @property
    def assistant_message(self) -> dict[str, Any]:
        return self.response.final

    @property
    def answer(self) -> str:
        """The chosen response's answer text."""
        return self.response.text

    @property
    def model(self) -> str | None:
        return self.response.model

    @property
    def provider(self) -> str | None:
        return self.response.provider

    @property
    def generation_id(self) -> str | None:
        return self.response.generation_id

    @property
    def usage(self) -> Usage | None:
        return self.response.usage

    @property
    def cost(self) -> float | None:
        return self.response.cost

    @property
    def elapsed(self) -> float:
        return self.response.elapsed

    @property
    def interrupted(self) -> bool:
        return self.response.interrupted

    @property
    def error(self) -> str | None:
        return self.response.error

    def messages(self) -> list[dict[str, Any]]:
        """The user's message and the chosen response's messages, as sent next time."""
        return [self.user_message, *self.response.messages]


@dataclass
class Conversation:
    """A named conversation: an optional system prompt and its turns."""

    name: str = "default"
    system: str | None = None
    turns: list[Turn] = field(default_factory=list)
    session_id: str = field(default_factory=new_session_id)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The messages in OpenRouter's form, exactly as they are sent on the next turn."""
        return self.with_system(self.system, self.history())

    def history(self, before_cell: str | None = None) -> list[dict[str, Any]]:
        """The turns' messages, without the system prompt.

        When ``before_cell`` ran before, the history stops where that cell's turn stood:
        a re-run cell is asked again at its place in the conversation.
        """
        out: list[dict[str, Any]] = []
        for turn in self.turns:
            if before_cell is not None and turn.cell_id == before_cell:
                break
            out.extend(turn.messages())
        return out

    @staticmethod
    def with_system(system: str | None, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` after a system message, when there is a system prompt."""
        return [{"role": "system", "content": system}, *messages] if system else messages

    def record(self, turn: Turn) -> None:
        """Add a turn; a turn from a re-run cell replaces that cell's earlier turn in place."""
        if turn.cell_id is not None:
            for i, old in enumerate(self.turns):
                if old.cell_id == turn.cell_id:
                    self.turns[i] = turn
                    return
        self.turns.append(turn)

    def __iter__(self) -> Iterator[Turn]:
        return iter(self.turns)

    def __len__(self) -> int:
        return len(self.turns)


class ConversationStore:
    """All conversations of a session, by name."""

    def __init__(self) -> None:
        self._conversations: dict[str, Conversation] = {}

    def get(self, name: str = "default") -> Conversation:
        """The conversation called ``name``, created empty if it does not exist."""
        if name not in self._conversations:
            self._conversations[name] = Conversation(name=name)
        return self._conversations[name]

    def peek(self, name: str) -> Conversation | None:
        """The conversation called ``name`` if it exists; nothing is created."""
        return self._conversations.get(name)

    def reset(self, name: str = "default") -> Conversation:
        """Forget the conversation ``name`` and start it afresh."""
        self._conversations[name] = Conversation(name=name)
        return self._conversations[name]

    def put(self, conversation: Conversation) -> None:
        """Store (or replace) a conversation under its name."""
        self._conversations[conversation.name] = conversation

    def names(self) -> list[str]:
        """Names of the conversations that exist."""
        return list(self._conversations)

    def __iter__(self) -> Iterator[Conversation]:
        return iter(self._conversations.values())
