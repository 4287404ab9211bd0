"""What a side-by-side cell leaves: one output that reads well without a kernel, and the
same answers as text sections in a terminal.

The output is an HTML table with a column per model (its reasoning as a ``<details>``
block, its answer, its status and footer), with neutralised Markdown and plain text as
stacked sections, each headed with its model's name; the answer that continues the
conversation is marked ``✓ kept``. Everything the models wrote, and every model or
provider name, is escaped.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..events import Event, Finished, ReasoningDelta, StreamFailed, TextDelta
from ..formatting import escape_markdown_text, inert_pre, printable
from ..view import FinalSummary
from .live import pre_html
from .markdown import escape_text, neutralise_markdown, render_html

__all__ = ["ColumnAnswer", "TerminalColumnsView", "header", "quiet_html", "side_by_side_bundle"]

_QUIET = "color:#888;font-size:0.85em;margin:0.2em 0"
_HEAD = "text-align:left;vertical-align:bottom;border-bottom:1px solid #ccc;padding:0.3em 0.6em"
_CELL = "text-align:left;vertical-align:top;padding:0.3em 0.6em;overflow-wrap:anywhere"
_KEPT = "✓ kept"
_KEPT_TIP = "The conversation continues from this answer; %chat pick N changes that."


@dataclass(frozen=True)
class ColumnAnswer:
    """What one column shows once its stream ended."""

    model: str
    answer: str
    reasoning: str
    reasoning_title: str | None  # None: no reasoning to show
    status: str | None
    footer: str


# -- final output -----------------------------------------------------------------------


def quiet_html(text: str) -> str:
    """A grey line of escaped text (a status or a footer); nothing for no text."""
    return f'<div style="{_QUIET}">{escape_text(text)}</div>' if text else ""


def header(number: int, model: str) -> str:
    return f"[{number}] {model}"


def _reasoning_html(column: ColumnAnswer) -> str:
    if column.reasoning_title is None:
        return ""
    summary = escape_text(column.reasoning_title)
    return f"<details><summary>{summary}</summary>{pre_html(column.reasoning)}</details>"


def _cell_html(column: ColumnAnswer, plain: bool) -> str:
    answer = ""
    if column.answer:
        answer = pre_html(column.answer) if plain else render_html(column.answer)
    lines = [line for line in (column.status, column.footer) if line]
    quiet = "".join(quiet_html(line) for line in lines)
    return f'{_reasoning_html(column)}<div style="overflow-x:auto">{answer}</div>{quiet}'


def _head_html(number: int, column: ColumnAnswer, kept: bool) -> str:
    mark = ""
    if kept:
        mark = f' <span title="{escape_text(_KEPT_TIP)}" style="color:#2a7a2a">{_KEPT}</span>'
    return f'<th style="{_HEAD}">{escape_text(header(number, column.model))}{mark}</th>'


def _section_markdown(number: int, column: ColumnAnswer, kept: bool) -> str:
    head = f"**{escape_markdown_text(header(number, column.model))}**"
    blocks = [f"{head} · {_KEPT}" if kept else head]
    if column.reasoning_title is not None:  # one line: no blank line ends the HTML block
        summary = escape_markdown_text(column.reasoning_title)
        blocks.append(
            f"<details><summary>{summary}</summary>{inert_pre(column.reasoning)}</details>"
        )
    if column.answer:
        blocks.append(neutralise_markdown(column.answer))
    lines = [line for line in (column.status, column.footer) if line]
    # status and footer quote the server (an error message, a provider's name)
    blocks.append("  \n".join(f"<sub>{escape_markdown_text(line)}</sub>" for line in lines))
    return "\n\n".join(blocks)


def _section_text(number: int, column: ColumnAnswer, kept: bool) -> str:
    title = header(number, column.model) + (" (kept)" if kept else "")
    parts = [f"── {title} ──"]
    if column.answer:
        parts.append(column.answer)
    parts += [line for line in (column.status, column.footer) if line]
    return printable("\n".join(parts))  # model text and names: shown, never obeyed


def side_by_side_bundle(
    columns: Sequence[ColumnAnswer], chosen: int | None, *, plain: bool = False
) -> dict[str, str]:
    """The final output: a table with a column per model (HTML), stacked sections
    (Markdown and plain text); the answer that continues the conversation is marked."""
    width = f"{100 / max(len(columns), 1):.4g}%"
    heads = "".join(_head_html(i + 1, c, i == chosen) for i, c in enumerate(columns))
    cells = "".join(
        f'<td style="{_CELL};width:{width}">{_cell_html(c, plain)}</td>' for c in columns
    )
    html = (
        '<table style="width:100%;table-layout:fixed;border-collapse:collapse">'
        f"<thead><tr>{heads}</tr></thead>"
        f'<tbody><tr style="background:transparent">{cells}</tr></tbody></table>'
    )
    bundle = {"text/html": html}
    if not plain:
        sections = (_section_markdown(i + 1, c, i == chosen) for i, c in enumerate(columns))
        bundle["text/markdown"] = "\n\n---\n\n".join(sections)
    bundle["text/plain"] = "\n\n".join(
        _section_text(i + 1, c, i == chosen) for i, c in enumerate(columns)
    )
    return bundle


class TerminalColumnsView:
    """Plain text for terminal IPython: each model's section once its stream ended."""

    def __init__(self, out: TextIO | None = None, *, show_reasoning: bool = True) -> None:
        self._out = out or sys.stdout
        self._show = show_reasoning
        self._models: list[str] = []
        self._answers: list[list[str]] = []
        self._reasoning: list[list[str]] = []
        self._printed: set[int] = set()

    def start(self, models: Sequence[str]) -> None:
        self._models = list(models)
        self._answers = [[] for _ in models]
        self._reasoning = [[] for _ in models]
        self._write(f"⋯ Asking {', '.join(models)} side by side\n")

    def handle(self, column: int, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._answers[column].append(event.text)
        elif isinstance(event, ReasoningDelta):
            self._reasoning[column].append(event.text)
        elif isinstance(event, Finished | StreamFailed):
            self._section(column)  # its status (an error) comes with the footers

    def idle(self) -> None:
        """Nothing to redraw in a terminal."""

    def _section(self, column: int) -> None:
        if column in self._printed:
            return
        self._printed.add(column)
        parts = [f"\n── {header(column + 1, self._models[column])} ──\n"]
        reasoning = "".join(self._reasoning[column])
        if self._show and reasoning:
            parts.append(f"Thinking…\n{reasoning}\n\n")
        parts.append("".join(self._answers[column]) + "\n")
        self._write("".join(parts))

    def finish(
        self, summaries: Sequence[FinalSummary], chosen: int | None, metadata: Mapping[str, Any]
    ) -> None:
        for column in range(len(self._models)):
            self._section(column)  # those interrupted before they ended
        lines = [""]
        for number, summary in enumerate(summaries, 1):
            lines += [f"[{number}] {line}" for line in (summary.status, summary.footer) if line]
        if chosen is not None:
            lines.append(
                f"The conversation continues from [{chosen + 1}] {self._models[chosen]} "
                "(%chat pick N to change)."
            )
        self._write("\n".join(lines) + "\n")

    def abandon(self) -> None:
        """Nothing was shown but a line."""

    def _write(self, text: str) -> None:
        self._out.write(printable(text))  # model text and names: shown, never obeyed
        self._out.flush()
