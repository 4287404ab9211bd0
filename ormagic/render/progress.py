"""A batch's progress: an ipywidgets bar in a notebook, plain lines in a terminal.

Both show the same things (rows done of all, failed, in flight, rows per second, tokens,
cost so far, time left), redrawn at most a few times a second (tqdm's ``mininterval``),
the clock handed in so tests are deterministic. The batch also says two lines through
them: the estimate before it sends, the summary when it ends
(``1,000 rows · 12 failed · 412k in / 38k out · $0.068 · 41 s``). When the batch ends the
bar's output is replaced by the summary (``update_display``) and its widgets are closed,
so a saved notebook shows static text, never "Error displaying widget".
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any, Protocol, TextIO

from ..formatting import format_cost, format_seconds, format_short_count
from .escape import escape_text
from .live import Clock, Publisher
from .reasoning import close_widget

__all__ = ["NotebookProgress", "ProgressState", "TerminalProgress", "progress_text"]

_LINE_STYLE = "font-size:0.9em;color:#666;margin:0.2em 0"


class ProgressState(Protocol):
    """What the progress shows (the batch's running counts)."""

    @property
    def total(self) -> int: ...
    @property
    def to_send(self) -> int: ...
    @property
    def done(self) -> int: ...
    @property
    def cached(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def cost(self) -> float: ...
    @property
    def rate(self) -> float: ...
    @property
    def seconds_left(self) -> float | None: ...


def progress_text(state: ProgressState) -> str:
    """``412 / 1,000 rows · 3 failed · 8 in flight · 16.2 rows/s · 41k in / 4k out ·
    $0.0068 · ~36 s left`` (one line; parts that are zero are left out)."""
    finished = state.done + state.cached + state.failed
    parts = [f"{finished:,} / {state.total:,} rows"]
    if state.cached:
        parts.append(f"{state.cached:,} cached")
    if state.failed:
        parts.append(f"{state.failed:,} failed")
    parts.append(f"{state.in_flight} in flight")
    if state.rate:
        parts.append(f"{state.rate:.1f} rows/s")
    tokens_in = format_short_count(state.prompt_tokens)
    tokens_out = format_short_count(state.completion_tokens)
    parts.append(f"{tokens_in} in / {tokens_out} out")
    parts.append(format_cost(state.cost))
    left = state.seconds_left
    if left is not None:
        parts.append(f"~{format_seconds(left)} left")
    return " · ".join(parts)


_BAR_TRACK = "height:6px;max-width:24em;background:#e0e0e0;border-radius:3px;margin-top:0.3em"
_BAR_FILL = "height:100%;background:#2e7d32;border-radius:3px;"


def _line_bundle(line: str) -> dict[str, str]:
    return {
        "text/plain": line,
        "text/html": f'<div style="{_LINE_STYLE}">{escape_text(line)}</div>',
    }


def _finished_share(state: ProgressState) -> float:
    finished = state.done + state.cached + state.failed
    return min(finished / state.total, 1.0) if state.total else 1.0


def _lines_bundle(lines: list[str]) -> dict[str, str]:
    return {
        "text/plain": "\n".join(lines),
        "text/html": "".join(_line_bundle(line)["text/html"] for line in lines),
    }


def _done_bundle(notes: list[str], line: str, share: float | None) -> dict[str, str]:
    """The lines said while the bar was up, then a static bar filled to ``share`` (none
    when ``share`` is None), then ``line``: plain HTML, no widget."""
    bar = ""
    if share is not None:
        percent = f"{share * 100:.0f}%"
        bar = (
            f'<div class="ormagic-done-bar" title="{percent}" style="{_BAR_TRACK}">'
            f'<div style="{_BAR_FILL}width:{percent}"></div></div>'
        )
    above, below = _lines_bundle(notes), _line_bundle(line)
    text = "\n".join([*notes, line])
    return {"text/plain": text, "text/html": above["text/html"] + bar + below["text/html"]}


class NotebookProgress:
    """A progress bar with a one-line label; the lines as quiet static outputs."""

    def __init__(
        self,
        publisher: Publisher,
        *,
        bar: bool = True,
        clock: Clock = time.monotonic,
        min_interval: float = 0.2,
        widgets: Any = None,
    ) -> None:
        self._publisher = publisher
        self._bar = bar
        self._clock = clock
        self._min_interval = min_interval
        self._widgets = widgets
        self._progress: Any = None
        self._label: Any = None
        self._notes_view: Any = None
        self._box: Any = None
        # lines said once the bar is up (the estimate after a sample): shown above the bar,
        # in its box, so that they read in order, and kept above it when it is replaced
        self._notes: list[str] = []
        self._display_id = uuid.uuid4().hex
        # "sending" while the bar's display is on its way, "shown" once it returned: the
        # stop button can land in between, and then whether the frontend got it is unknown
        self._bar_state = "none"
        self._last: float | None = None
        self._shown = ""
        self.redraws = 0

    def say(self, line: str) -> None:
        if self._box is None:
            self._publisher.display(_line_bundle(line))
            return
        self._notes.append(line)
        notes = _lines_bundle(self._notes)["text/html"]
        with self._box.hold_sync():
            if self._notes_view is None:
                self._notes_view = self._require_widgets().HTML(value=notes)
                self._box.children = (self._notes_view, *self._box.children)
            else:
                self._notes_view.value = notes

    def update(self, state: ProgressState) -> None:
        """Redraw, unless the last redraw was less than ``min_interval`` ago."""
        if not self._bar:
            return
        now = self._clock()
        if self._last is not None and now - self._last < self._min_interval:
            return
        text = progress_text(state)
        if text == self._shown:
            return
        self._last, self._shown = now, text
        self._draw(state, text)

    def _draw(self, state: ProgressState, text: str) -> None:
        finished = state.done + state.cached + state.failed
        if self._box is None:
            widgets = self._require_widgets()
            self._progress = widgets.IntProgress(value=finished, min=0, max=max(state.total, 1))
            self._label = widgets.HTML(value=escape_text(text))
            self._box = widgets.VBox(children=[self._progress, self._label])
            bundle = {**self._box._repr_mimebundle_(), "text/plain": text}
            self._bar_state = "sending"
            self._publisher.display(bundle, display_id=self._display_id)
            self._bar_state = "shown"
        else:
            with self._box.hold_sync():
                self._progress.value = finished
                self._label.value = escape_text(text)
        self.redraws += 1

    def finish(self, state: ProgressState, summary: str) -> None:
        """The bar shows where the batch ended (100% when every row finished), then a
        static copy of it with the summary takes its place, so that the saved notebook
        shows text and no widget."""
        if self._box is not None:
            self._draw(state, progress_text(state))  # the final count, however paced
        self._replace_bar(summary, _finished_share(state))
        self._close_widgets()

    def close(self) -> None:
        """The batch ended without a summary: the last progress line stays, as text."""
        if self._bar_state != "none":
            self._replace_bar(self._shown)
        self._close_widgets()

    def _replace_bar(self, line: str, share: float | None = None) -> None:
        bundle = _done_bundle(self._notes, line, share)
        if self._bar_state != "none":
            self._publisher.update(bundle, display_id=self._display_id)
        if self._bar_state != "shown":  # no bar, or maybe none: say it (again)
            self._publisher.display(_done_bundle(self._notes, line, None))

    def _close_widgets(self) -> None:
        for widget in (self._notes_view, self._progress, self._label, self._box):
            if widget is not None:
                close_widget(widget)
        self._progress = self._label = self._notes_view = self._box = None

    def _require_widgets(self) -> Any:
        if self._widgets is None:
            import ipywidgets

            self._widgets = ipywidgets
        return self._widgets


class TerminalProgress:
    """Plain lines: the estimate, a progress line every few seconds, the summary."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        bar: bool = True,
        clock: Clock = time.monotonic,
        interval: float = 5.0,
    ) -> None:
        self._stream = stream
        self._bar = bar
        self._clock = clock
        self._interval = interval
        self._last = clock()

    def say(self, line: str) -> None:
        print(line, file=self._stream or sys.stderr, flush=True)

    def update(self, state: ProgressState) -> None:
        now = self._clock()
        if self._bar and now - self._last >= self._interval:
            self._last = now
            self.say(progress_text(state))

    def finish(self, state: ProgressState, summary: str) -> None:
        self.say(summary)

    def close(self) -> None:
        """Nothing stays open."""
