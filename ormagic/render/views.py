"""Events -> what the user sees: a live, batched notebook view and a plain terminal view.

The renderer knows nothing of HTTP. It consumes the typed events of ``ormagic.events`` and
implements ``ormagic.view.View``. It talks to Jupyter only through a :class:`Publisher`
(display, update, clear) and ipywidgets, both handed in, with the clock, so tests are
deterministic.

Live view (notebook): the reasoning streams into an ipywidgets ``Accordion``; the answer
streams as HTML rendered by ``markdown.render_html`` (model text is untrusted: raw HTML
never passes). Finished Markdown blocks become outputs of their own and only the open block
is redrawn, at a pace that keeps display traffic within a few times the answer's size
(docs/jupyter-notes.md: the browser, not the kernel, is the bottleneck; jupyter_server drops
IOPub beyond 1,000 msg/s). When the turn ends, the cell's outputs are replaced by static
bundles that read well without a kernel: a ``<details>`` block for the reasoning, the answer
as ``text/html`` + ``text/markdown`` + ``text/plain``, and a footer line.

When the model calls tools, each round streams below the previous one: its reasoning
panel, its text, then its calls (``render.toolcalls``), and the final output adds a
``<details>`` block listing every call.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any, TextIO

from ..events import (
    Event,
    Finished,
    KeepAlive,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    ToolCallDelta,
    ToolCallKeys,
    ToolResult,
    ToolRound,
    Usage,
)
from ..formatting import printable, tool_line
from ..view import FinalSummary
from .escape import escape_text
from .highlight import stylesheet
from .live import (
    MAX_LIVE_OUTPUTS,
    Clock,
    LiveBlocks,
    Pacer,
    Publisher,
    answer_split,
    pre_html,
    reasoning_split,
)
from .reasoning import ReasoningPanel, reasoning_title
from .toolcalls import ToolPanel, tools_bundle

__all__ = [
    "NotebookView",
    "TerminalView",
    "answer_bundle",
    "footer_bundle",
    "plain_bundle",
]

_FOOTER_STYLE = "color:#888;font-size:0.85em;margin-top:0.4em"


class _Waiting:
    """A quiet one-line output shown until the first words arrive, then handed over."""

    def __init__(self, publisher: Publisher, clock: Clock) -> None:
        self._publisher = publisher
        self._clock = clock
        self._id: str | None = None
        self._last = 0.0

    @property
    def shown(self) -> bool:
        return self._id is not None

    def show(self, text: str) -> None:
        self._id = uuid.uuid4().hex
        self._last = self._clock()
        self._publisher.display(_quiet_line(text), display_id=self._id)

    def note(self, text: str) -> None:
        """Update the line, at most once a second."""
        if self._id is not None and self._clock() - self._last >= 1.0:
            self._last = self._clock()
            self._publisher.update(_quiet_line(text), display_id=self._id)

    def hand_over(self) -> str | None:
        """The line's display id, for the answer's first output to take its place."""
        display_id, self._id = self._id, None
        return display_id

    def blank(self) -> None:
        """Empty the line (something else is shown below it now)."""
        if self._id is not None:
            self._publisher.update({"text/plain": ""}, display_id=self._id)
            self._id = None


def _quiet_line(text: str) -> dict[str, str]:
    return {
        "text/html": f'<div style="{_FOOTER_STYLE}">{escape_text(text)}</div>',
        "text/plain": printable(text),
    }


class NotebookView:
    """Live notebook view: reasoning widget, batched Markdown answer, static final outputs."""

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
        self._show_reasoning = show_reasoning
        self._widgets = widgets
        self._pacer = pacer or Pacer(clock)
        self._plain = plain
        self._answer = self._new_blocks()
        self._panel: ReasoningPanel | None = None
        self._answer_parts: list[str] = []  # this round's text
        self._earlier_text: list[str] = []  # text of earlier rounds of a tool exchange
        self._reasoning_parts: list[str] = []
        self._encrypted = 0
        self._reasoning_started: float | None = None
        self._reasoning_seconds: float | None = None
        self._started = False
        self._waiting = _Waiting(self._publisher, clock)
        self._notes: list[str] = []
        self._model = "the model"
        # tool calls: this round's panel, and what earlier rounds left on screen (widgets
        # and answer pieces, redisplayed in order if the live outputs are merged)
        self._tools: ToolPanel | None = None
        self._call_keys = ToolCallKeys()  # which fragments begin a call (a stand-in line each)
        self._earlier: list[Any] = []
        self._closing: list[ReasoningPanel | ToolPanel] = []
        self._thought = 0.0  # seconds of reasoning in earlier rounds
        self._round_break = False  # a new round began: its reasoning starts a paragraph
        self.redraws = 0
        self.merges = 0

    def _new_blocks(self) -> LiveBlocks:
        return LiveBlocks(
            self._publisher,
            pre_html if self._plain else render_live,
            reasoning_split if self._plain else answer_split,
        )

    def start(self, model: str) -> None:
        """Show that the request is on its way (the first words replace this line)."""
        self._model = model
        self._waiting.show(f"⋯ Waiting for {model}")

    def note(self, text: str) -> None:
        """A quiet line above the answer; it stays in the final output."""
        self._notes.append(text)
        self._publisher.display(_quiet_line(text))

    def _show_notes(self) -> None:
        for text in self._notes:
            self._publisher.display(_quiet_line(text))

    def abandon(self) -> None:
        """Nothing came: remove the waiting line (an error line follows); notes stay."""
        if self._waiting.shown and not self._started:
            self._publisher.clear()
            self._show_notes()

    @property
    def started(self) -> bool:
        """True once anything was shown (so a final summary is due)."""
        return self._started

    @property
    def answer(self) -> str:
        """The text of every round (rounds apart by a blank line)."""
        texts = [*self._earlier_text, "".join(self._answer_parts)]
        return "\n\n".join(text for text in texts if text)

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
            self._note_waiting()
            self._tick()
        elif isinstance(event, (Finished, StreamFailed)):
            self._flush()
        elif isinstance(event, ToolCallDelta):
            self._on_tool_call(event)
        elif isinstance(event, ToolResult):
            self._require_tools().result(event)
            self._started = True
        elif isinstance(event, ToolRound):
            self._on_round(event)
        else:  # pragma: no cover - the event set is closed
            raise TypeError(f"unknown event {event!r}")

    def _on_tool_call(self, event: ToolCallDelta) -> None:
        """The model writes a call: its reasoning and text are done; show a stand-in line."""
        _, named = self._call_keys.add(event)
        if not named or event.name is None:
            return  # more of a call already shown: nothing new until the call has run
        self._end_reasoning()
        if self._answer.pending:
            self._answer.redraw()
        self._require_tools().begin(event.name)
        self._started = True

    def _require_tools(self) -> ToolPanel:
        if self._tools is None:
            self._waiting.blank()
            self._tools = ToolPanel(self._require_widgets(), self._publisher)
            self._closing.append(self._tools)
        return self._tools

    def _on_round(self, event: ToolRound) -> None:
        """The results went back: this round stays on screen, the next streams below."""
        self._flush()
        self._end_reasoning()
        if self._panel is not None:
            self._earlier.append(self._panel.accordion)
        if self._answer.outputs:
            self._earlier.append(self._answer)
        if self._tools is not None:
            self._earlier.append(self._tools.box)
        self._earlier_text.append("".join(self._answer_parts))
        self._thought += self._reasoning_seconds or 0.0
        self._panel, self._tools = None, None
        self._call_keys = ToolCallKeys()
        self._answer_parts = []
        self._reasoning_started = self._reasoning_seconds = None
        self._answer = self._new_blocks()
        self._round_break = True
        self._waiting.show(f"⋯ {event.note}" if event.note else f"⋯ Waiting for {self._model}")

    def _on_text(self, text: str) -> None:
        if not text:
            return
        if not self._answer_parts:
            self._end_reasoning()
            self._answer.adopt(self._waiting.hand_over())
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
        if self._round_break and self._reasoning_parts:
            self._reasoning_parts.append("\n\n")  # a later round's reasoning: set apart
        self._round_break = False
        self._reasoning_parts.append(event.text)
        if not self._show_reasoning:
            self._note_waiting()
            return
        self._started = True
        if self._panel is None:
            self._waiting.blank()
            self._panel = ReasoningPanel(
                self._require_widgets(), self._publisher, self._clock, self._reasoning_started
            )
            self._closing.append(self._panel)
        self._panel.blocks.append(text)
        self._pacer.received(len(text))
        self._tick()

    def _note_waiting(self) -> None:
        if self._reasoning_started is None:
            return
        seconds = self._clock() - self._reasoning_started
        hidden = "" if self._show_reasoning else "; reasoning hidden"
        self._waiting.note(f"⋯ {self._model} is thinking ({seconds:.0f} s{hidden})")

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
            # the same end time as the final title, so live and final agree
            ended = None
            if self._reasoning_started is not None and self._reasoning_seconds is not None:
                ended = self._reasoning_started + self._reasoning_seconds
            self._panel.collapse(ended=ended)

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
        earlier = sum(b.outputs if isinstance(b, LiveBlocks) else 1 for b in self._earlier)
        if self._answer.outputs + earlier >= MAX_LIVE_OUTPUTS:
            self._merge_outputs()

    def _merge_outputs(self) -> None:
        """Too many live outputs: start again with the reasoning panel and one answer output."""
        self._publisher.clear()
        self._show_notes()
        for shown in self._earlier:  # earlier rounds of a tool exchange, in order
            if isinstance(shown, LiveBlocks):
                shown.merge()
            else:
                self._publisher.display_widget(shown)
        if self._panel is not None:
            self._publisher.display_widget(self._panel.accordion)
        self._answer.merge()
        self.merges += 1

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
        self._show_notes()
        if self._show_reasoning and (self._reasoning_parts or self._encrypted):
            self._publisher.display(self._reasoning_bundle(summary.reasoning_tokens))
        answer = self.answer
        if summary.tool_calls:
            # the output metadata goes with the answer; without one, with the calls
            metadata = None if answer else summary.metadata
            self._publisher.display(tools_bundle(summary.tool_calls), metadata=metadata)
        if answer:
            bundle = plain_bundle(answer) if self._plain else answer_bundle(answer)
            self._publisher.display(bundle, metadata=summary.metadata)
        # with neither an answer nor calls (only reasoning came), the footer keeps it
        footer = footer_bundle(summary.footer, summary.status)
        alone = not answer and not summary.tool_calls
        self._publisher.display(footer, metadata=summary.metadata if alone else None)
        for panel in self._closing:
            panel.close()
        self._closing = []
        self._panel = self._tools = None

    def _reasoning_bundle(self, tokens: int | None) -> dict[str, str]:
        seconds = self._reasoning_seconds
        if self._thought:
            seconds = self._thought + (seconds or 0.0)
        title = reasoning_title(seconds, tokens)
        text = self.reasoning
        if self._encrypted:
            note = (
                f"[{self._encrypted} encrypted reasoning block(s): "
                "not readable, kept in the conversation]"
            )
            text = f"{text}\n\n{note}" if text else note
        html = f"<details><summary>{escape_text(title)}</summary>{pre_html(text)}</details>"
        return {"text/html": html, "text/plain": f"[{title}]"}


def render_live(text: str) -> str:
    """A live redraw's HTML: no syntax colours (the open block is re-sent on every redraw,
    and colours would need the stylesheet there too); the final output is coloured.
    Shared by the single answer and the side-by-side columns."""
    from .markdown import render_html  # markdown-it: loaded by the first answer, not at load

    return render_html(text, highlight=False)


def answer_bundle(answer: str) -> dict[str, str]:
    """The final answer: safe HTML for display, neutralised Markdown, the text itself.

    The HTML carries the ``<style>`` its coloured code needs (see render/highlight.py);
    the text shows control characters instead of obeying them (``jupyter console``
    prints it to a terminal).
    """
    from .markdown import neutralise_markdown, render_html

    html = render_html(answer)
    return {
        "text/html": stylesheet(html) + html,
        "text/markdown": neutralise_markdown(answer),
        "text/plain": printable(answer),
    }


def plain_bundle(answer: str) -> dict[str, str]:
    """The final answer shown as plain text (``--format text``)."""
    return {"text/html": pre_html(answer), "text/plain": printable(answer)}


def footer_bundle(footer: str, status: str | None) -> dict[str, str]:
    """The quiet line under the answer, with a status line (interrupted, error) if any."""
    lines = [line for line in (status, footer) if line]
    html = "".join(f'<div style="{_FOOTER_STYLE}">{escape_text(line)}</div>' for line in lines)
    return {"text/html": html, "text/plain": printable("\n".join(lines))}


class TerminalView:
    """Plain text for terminal IPython: deltas are written as they arrive."""

    def __init__(self, out: TextIO | None = None, *, show_reasoning: bool = True) -> None:
        self._out = out or sys.stdout
        self._show_reasoning = show_reasoning
        self._state = "idle"  # idle | reasoning | answer | tools
        self._started = False
        self._answer_parts: list[str] = []

    @property
    def started(self) -> bool:
        return self._started

    @property
    def answer(self) -> str:
        return "".join(self._answer_parts)

    def start(self, model: str) -> None:
        """Nothing to show in a terminal until the first words arrive."""

    def note(self, text: str) -> None:
        self._out.write(f"{text}\n")
        self._out.flush()

    def abandon(self) -> None:
        """Nothing was shown."""

    def handle(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            if not event.text:
                return
            if self._state == "reasoning":
                self._write("\n\n")
            self._state = "answer"
            self._answer_parts.append(event.text)
            self._write(event.text)
        elif isinstance(event, ReasoningDelta):
            if not self._show_reasoning:
                return
            text = event.text or ("[encrypted reasoning]" if event.encrypted else "")
            if text and self._state in ("idle", "tools"):
                self._write("Thinking…\n")
                self._state = "reasoning"
            if text and self._state == "reasoning":
                self._write(text)
        elif isinstance(event, ToolResult):
            if self._state in ("reasoning", "answer"):
                self._write("\n")
            self._state = "tools"
            self._write(tool_line(event.name, event.arguments, event.result, event.error) + "\n")
        elif isinstance(event, ToolRound):
            if event.note:
                self._write(f"{event.note}\n")
            self._state = "tools"
        elif isinstance(event, ToolCallDelta | Usage | KeepAlive | Finished | StreamFailed):
            pass  # a call is shown once it has run; the rest is in the footer
        else:  # pragma: no cover - the event set is closed
            raise TypeError(f"unknown event {event!r}")

    def _write(self, text: str) -> None:
        self._started = True
        self._out.write(printable(text))  # model text must not drive the terminal
        self._out.flush()

    def finish(self, summary: FinalSummary) -> None:
        self._write("\n")
        for line in (summary.status, summary.footer):
            if line:
                self._write(f"{line}\n")
