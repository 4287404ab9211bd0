"""What a batch will cost, said before anything is sent, and the budget it must stay within.

Input tokens are estimated from the characters of each request (about four a token, as for
the notebook context); output tokens from ``max_tokens`` (an upper bound) or from the
answers to a small sample of rows. Prices are the model's listed ones (``GET /models``);
OpenRouter's batch endpoint typically bills half of them (docs/openrouter-tools.md §4,
D-BATCH), which the line shows too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..context.block import estimate_tokens
from ..events import Usage
from ..formatting import counted, format_cost, format_short_count

__all__ = ["DEFERRED_SHARE", "Estimate", "Prices", "request_tokens"]

DEFERRED_SHARE = 0.5
_MESSAGE_OVERHEAD = 4  # role and separators, per message


@dataclass(frozen=True)
class Prices:
    """USD per token (``pricing.prompt`` / ``pricing.completion``); None when not listed."""

    prompt: float | None = None
    completion: float | None = None

    @property
    def known(self) -> bool:
        return self.prompt is not None and self.completion is not None

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float | None:
        if self.prompt is None or self.completion is None:
            return None
        return prompt_tokens * self.prompt + completion_tokens * self.completion

    def charged(self, usage: Usage, share: float = 1.0) -> float | None:
        """What an answer cost: OpenRouter's own figure, else its tokens at these prices
        (times ``share``: ``DEFERRED_SHARE`` through the batch endpoint)."""
        if usage.cost is not None:
            return usage.cost
        listed = self.cost(usage.prompt_tokens, usage.completion_tokens)
        return None if listed is None else listed * share


def request_tokens(body: Mapping[str, Any]) -> int:
    """Estimated prompt tokens of one request body: its messages and its schema."""
    tokens = 0
    for message in body.get("messages", ()):
        content = message.get("content")
        tokens += _MESSAGE_OVERHEAD + (estimate_tokens(content) if isinstance(content, str) else 0)
    schema = body.get("response_format")
    if schema:
        tokens += estimate_tokens(str(schema))  # providers put the schema in the prompt
    return tokens


@dataclass(frozen=True)
class Estimate:
    """The estimate for the rows to send, and the budget they must fit in."""

    rows: int
    to_send: int  # distinct requests (rows that repeat a prompt share one)
    input_tokens: int
    output_per_row: float
    output_basis: str  # "max_tokens" or "a sample of N rows"
    prices: Prices
    model: str
    budget: float | None = None
    budget_note: str = ""
    deferred: bool = False
    cached: int = 0  # rows answered from the cache

    @property
    def output_tokens(self) -> int:
        return round(self.output_per_row * self.to_send)

    @property
    def cost(self) -> float | None:
        """At the model's listed prices."""
        return self.prices.cost(self.input_tokens, self.output_tokens)

    @property
    def payable(self) -> float | None:
        """What this run would pay: half the listed price through the batch endpoint."""
        cost = self.cost
        return None if cost is None else cost * (DEFERRED_SHARE if self.deferred else 1.0)

    @property
    def over_budget(self) -> bool:
        payable = self.payable
        return self.budget is not None and payable is not None and payable > self.budget

    def over_budget_for(self, requests: int) -> bool:
        """True when ``requests`` of these requests alone (an average share) are over budget."""
        payable = self.payable
        if self.budget is None or payable is None or not self.to_send:
            return False
        return payable * requests / self.to_send > self.budget

    def _output(self) -> str:
        per_row = round(self.output_per_row)
        if self.output_basis == "max_tokens":
            return f"≤ {per_row:,} a row: max_tokens"
        return f"~{per_row:,} a row from {self.output_basis}"

    def _costs(self) -> str:
        cost = self.cost
        if cost is None:
            return f"cost unknown (no listed price for {self.model})"
        listed = f"~{format_cost(cost)} at listed prices"
        deferred = f"~{format_cost(cost * DEFERRED_SHARE)} deferred"
        return f"{deferred} ({listed})" if self.deferred else f"{listed}, {deferred}"

    def line(self) -> str:
        """``1,000 rows · 800 to send (200 cached) · ~412k tokens in · ~38k out (…) · ~$0.068
        at listed prices, ~$0.034 deferred · budget $0.50`` (one line)."""
        rows = counted(self.rows, "row")
        repeats = self.rows - self.cached - self.to_send
        notes = [f"{self.cached:,} cached"] if self.cached else []
        if repeats > 0:
            notes.append(f"{repeats:,} repeated")
        sending = f"{self.to_send:,} to send" + (f" ({', '.join(notes)})" if notes else "")
        parts = [
            rows,
            sending,
            f"~{format_short_count(self.input_tokens)} tokens in",
            f"~{format_short_count(self.output_tokens)} out ({self._output()})",
            self._costs(),
            self._budget(),
        ]
        return " · ".join(parts)

    def _budget(self) -> str:
        if self.budget is None:
            return "no budget (max_cost unset)"
        note = f" ({self.budget_note})" if self.budget_note else ""
        return f"budget {format_cost(self.budget)}{note}"

    def refusal(self, sent_note: str = "") -> str:
        """The one line that says nothing (more) was sent, what it would cost, what to do."""
        rows = counted(self.to_send, "request")
        price = "through the batch endpoint" if self.deferred else "at listed prices"
        output = (
            f"up to {round(self.output_per_row):,} output tokens each"
            if self.output_basis == "max_tokens"
            else f"~{round(self.output_per_row):,} output tokens each, from {self.output_basis}"
        )
        return (
            f"Not sent{sent_note}: {rows} would cost about {format_cost(self.payable)} {price} "
            f"({output}), over the budget of {format_cost(self.budget)}. Raise it with "
            "max_cost=… (or %config ChatMagics.max_cost = …), or lower max_tokens."
        )
