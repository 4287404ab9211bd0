"""What ``ormagic.ask`` returns: an :class:`Answer`, plain data that shows itself safely."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..engine.engine import TurnResult
from ..engine.usage import footer_text
from ..events import ToolResult, Usage

__all__ = ["Answer"]


@dataclass(frozen=True)
class Answer:
    """A model's answer to one question, with what it cost.

    ``str(answer)`` is the text. In a notebook the answer shows as Markdown, made safe
    the way ``%%chat`` makes it (raw HTML inert, link schemes checked, images as links).
    """

    text: str
    reasoning: str
    model: str
    """The model that answered (a fallback may differ from ``requested_model``)."""
    provider: str | None
    generation_id: str | None
    usage: Usage | None
    cost: float | None
    """Dollars: OpenRouter's figure, else tokens times the model's listed prices."""
    finish_reason: str | None
    interrupted: bool
    error: str | None = None
    """What went wrong after the answer began (what arrived is in ``text``)."""
    requested_model: str = ""
    conversation: str = "default"
    elapsed: float = 0.0
    reasoning_details: tuple[Mapping[str, Any], ...] = ()
    tool_calls: tuple[ToolResult, ...] = ()
    """The tools the model called, each with what was sent back for it, in order."""

    @classmethod
    def from_result(cls, result: TurnResult) -> Answer:
        outcome = result.outcome
        message = outcome.message
        reasoning = message.get("reasoning")
        details = message.get("reasoning_details")
        return cls(
            text=outcome.text,
            reasoning=reasoning if isinstance(reasoning, str) else "",
            model=outcome.answered_by,
            provider=outcome.provider,
            generation_id=outcome.generation_id,
            usage=outcome.usage,
            cost=outcome.cost,
            finish_reason=outcome.finish_reason,
            interrupted=outcome.interrupted,
            error=str(outcome.failure) if outcome.failure is not None else None,
            requested_model=outcome.requested_model,
            conversation=result.prepared.conversation,
            elapsed=outcome.elapsed,
            reasoning_details=tuple(details) if isinstance(details, list) else (),
            tool_calls=tuple(outcome.calls),
        )

    @property
    def footer(self) -> str:
        """The line ``%%chat`` shows under an answer: model, provider, tokens, cost, time."""
        return footer_text(
            model=self.model,
            requested_model=self.requested_model,
            provider=self.provider,
            usage=self.usage,
            cost=self.cost,
            seconds=self.elapsed,
            tool_calls=len(self.tool_calls),
            interrupted=self.interrupted,
        )

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        # the model's text is untrusted and executed outputs are trusted: neutralise it
        from ..render.markdown import escape_markdown_text, neutralise_markdown

        # the error and the footer hold text from the server (messages, model and provider
        # names): literal text, in which no link, image or math can form
        lines = [neutralise_markdown(self.text)]
        if self.error:
            lines.append(f"⚠ {escape_markdown_text(self.error)}")
        lines.append(f"<sub>{escape_markdown_text(self.footer)}</sub>")
        return "\n\n".join(lines)
