"""Several models' answers side by side: a live column per model, one static table at the end.

Live (a kernel with ipywidgets): an ``HBox`` of columns, each with the model's name, a
status line (waiting, thinking, an error), its own reasoning panel (the same
:class:`~ormagic.render.reasoning.ReasoningPanel` as a single answer) and its answer,
streamed as HTML widgets the way a single answer streams outputs: finished Markdown blocks
become widgets of their own and only the open block is redrawn
(:class:`~ormagic.render.live.LiveBlocks`). All columns share one
:class:`~ormagic.render.live.Pacer`, and a due redraw draws every column that changed, so
three models cost the browser no more redraws than one answer (docs/jupyter-notes.md: the
browser is the bottleneck) and a slow column is never starved by a fast one.

When every stream has ended, the widgets are closed and replaced by one output that reads
well without a kernel: an HTML table with a column per model (reasoning as a
``<details>`` block, the answer, its status and footer), neutralised Markdown and plain
text as stacked sections, each with its model's name. Everything the models wrote, and
every model or provider name, is escaped. The output carries the engine's metadata, and
keeps a display id so that ``%chat pick`` can mark another answer as the one kept.

In a terminal, each model's section is printed when its stream ends.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..events import Event, Finished, KeepAlive, ReasoningDelta, StreamFailed, TextDelta, Usage
from ..view import FinalSummary
from .live import (
    Bundle,
    Clock,
    LiveBlocks,
    Pacer,
    Publisher,
    answer_split,
    pre_html,
    reasoning_split,
)
from .markdown import escape_text, neutralise_markdown, render_html
from .reasoning import ReasoningPanel, close_widget, reasoning_title

__all__ = ["ColumnAnswer", "ColumnsView", "TerminalColumnsView", "side_by_side_bundle"]

_QUIET = "color:#888;font-size:0.85em;margin:0.2em 0"
_HEAD = "text-align:left;vertical-align:bottom;border-bottom:1px solid #ccc;padding:0.3em 0.6em"
_CELL = "text-align:left;vertical-align:top;padding:0.3em 0.6em;overflow-wrap:anywhere"
_KEPT = "✓ kept"
_KEPT_TIP = "The conversation continues from this answer; %chat pick N changes that."
_MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]()#+.!|~-])")
_MIN_WIDGET_PIECE = 1500


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


def _header(number: int, model: str) -> str:
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
    quiet = "".join(f'<div style="{_QUIET}">{escape_text(line)}</div>' for line in lines)
    return f'{_reasoning_html(column)}<div style="overflow-x:auto">{answer}</div>{quiet}'


def _head_html(number: int, column: ColumnAnswer, kept: bool) -> str:
    mark = ""
    if kept:
        mark = f' <span title="{escape_text(_KEPT_TIP)}" style="color:#2a7a2a">{_KEPT}</span>'
    return f'<th style="{_HEAD}">{escape_text(_header(number, column.model))}{mark}</th>'


def _markdown_inline(text: str) -> str:
    """Network text made literal on one Markdown line."""
    return _MARKDOWN_ACTIVE.sub(r"\\\1", escape_text(" ".join(text.split())))


def _section_markdown(number: int, column: ColumnAnswer, kept: bool) -> str:
    head = f"**{_markdown_inline(_header(number, column.model))}**"
    blocks = [f"{head} · {_KEPT}" if kept else head]
    reasoning = _reasoning_html(column)
    if reasoning:
        blocks.append(reasoning)
    if column.answer:
        blocks.append(neutralise_markdown(column.answer))
    lines = [line for line in (column.status, column.footer) if line]
    blocks.append("  \n".join(f"<sub>{escape_text(line)}</sub>" for line in lines))
    return "\n\n".join(blocks)


def _section_text(number: int, column: ColumnAnswer, kept: bool) -> str:
    title = _header(number, column.model) + (" (kept)" if kept else "")
    parts = [f"── {title} ──"]
    if column.answer:
        parts.append(column.answer)
    parts += [line for line in (column.status, column.footer) if line]
    return "\n".join(parts)


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


# -- the live columns -------------------------------------------------------------------


class _ColumnPublisher:
    """A :class:`Publisher` whose outputs are widgets in one column: pieces of the answer
    are HTML widgets appended to its answer box, a widget (the reasoning panel) goes
    above the answer."""

    def __init__(self, widgets: Any, column: Any, answer_box: Any) -> None:
        self._widgets = widgets
        self._column = column
        self._answer_box = answer_box
        self._made: dict[str, Any] = {}

    def display(
        self,
        bundle: Bundle,
        *,
        display_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        widget = self._widgets.HTML(value=bundle["text/html"])
        self._made[display_id or uuid.uuid4().hex] = widget
        self._answer_box.children = (*self._answer_box.children, widget)

    def display_widget(self, widget: Any) -> None:
        children = list(self._column.children)
        children.insert(children.index(self._answer_box), widget)
        self._column.children = tuple(children)

    def update(self, bundle: Bundle, *, display_id: str) -> None:
        self._made[display_id].value = bundle["text/html"]

    def clear(self) -> None:  # pragma: no cover - LiveBlocks never clears
        raise NotImplementedError

    def close(self) -> None:
        for widget in self._made.values():
            close_widget(widget)


class _SharedModels:
    """ipywidgets, but every HTML widget and plain box shares one ``Layout`` (and every
    HTML widget one ``HTMLStyle``): each widget otherwise brings models of its own, over
    1.5 KB of messages per widget, most of the traffic of a column (measured in
    ``bench/bench_side_by_side.py``). Everything else is ipywidgets' own."""

    def __init__(self, widgets: Any) -> None:
        self._widgets = widgets
        self._layout = widgets.Layout()
        style = getattr(getattr(widgets, "widgets", None), "widget_string", None)
        style_class = getattr(style, "HTMLStyle", None)
        self._style = style_class() if style_class is not None else None

    def HTML(self, **kwargs: Any) -> Any:
        kwargs.setdefault("layout", self._layout)
        if self._style is not None:
            kwargs.setdefault("style", self._style)
        return self._widgets.HTML(**kwargs)

    def VBox(self, **kwargs: Any) -> Any:
        kwargs.setdefault("layout", self._layout)
        return self._widgets.VBox(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._widgets, name)


def _quiet_html(text: str) -> str:
    return f'<div style="{_QUIET}">{escape_text(text)}</div>' if text else ""


class _Column:
    """One model's live column."""

    def __init__(
        self,
        number: int,
        model: str,
        widgets: Any,
        layout: Any,
        clock: Clock,
        *,
        show: bool,
        plain: bool,
    ) -> None:
        self.model = model
        self._widgets = widgets
        self._clock = clock
        self._show = show
        self.head = widgets.HTML(value=f"<b>{escape_text(_header(number, model))}</b>")
        self.status = widgets.HTML(value=_quiet_html(f"⋯ Waiting for {model}"))
        self.answer_box = widgets.VBox(children=())
        self.box = widgets.VBox(children=(self.head, self.status, self.answer_box), layout=layout)
        self.publisher = _ColumnPublisher(widgets, self.box, self.answer_box)
        self.answer = LiveBlocks(
            self.publisher,
            pre_html if plain else _render_live,
            _larger_pieces(reasoning_split if plain else answer_split),
        )
        self.panel: ReasoningPanel | None = None
        self.answer_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.encrypted = 0
        self.reasoning_started: float | None = None
        self.reasoning_seconds: float | None = None
        self.drawn = False  # its first words were shown
        self._noted = 0.0

    # -- events

    def text(self, text: str) -> int:
        if not text:
            return 0
        if not self.answer_parts:
            self._end_reasoning()
            self._set_status("")
        self.answer_parts.append(text)
        self.answer.append(text)
        return len(text)

    def reasoning(self, event: ReasoningDelta) -> int:
        if self.reasoning_started is None:
            self.reasoning_started = self._clock()
        if event.encrypted:
            self.encrypted += 1
        text = event.text or ("[encrypted reasoning]\n" if event.encrypted else "")
        if not text:
            return 0
        self.reasoning_parts.append(event.text)
        if not self._show:
            self.note_thinking()
            return 0
        if self.panel is None:
            self._set_status("")
            self.panel = ReasoningPanel(
                self._widgets, self.publisher, self._clock, self.reasoning_started
            )
        self.panel.blocks.append(text)
        return len(text)

    def usage(self, event: Usage) -> None:
        if self.panel is not None:
            self._flush_reasoning()
            self.panel.collapse(event.reasoning_tokens)

    def failed(self, event: StreamFailed) -> None:
        self.flush()
        self._set_status(f"⚠ {event.error}")

    def note_thinking(self) -> None:
        """While the reasoning is hidden, say how long the model has been thinking."""
        if self.reasoning_started is None or self.answer_parts or self._show:
            return
        now = self._clock()
        if now - self._noted >= 1.0:
            self._noted = now
            seconds = now - self.reasoning_started
            self._set_status(f"⋯ thinking ({seconds:.0f} s; reasoning hidden)")

    # -- drawing

    @property
    def pending(self) -> int:
        if self.answer_parts:
            return self.answer.pending
        return self.panel.blocks.pending if self.panel is not None else 0

    def redraw(self) -> None:
        self.drawn = True
        if self.answer_parts and self.answer.pending:
            self.answer.redraw()
        elif not self.answer_parts:
            self._flush_reasoning()

    def flush(self) -> None:
        if self.answer.pending:
            self.answer.redraw()
        self._flush_reasoning()

    def _flush_reasoning(self) -> None:
        if self.panel is not None and self.panel.blocks.pending:
            self.panel.blocks.redraw()

    def _end_reasoning(self) -> None:
        if self.reasoning_started is not None and self.reasoning_seconds is None:
            self.reasoning_seconds = self._clock() - self.reasoning_started
        if self.panel is not None:
            self._flush_reasoning()
            ended = None
            if self.reasoning_started is not None and self.reasoning_seconds is not None:
                ended = self.reasoning_started + self.reasoning_seconds
            self.panel.collapse(ended=ended)

    def _set_status(self, text: str) -> None:
        html = _quiet_html(text)
        if self.status.value != html:
            self.status.value = html

    # -- the end

    def final(self, summary: FinalSummary) -> ColumnAnswer:
        self._end_reasoning()
        reasoning = "".join(self.reasoning_parts)
        if self.encrypted:
            note = (
                f"[{self.encrypted} encrypted reasoning block(s): "
                "not readable, kept in the conversation]"
            )
            reasoning = f"{reasoning}\n\n{note}" if reasoning else note
        shown = self._show and bool(self.reasoning_parts or self.encrypted)
        return ColumnAnswer(
            model=self.model,
            answer="".join(self.answer_parts),
            reasoning=reasoning,
            reasoning_title=reasoning_title(self.reasoning_seconds, summary.reasoning_tokens)
            if shown
            else None,
            status=summary.status,
            footer=summary.footer,
        )

    def close(self) -> None:
        if self.panel is not None:
            self.panel.close()
        self.publisher.close()
        for widget in (self.head, self.status, self.answer_box, self.box):
            close_widget(widget)


def _larger_pieces(split: Callable[[str], tuple[str, str]]) -> Callable[[str], tuple[str, str]]:
    """Finished blocks become a widget of their own only from :data:`_MIN_WIDGET_PIECE`
    characters: a new widget costs more messages than a new output does."""

    def cut(text: str) -> tuple[str, str]:
        head, tail = split(text)
        return (head, tail) if len(head) >= _MIN_WIDGET_PIECE else ("", text)

    return cut


def _render_live(text: str) -> str:
    # as for a single answer: no syntax colours while streaming (the open block is
    # re-sent on every redraw); the final output is coloured
    return render_html(text, highlight=False)


class ColumnsView:
    """Live side-by-side view for a notebook (implements ``SideBySideView``)."""

    def __init__(
        self,
        publisher: Publisher,
        *,
        clock: Clock = time.monotonic,
        show_reasoning: bool = True,
        widgets: Any = None,
        pacer: Pacer | None = None,
        plain: bool = False,
    ) -> None:
        self._publisher = publisher
        self._clock = clock
        self._show = show_reasoning
        self._widgets = widgets
        self._pacer = pacer or Pacer(clock)
        self._plain = plain
        self._columns: list[_Column] = []
        self._row: Any = None
        self.redraws = 0
        self.final_display_id: str | None = None
        self.answers: list[ColumnAnswer] = []

    def start(self, models: Sequence[str]) -> None:
        """Show a column per model, each waiting for its first words."""
        widgets = _SharedModels(self._require_widgets())
        layout = widgets.Layout(flex="1 1 0%", min_width="0", padding="0 0.6em")
        self._columns = [
            _Column(i + 1, m, widgets, layout, self._clock, show=self._show, plain=self._plain)
            for i, m in enumerate(models)
        ]
        layout = widgets.Layout(width="100%", align_items="flex-start")
        self._row = widgets.HBox(children=[c.box for c in self._columns], layout=layout)
        self._publisher.display_widget(self._row)

    def _require_widgets(self) -> Any:
        if self._widgets is None:
            import ipywidgets

            self._widgets = ipywidgets
        return self._widgets

    def handle(self, column: int, event: Event) -> None:
        target = self._columns[column]
        if isinstance(event, TextDelta):
            self._pacer.received(target.text(event.text))
        elif isinstance(event, ReasoningDelta):
            self._pacer.received(target.reasoning(event))
        elif isinstance(event, Usage):
            target.usage(event)
        elif isinstance(event, KeepAlive):
            target.note_thinking()
        elif isinstance(event, Finished):
            target.flush()  # this column is done: draw its end now
        elif isinstance(event, StreamFailed):
            target.failed(event)
        else:  # pragma: no cover - the event set is closed
            raise TypeError(f"unknown event {event!r}")
        self._tick()

    def idle(self) -> None:
        for column in self._columns:
            column.note_thinking()
        self._tick()

    def _tick(self) -> None:
        """One shared budget: when a redraw is due, every column that changed is drawn.

        A column's first words are drawn as soon as they arrive, as for a single answer:
        at most one extra redraw per column.
        """
        fresh = [c for c in self._columns if c.pending and not c.drawn]
        for column in fresh:
            column.redraw()
        if fresh:
            self._pacer.drew()
            self.redraws += 1
        pending = sum(c.pending for c in self._columns)
        if not pending or not self._pacer.due(pending):
            return
        for column in self._columns:
            if column.pending:
                column.redraw()
        self._pacer.drew()
        self.redraws += 1

    def finish(
        self, summaries: Sequence[FinalSummary], chosen: int | None, metadata: Mapping[str, Any]
    ) -> None:
        """Replace the live columns by one static output that reads well when saved."""
        self.answers = [c.final(s) for c, s in zip(self._columns, summaries, strict=True)]
        self._publisher.clear()
        self.final_display_id = uuid.uuid4().hex
        self._publisher.display(
            self.final_bundle(chosen), display_id=self.final_display_id, metadata=metadata
        )
        self._close()  # after the output that replaces them, as for a single answer

    def final_bundle(self, chosen: int | None) -> dict[str, str]:
        """The final output with ``chosen`` marked as the answer kept (after finish)."""
        return side_by_side_bundle(self.answers, chosen, plain=self._plain)

    def abandon(self) -> None:
        """Nothing was asked after all: remove the columns (an error line follows)."""
        self._close()
        self._publisher.clear()

    def _close(self) -> None:
        for column in self._columns:
            column.close()
        if self._row is not None:
            close_widget(self._row)
            self._row = None


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
        parts = [f"\n── {_header(column + 1, self._models[column])} ──\n"]
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
        self._out.write(text)
        self._out.flush()
