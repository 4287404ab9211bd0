"""One chat completion request: what the engine builds and the client sends (docs §2).

Its own module so that building a request does not import httpx: the engine is imported
when ``%load_ext ormagic`` runs, and the HTTP stack only when the first question is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .settings import DEFAULT_MAX_TOKENS, DEFAULT_MODEL

__all__ = ["ChatRequest"]


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request (OpenRouter ``ChatRequest``, §2)."""

    messages: Sequence[Mapping[str, Any]]
    model: str = DEFAULT_MODEL
    max_tokens: int = DEFAULT_MAX_TOKENS
    reasoning: Mapping[str, Any] | None = None
    temperature: float | None = None
    provider: Mapping[str, Any] | None = None
    models: Sequence[str] = ()
    session_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # tool calling (docs/openrouter-tools.md §1.1): sent on every request of an exchange
    tools: Sequence[Mapping[str, Any]] = ()
    tool_choice: str | Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON body: always streaming and capped; unset optional fields are omitted.

        ``max_tokens`` is always sent: without it OpenRouter's credit pre-check assumes the
        model's whole output budget and may answer 402 (§2). ``extra`` is merged last.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(message) for message in self.messages],
            "stream": True,
            "max_tokens": self.max_tokens,
        }
        if self.reasoning:
            body["reasoning"] = dict(self.reasoning)
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.provider:
            body["provider"] = dict(self.provider)
        if self.models:
            body["models"] = list(self.models)
        if self.session_id:
            body["session_id"] = self.session_id
        if self.tools:
            body["tools"] = [dict(tool) for tool in self.tools]
        if self.tool_choice is not None:
            body["tool_choice"] = self.tool_choice
        body.update(self.extra)
        return body
