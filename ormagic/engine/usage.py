"""What the session has spent: the footer under each answer and the per-session ledger.

Pure engine: no IPython. Model and provider names come from the network, so the HTML
table escapes every value.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

from ..events import Usage
from ..formatting import counted, format_cost, format_count, format_seconds
from .conversation import Response, Turn
from .tables import html_table, one_line, text_table

__all__ = ["UsageLedger", "UsageTotals", "footer_text"]

_SEP = " · "
_COLUMNS = ("turns", "in", "out", "reasoning", "cached", "cost", "time")


@dataclass
class UsageTotals:
    """Sums over some turns. A turn whose cost is unknown counts in ``unknown_cost_turns``."""

    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    unknown_cost_turns: int = 0
    seconds: float = 0.0

    def add(self, usage: Usage | None, cost: float | None, seconds: float) -> None:
        """Count one turn."""
        self.turns += 1
        self.seconds += seconds
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            self.reasoning_tokens += usage.reasoning_tokens
            self.cached_tokens += usage.cached_tokens
        if cost is None:
            self.unknown_cost_turns += 1
        else:
            self.cost += cost

    @property
    def cost_text(self) -> str:
        """``"$0.0000042"``; ``"$0.0000042 + ?"`` when some turns' cost is unknown."""
        if self.unknown_cost_turns == 0:
            return format_cost(self.cost)
        if self.unknown_cost_turns == self.turns:
            return format_cost(None)
        return f"{format_cost(self.cost)} + ?"


@dataclass(frozen=True)
class _Entry:
    conversation: str
    response: Response  # shared with the conversation: a cost found later shows in both

    @property
    def model(self) -> str:
        return self.response.model or "?"

    def add_to(self, totals: UsageTotals) -> None:
        totals.add(self.response.usage, self.response.cost, self.response.elapsed)


class UsageLedger:
    """Every answer of the session, summed in total, per conversation and per model.

    It keeps answers of conversations that were reset and turns that a re-run replaced:
    they were paid for.
    """

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def add(
        self,
        *,
        conversation: str,
        model: str,
        usage: Usage | None,
        cost: float | None,
        seconds: float,
        generation_id: str | None = None,
    ) -> None:
        """Record an answer; an interrupted one has no usage and (usually) no cost."""
        response = Response(
            [], model=model, usage=usage, cost=cost, elapsed=seconds, generation_id=generation_id
        )
        self._entries.append(_Entry(conversation, response))

    def add_turn(self, conversation: str, turn: Turn) -> None:
        """Record every response of a turn (side-by-side answers were all paid for)."""
        self._entries.extend(_Entry(conversation, response) for response in turn.responses)

    def unresolved(self) -> list[str]:
        """Generation ids of answers whose cost is unknown (interrupted or dropped streams).

        For an answer that called tools, those of its rounds whose cost is unknown.
        """
        found = []
        for entry in self._entries:
            response = entry.response
            if response.rounds:
                found += [
                    r.generation_id for r in response.rounds if r.cost is None and r.generation_id
                ]
            elif response.cost is None and response.generation_id:
                found.append(response.generation_id)
        return found

    def resolve(self, generation_id: str, usage: Usage, cost: float) -> None:
        """Fill in an answer's (or one round's) usage and cost, looked up after the fact."""
        for entry in self._entries:
            response = entry.response
            rounds = [r for r in response.rounds if r.generation_id == generation_id]
            for round_ in rounds:
                round_.usage, round_.cost = usage, cost
            if rounds:
                response.settle()
            elif not response.rounds and response.generation_id == generation_id:
                response.usage, response.cost = usage, cost

    @property
    def total(self) -> UsageTotals:
        """Sums over the whole session."""
        totals = UsageTotals()
        for entry in self._entries:
            entry.add_to(totals)
        return totals

    def by_conversation(self) -> dict[str, UsageTotals]:
        """Sums per conversation name, in the order conversations were first used."""
        return self._group(lambda e: e.conversation)

    def by_model(self) -> dict[str, UsageTotals]:
        """Sums per model (the model that answered), in order of first use."""
        return self._group(lambda e: e.model)

    @property
    def session_cost(self) -> float:
        """Known spending of the session in USD (what ``max_cost`` is checked against)."""
        return self.total.cost

    def _group(self, key: Callable[[_Entry], str]) -> dict[str, UsageTotals]:
        groups: dict[str, UsageTotals] = {}
        for entry in self._entries:
            entry.add_to(groups.setdefault(key(entry), UsageTotals()))
        return groups

    def table_text(self) -> str:
        """Per conversation, per model, then a total line; columns aligned."""
        if not self._entries:
            return "No chats yet in this session."
        sections = [
            _text_table("conversation", self.by_conversation()),
            _text_table("model", self.by_model()),
            f"total: {_total_line(self.total)}",
        ]
        return "\n\n".join(sections)

    def table_html(self) -> str:
        """The same as :meth:`table_text` as HTML, every value escaped."""
        if not self._entries:
            return "<p>No chats yet in this session.</p>"
        return (
            _html_table("conversation", self.by_conversation())
            + _html_table("model", self.by_model())
            + f"<p><b>total:</b> {html.escape(_total_line(self.total))}</p>"
        )


def _cells(totals: UsageTotals) -> tuple[str, ...]:
    return (
        format_count(totals.turns),
        format_count(totals.prompt_tokens),
        format_count(totals.completion_tokens),
        format_count(totals.reasoning_tokens),
        format_count(totals.cached_tokens),
        totals.cost_text,
        format_seconds(totals.seconds),
    )


def _rows(groups: dict[str, UsageTotals]) -> list[tuple[str, ...]]:
    return [(one_line(name), *_cells(totals)) for name, totals in groups.items()]


def _text_table(first: str, groups: dict[str, UsageTotals]) -> str:
    return text_table((first, *_COLUMNS), _rows(groups), right=_COLUMNS)


def _html_table(first: str, groups: dict[str, UsageTotals]) -> str:
    return html_table((first, *_COLUMNS), _rows(groups), right=_COLUMNS)


def _total_line(totals: UsageTotals) -> str:
    turns = counted(totals.turns, "turn")
    parts = [turns, _tokens_text(totals), format_cost(totals.cost)]
    if totals.unknown_cost_turns:
        n = totals.unknown_cost_turns
        parts[-1] += f" (+ {counted(n, 'turn')} of unknown cost)"
    parts.append(format_seconds(totals.seconds))
    return _SEP.join(parts)


def _tokens_text(counts: Usage | UsageTotals) -> str:
    """``12 in / 9 out (6 reasoning)``, then ``· 4 cached`` when the cache was hit."""
    text = f"{format_count(counts.prompt_tokens)} in / {format_count(counts.completion_tokens)} out"
    if counts.reasoning_tokens:
        text += f" ({format_count(counts.reasoning_tokens)} reasoning)"
    if counts.cached_tokens:
        text += f"{_SEP}{format_count(counts.cached_tokens)} cached"
    return text


def _who(model: str | None, requested_model: str | None, provider: str | None) -> str:
    """Who answered. A fallback model is flagged: it may be pricier than the one asked for
    (OpenRouter's ``models`` fallbacks, docs D-FB, answer under the fallback's name)."""
    if model and requested_model and model != requested_model:
        text = f"⚠ answered by {model} (fallback; asked for {requested_model})"
    else:
        text = model or requested_model or "unknown model"
    return f"{text} via {provider}" if provider else text


def footer_text(
    *,
    model: str | None,
    requested_model: str | None,
    provider: str | None,
    usage: Usage | None,
    cost: float | None,
    seconds: float,
    tool_calls: int = 0,
    note: str | None = None,
    interrupted: bool = False,
) -> str:
    """The quiet line under an answer::

        deepseek/deepseek-v4-flash via DeepSeek · 12 in / 9 out (6 reasoning) · $0.0000042
        · 1.3 s · 6.9 tok/s · 2 tool calls

    (one line). Without usage (an interrupted stream sends none, docs §4.3) the tokens
    and cost give way to ``usage unavailable``; a cost found later is still shown.
    ``note`` says why the model had no tools; ``interrupted`` ends the line with that
    word (``%%chat`` says it in a status line instead).
    """
    parts = [_who(model, requested_model, provider)]
    if usage is None:
        parts.append("usage unavailable")
        if cost is not None:
            parts.append(format_cost(cost))
    else:
        parts += [_tokens_text(usage), format_cost(cost)]
    parts.append(format_seconds(seconds))
    if usage is not None and seconds > 0:
        parts.append(f"{usage.completion_tokens / seconds:.1f} tok/s")
    if tool_calls:
        parts.append(counted(tool_calls, "tool call"))
    if note:
        parts.append(note)
    if interrupted:
        parts.append("interrupted")
    return _SEP.join(parts)
