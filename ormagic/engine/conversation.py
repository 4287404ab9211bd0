"""Conversations held in the kernel: turns, and the messages sent to the model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..events import Usage

__all__ = ["Conversation", "ConversationStore", "Turn"]


@dataclass
class Turn:
    """One exchange: the user's message as sent and the assistant's message as received."""

    prompt: str
    user_message: dict[str, Any]
    assistant_message: dict[str, Any]
    cell_id: str | None = None
    model: str | None = None
    provider: str | None = None
    generation_id: str | None = None
    usage: Usage | None = None
    cost: float | None = None
    elapsed: float = 0.0
    interrupted: bool = False
    error: str | None = None

    @property
    def answer(self) -> str:
        """The assistant's answer text."""
        content = self.assistant_message.get("content")
        return content if isinstance(content, str) else ""


@dataclass
class Conversation:
    """A named conversation: an optional system prompt and its turns."""

    name: str = "default"
    system: str | None = None
    turns: list[Turn] = field(default_factory=list)
    session_id: str = field(default_factory=lambda: f"ormagic-{uuid.uuid4().hex}")

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The messages in OpenRouter's form, exactly as they are sent on the next turn."""
        out: list[dict[str, Any]] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        for turn in self.turns:
            out.append(turn.user_message)
            out.append(turn.assistant_message)
        return out

    def request_messages(
        self, user_message: Mapping[str, Any], cell_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Messages for a new turn: the history plus the new user message.

        When ``cell_id`` ran before, the history stops where that cell's turn stood: the
        re-run cell is asked again at its place in the conversation.
        """
        out: list[dict[str, Any]] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        for turn in self.turns:
            if cell_id is not None and turn.cell_id == cell_id:
                break
            out.append(turn.user_message)
            out.append(turn.assistant_message)
        out.append(dict(user_message))
        return out

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
    """All conversations of a kernel session, by name."""

    def __init__(self) -> None:
        self._conversations: dict[str, Conversation] = {}

    def get(self, name: str = "default") -> Conversation:
        """The conversation called ``name``, created empty if it does not exist."""
        if name not in self._conversations:
            self._conversations[name] = Conversation(name=name)
        return self._conversations[name]

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
