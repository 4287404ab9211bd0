"""Events -> what the user sees: a live, batched notebook view and a plain terminal view.

The renderer knows nothing of HTTP. It consumes the typed events of ``_events`` and talks
to Jupyter only through a :class:`Publisher` (display, update, clear) and ipywidgets, both
handed in, with the clock, so tests are deterministic.

Live view (notebook): the reasoning streams into an ipywidgets ``Accordion``; the answer
streams as HTML rendered by ``_markdown.render_html`` (model text is untrusted: raw HTML
never passes). Finished Markdown blocks become outputs of their own and only the open block
is redrawn, at a pace that keeps display traffic within a few times the answer's size
(docs/jupyter-notes.md: the browser, not the kernel, is the bottleneck; jupyter_server drops
IOPub beyond 1,000 msg/s). When the turn ends, the cell's outputs are replaced by static
bundles that read well without a kernel: a ``<details>`` block for the reasoning, the answer
as ``text/html`` + ``text/markdown`` + ``text/plain``, and a footer line.
"""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from ._blocks import split_blocks
from ._events import (
    Event,
    Finished,
    KeepAlive,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    Usage,
)
from ._format import format_count, format_seconds
from ._markdown import escape_text, neutralise_markdown, render_html

__all__ = [
    "FinalSummary",
    "JupyterPublisher",
    "NotebookView",
    "Pacer",
    "Publisher",
    "TerminalView",
    "View",
    "reasoning_title",
]

Bundle = Mapping[str, Any]
Clock = Callable[[], float]

# A piece of finished answer becomes its own output only when it is at least this large
# and at least this share of what is already committed: this bounds the number of live
# outputs (JupyterLab hides a cell's outputs beyond 50) to a few dozen for any length.
_MIN_PIECE_CHARS = 400
_MIN_PIECE_SHARE = 0.15
# An open code fence longer than this is cut at a line end and re-opened, so a redraw never
# re-sends more than about this much (the fence is merged again in the final output).
_MAX_OPEN_FENCE_CHARS = 1500
_REASONING_CHUNK_CHARS = 1500
_FENCE_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})([^\n]*)\n")

_PRE_STYLE = "white-space:pre-wrap;margin:0;font-size:0.9em;line-height:1.35"
_FOOTER_STYLE = "color:#888;font-size:0.85em;margin-top:0.4em"


class Publisher(Protocol):
    """The display operations the notebook view needs (IPython's, or a recorder in tests)."""

    def display(
        self,
        bundle: Bundle,
        *,
        display_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None: ...

    def display_widget(self, widget: Any) -> None: ...

    def update(self, bundle: Bundle, *, display_id: str) -> None: ...

    def clear(self) -> None: ...


class JupyterPublisher:
    """:class:`Publisher` backed by ``IPython.display``."""

    def display(
        self,
        bundle: Bundle,
        *,
        display_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        from IPython.display import display

        display(dict(bundle), raw=True, display_id=display_id, metadata=dict(metadata or {}))

    def display_widget(self, widget: Any) -> None:
        from IPython.display import display

        display(widget)

    def update(self, bundle: Bundle, *, display_id: str) -> None:
        from IPython.display import update_display

        update_display(dict(bundle), raw=True, display_id=display_id)

    def clear(self) -> None:
        from IPython.display import clear_output

        clear_output(wait=True)


class Pacer:
    """Decides when a redraw is due.

    The first draw is immediate. After that the interval between redraws grows with the
    size of what a redraw re-sends, so that re-sent characters per second stay within
    ``traffic_factor`` times the rate at which the answer arrives, clamped between
    ``min_interval`` (at most 10 redraws a second) and ``max_interval``.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        min_interval: float = 0.1,
        max_interval: float = 1.5,
        traffic_factor: float = 3.0,
    ) -> None:
        self._clock = clock
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.traffic_factor = traffic_factor
        self._start = clock()
        self._received = 0
        self._last: float | None = None

    def received(self, chars: int) -> None:
        """Count characters that arrived."""
        self._received += chars

    def due(self, resend_chars: int) -> bool:
        """True when a redraw that re-sends ``resend_chars`` characters may happen now."""
        now = self._clock()
        if self._last is None:
            return True
        rate = self._received / max(now - self._start, 1e-3)
        wanted = resend_chars / max(self.traffic_factor * rate, 1.0)
        interval = min(max(wanted, self.min_interval), self.max_interval)
        return now - self._last >= interval

    def drew(self) -> None:
        """Record that a redraw happened now."""
        self._last = self._clock()


@dataclass
class FinalSummary:
    """What the magic tells the view when the turn ends."""

    footer: str
    status: str | None = None  # e.g. "Interrupted: …" or an error line, shown under the answer
    metadata: Mapping[str, Any] = field(default_factory=dict)
    reasoning_tokens: int | None = None


def reasoning_title(seconds: float | None, tokens: int | None) -> str:
    """``"Thought for 4.2 s · 312 tokens"`` (parts omitted when unknown)."""
    if seconds is None:
        return "Thinking…"
    title = f"Thought for {format_seconds(seconds)}"
    if tokens:
        title += f" · {format_count(tokens)} tokens"
    return title


def _pre(text: str) -> str:
    return f'<pre style="{_PRE_STYLE}">{escape_text(text)}</pre>'


def _split_open_fence(tail: str) -> tuple[str, str]:
    """Cut an over-long open code fence at a line end: (closed piece, re-opened rest)."""
    match = _FENCE_OPEN.match(tail)
    if match is None or len(tail) <= _MAX_OPEN_FENCE_CHARS:
        return "", tail
    cut = tail.rfind("\n", match.end(), len(tail))
    if cut <= match.end():
        return "", tail
    indent, fence, _info = match.groups()
    body = tail[: cut + 1]
    if len(body) - match.end() < _MAX_OPEN_FENCE_CHARS // 2:
        return "", tail
    return body + indent + fence + "\n", match.group(0) + tail[cut + 1 :]


class _LiveBlocks:
    """Text that streams into a run of outputs: finished pieces stay, the open one is redrawn."""

    def __init__(
        self,
        publisher: Publisher,
        render: Callable[[str], str],
        split: Callable[[str], tuple[str, str]],
    ) -> None:
        self._publisher = publisher
        self._render = render
        self._split = split
        self._open = ""
        self._committed_chars = 0
        self._display_id: str | None = None
        self._dirty = False
        self.outputs = 0

    @property
    def pending(self) -> int:
        """Characters a redraw would re-send: 0 when nothing changed since the last one."""
        return len(self._open) if self._dirty else 0

    def append(self, text: str) -> None:
        self._open += text
        self._dirty = True

    def redraw(self) -> None:
        self._dirty = False
        head, tail = self._split(self._open)
        if head and len(head) >= max(_MIN_PIECE_CHARS, _MIN_PIECE_SHARE * self._committed_chars):
            self._show(head)
            self._display_id = None
            self._committed_chars += len(head)
            self._open = tail
        if self._open:
            self._show(self._open)

    def _show(self, text: str) -> None:
        bundle = {"text/html": self._render(text)}
        if self._display_id is None:
            self._display_id = uuid.uuid4().hex
            self._publisher.display(bundle, display_id=self._display_id)
            self.outputs += 1
        else:
            self._publisher.update(bundle, display_id=self._display_id)


def _answer_split(text: str) -> tuple[str, str]:
    head, tail = split_blocks(text)
    if head:
        return head, tail
    return _split_open_fence(tail)


def _reasoning_split(text: str) -> tuple[str, str]:
    if len(text) < _REASONING_CHUNK_CHARS:
        return "", text
    cut = text.rfind("\n\n", 0, len(text) - 1)
    if cut < _REASONING_CHUNK_CHARS // 2:
        cut = text.rfind("\n", 0, len(text) - 1)
    if cut <= 0:
        return "", text
    return text[: cut + 1], text[cut + 1 :]


class _WidgetPublisher:
    """A :class:`Publisher` whose outputs are HTML widgets appended to a VBox."""

    def __init__(self, box: Any, html_factory: Callable[[str], Any]) -> None:
        self._box = box
        self._make = html_factory
        self._widgets: dict[str, Any] = {}

    def display(
        self,
        bundle: Bundle,
        *,
        display_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        widget = self._make(bundle["text/html"])
        self._widgets[display_id or uuid.uuid4().hex] = widget
        self._box.children = (*self._box.children, widget)

    def display_widget(self, widget: Any) -> None:  # pragma: no cover - not used for a box
        raise NotImplementedError

    def update(self, bundle: Bundle, *, display_id: str) -> None:
        self._widgets[display_id].value = bundle["text/html"]

    def clear(self) -> None:  # pragma: no cover - not used for a box
        raise NotImplementedError

    def close(self) -> None:
        for widget in self._widgets.values():
            widget.close()


class _ReasoningPanel:
    """The collapsible reasoning widget: open while thinking, collapsed once answering."""

    def __init__(self, widgets: Any, publisher: Publisher, clock: Clock) -> None:
        self._clock = clock
        self._box = widgets.VBox(children=())
        self._accordion = widgets.Accordion(
            children=[self._box], titles=("Thinking…",), selected_index=0
        )
        self._inner = _WidgetPublisher(self._box, lambda value: widgets.HTML(value=value))
        self.blocks = _LiveBlocks(self._inner, _pre, _reasoning_split)
        self.started = clock()
        self.ended: float | None = None
        publisher.display_widget(self._accordion)

    def collapse(self, tokens: int | None = None) -> None:
        if self.ended is None:
            self.ended = self._clock()
        with self._accordion.hold_sync():
            self._accordion.titles = (reasoning_title(self.ended - self.started, tokens),)
            self._accordion.selected_index = None

    @property
    def title(self) -> str:
        return str(self._accordion.titles[0])

    @property
    def accordion(self) -> Any:
        return self._accordion

    def close(self) -> None:
        self._inner.close()
        self._box.close()
        self._accordion.close()


class View(Protocol):
    """What the magic drives: events in, one final summary at the end."""

    def handle(self, event: Event) -> None: ...

    def finish(self, summary: FinalSummary) -> None: ...

    @property
    def started(self) -> bool: ...


class NotebookView:
    """Live notebook view: reasoning widget, batched Markdown answer, static final outputs."""

    def __init__(
        self,
        publisher: Publisher | None = None,
        *,
        clock: Clock = time.monotonic,
        show_reasoning: bool = True,
        widgets: Any = None,
        pacer: Pacer | None = None,
        plain: bool = False,
    ) -> None:
        self._publisher: Publisher = publisher or JupyterPublisher()
        self._clock = clock
        self._show_reasoning = show_reasoning
        self._widgets = widgets
        self._pacer = pacer or Pacer(clock)
        self._plain = plain
        self._answer = _LiveBlocks(
            self._publisher,
            _pre if plain else render_html,
            _reasoning_split if plain else _answer_split,
        )
        self._panel: _ReasoningPanel | None = None
        self._answer_parts: list[str] = []
        self._reasoning_parts: list[str] = []
        self._encrypted = 0
        self._reasoning_started: float | None = None
        self._reasoning_seconds: float | None = None
        self._started = False
        self.redraws = 0

    @property
    def started(self) -> bool:
        """True once anything was shown (so a final summary is due)."""
        return self._started

    @property
    def answer(self) -> str:
        return "".join(self._answer_parts)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning_parts)

    @property
    def panel(self) -> Any:
        """The live reasoning Accordion, or None."""
        return self._panel.accordion if self._panel else None

    def handle(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._on_text(event.text)
        elif isinstance(event, ReasoningDelta):
            self._on_reasoning(event)
        elif isinstance(event, Usage):
            if self._panel is not None:
                self._flush_reasoning()
                self._panel.collapse(event.reasoning_tokens)
        elif isinstance(event, KeepAlive):
            self._tick()
        elif isinstance(event, (Finished, StreamFailed)):
            self._flush()
        else:  # pragma: no cover - the event set is closed
            raise TypeError(f"unknown event {event!r}")

    def _on_text(self, text: str) -> None:
        if not text:
            return
        if not self._answer_parts:
            self._end_reasoning()
        self._started = True
        self._answer_parts.append(text)
        self._answer.append(text)
        self._pacer.received(len(text))
        self._tick()

    def _on_reasoning(self, event: ReasoningDelta) -> None:
        if self._reasoning_started is None:
            self._reasoning_started = self._clock()
        if event.encrypted:
            self._encrypted += 1
        text = event.text or ("[encrypted reasoning]\n" if event.encrypted else "")
        if not text:
            return
        self._reasoning_parts.append(event.text)
        if not self._show_reasoning:
            return
        self._started = True
        if self._panel is None:
            self._panel = _ReasoningPanel(self._require_widgets(), self._publisher, self._clock)
        self._panel.blocks.append(text)
        self._pacer.received(len(text))
        self._tick()

    def _require_widgets(self) -> Any:
        if self._widgets is None:
            import ipywidgets

            self._widgets = ipywidgets
        return self._widgets

    def _end_reasoning(self) -> None:
        if self._reasoning_started is not None and self._reasoning_seconds is None:
            self._reasoning_seconds = self._clock() - self._reasoning_started
        if self._panel is not None:
            self._flush_reasoning()
            self._panel.collapse()

    def _flush_reasoning(self) -> None:
        if self._panel is not None and self._panel.blocks.pending:
            self._panel.blocks.redraw()

    def _tick(self) -> None:
        live = self._answer if self._answer_parts else (self._panel.blocks if self._panel else None)
        if live is None or not live.pending or not self._pacer.due(live.pending):
            return
        live.redraw()
        self._pacer.drew()
        self.redraws += 1

    def _flush(self) -> None:
        if self._answer.pending:
            self._answer.redraw()
        self._flush_reasoning()

    @property
    def live_outputs(self) -> int:
        """How many answer outputs the live view created."""
        return self._answer.outputs

    def finish(self, summary: FinalSummary) -> None:
        """Replace the live outputs with static bundles that read well when saved."""
        self._end_reasoning()
        self._publisher.clear()
        if self._show_reasoning and (self._reasoning_parts or self._encrypted):
            self._publisher.display(self._reasoning_bundle(summary.reasoning_tokens))
        answer = self.answer
        if answer:
            bundle = plain_bundle(answer) if self._plain else answer_bundle(answer)
            self._publisher.display(bundle, metadata=summary.metadata)
        self._publisher.display(footer_bundle(summary.footer, summary.status))
        if self._panel is not None:
            self._panel.close()
            self._panel = None

    def _reasoning_bundle(self, tokens: int | None) -> dict[str, str]:
        title = reasoning_title(self._reasoning_seconds, tokens)
        text = self.reasoning
        if self._encrypted:
            note = (
                f"[{self._encrypted} encrypted reasoning block(s): "
                "not readable, kept in the conversation]"
            )
            text = f"{text}\n\n{note}" if text else note
        html = f"<details><summary>{escape_text(title)}</summary>{_pre(text)}</details>"
        return {"text/html": html, "text/plain": f"[{title}]"}


def answer_bundle(answer: str) -> dict[str, str]:
    """The final answer: safe HTML for display, neutralised Markdown, raw text."""
    return {
        "text/html": render_html(answer),
        "text/markdown": neutralise_markdown(answer),
        "text/plain": answer,
    }


def plain_bundle(answer: str) -> dict[str, str]:
    """The final answer shown as plain text (``--format text``)."""
    return {"text/html": _pre(answer), "text/plain": answer}


def footer_bundle(footer: str, status: str | None) -> dict[str, str]:
    """The quiet line under the answer, with a status line (interrupted, error) if any."""
    lines = [line for line in (status, footer) if line]
    html = "".join(f'<div style="{_FOOTER_STYLE}">{escape_text(line)}</div>' for line in lines)
    return {"text/html": html, "text/plain": "\n".join(lines)}


class TerminalView:
    """Plain text for terminal IPython: deltas are written as they arrive."""

    def __init__(self, out: TextIO | None = None, *, show_reasoning: bool = True) -> None:
        self._out = out or sys.stdout
        self._show_reasoning = show_reasoning
        self._state = "idle"  # idle | reasoning | answer
        self._started = False
        self._answer_parts: list[str] = []

    @property
    def started(self) -> bool:
        return self._started

    @property
    def answer(self) -> str:
        return "".join(self._answer_parts)

    def handle(self, event: Event) -> None:
        if isinstance(event, TextDelta) and event.text:
            if self._state == "reasoning":
                self._write("\n\n")
            self._state = "answer"
            self._answer_parts.append(event.text)
            self._write(event.text)
        elif isinstance(event, ReasoningDelta) and self._show_reasoning:
            text = event.text or ("[encrypted reasoning]" if event.encrypted else "")
            if text and self._state == "idle":
                self._write("Thinking…\n")
                self._state = "reasoning"
            if text and self._state == "reasoning":
                self._write(text)

    def _write(self, text: str) -> None:
        self._started = True
        self._out.write(text)
        self._out.flush()

    def finish(self, summary: FinalSummary) -> None:
        self._write("\n")
        for line in (summary.status, summary.footer):
            if line:
                self._write(f"{line}\n")
