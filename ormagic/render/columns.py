"""Several models' answers side by side, live: a column per model while they stream.

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
well without a kernel (``render/compared.py``), which carries the engine's metadata and
keeps a display id, so that ``%chat pick`` can mark another answer as the one kept.
Everything the models wrote, and every model name, is escaped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..events import Event, Finished, KeepAlive, ReasoningDelta, StreamFailed, TextDelta, Usage
from ..view import FinalSummary
from .compared import ColumnAnswer, header, quiet_html, side_by_side_bundle
from .escape import escape_text
from .live import (
    Clock,
    LiveBlocks,
    Pacer,
    Publisher,
    answer_split,
    pre_html,
    reasoning_split,
)
from .reasoning import BoxPublisher, ReasoningPanel, close_widget, reasoning_title
from .views import render_live

__all__ = ["ColumnsView"]

_MIN_WIDGET_PIECE = 1500


def _prose(html: str) -> str:
    """A piece of a column's answer, at the line height of prose: an HTML widget's own is
    its 28 px row height, which double-spaces a paragraph."""
    return f'<div style="line-height:1.5">{html}</div>'


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
        self.head = widgets.HTML(value=f"<b>{escape_text(header(number, model))}</b>")
        self.status = widgets.HTML(value=quiet_html(f"⋯ Waiting for {model}"))
        self.answer_box = widgets.VBox(children=())
        self.box = widgets.VBox(children=(self.head, self.status, self.answer_box), layout=layout)
        self.publisher = BoxPublisher(
            self.answer_box,
            lambda html: widgets.HTML(value=html),
            parent=self.box,
            wrap=_prose,
        )
        self.answer = LiveBlocks(
            self.publisher,
            pre_html if plain else render_live,
            _larger_pieces(reasoning_split if plain else answer_split),
        )
        self.panel: ReasoningPanel | None = None
        self.answer_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.encrypted = 0
        self.reasoning_started: float | None = None
        self.reasoning_seconds: float | None = None
        self.drawn = False  # its first words (of reasoning or answer) were shown
        self.answer_drawn = False  # its answer's first words were shown
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

    @property
    def fresh(self) -> bool:
        """Its first reasoning, or its answer's first words, wait to be drawn."""
        if self.answer_parts:
            return not self.answer_drawn and self.answer.pending > 0
        return not self.drawn and self.pending > 0

    def redraw(self) -> None:
        self.drawn = True
        if self.answer_parts and self.answer.pending:
            self.answer_drawn = True
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
        html = quiet_html(text)
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
        column = widgets.Layout(flex="1 1 0%", min_width="0", padding="0 0.6em")
        self._columns = [
            _Column(i + 1, m, widgets, column, self._clock, show=self._show, plain=self._plain)
            for i, m in enumerate(models)
        ]
        row = widgets.Layout(width="100%", align_items="flex-start")
        self._row = widgets.HBox(children=[c.box for c in self._columns], layout=row)
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

        A column's first reasoning and its answer's first words are drawn as soon as they
        arrive, as for a single answer: at most two extra redraws per column.
        """
        fresh = [c for c in self._columns if c.fresh]
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
