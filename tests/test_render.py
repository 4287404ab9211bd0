"""The renderer at its seam: event lists in, display calls and widget state out."""

from __future__ import annotations

import html
import io
from collections.abc import Mapping
from typing import Any

import ipywidgets

from ormagic.errors import StreamError
from ormagic.events import (
    Finished,
    KeepAlive,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    Usage,
)
from ormagic.render.live import Pacer
from ormagic.render.markdown import render_html
from ormagic.render.reasoning import reasoning_title
from ormagic.render.views import FinalSummary, NotebookView, TerminalView


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """A Publisher that records every call, as the frontend would receive them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.outputs: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.widgets: list[Any] = []

    def display(
        self,
        bundle: Mapping[str, Any],
        *,
        display_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        key = display_id or f"anon-{len(self.order)}"
        self.calls.append(("display", dict(bundle)))
        self.outputs[key] = {"bundle": dict(bundle), "metadata": dict(metadata or {})}
        self.order.append(key)

    def display_widget(self, widget: Any) -> None:
        self.calls.append(("widget", widget))
        self.widgets.append(widget)
        self.order.append(f"widget-{len(self.widgets)}")

    def update(self, bundle: Mapping[str, Any], *, display_id: str) -> None:
        self.calls.append(("update", dict(bundle)))
        self.outputs[display_id]["bundle"] = dict(bundle)

    def clear(self) -> None:
        self.calls.append(("clear", None))
        self.outputs.clear()
        self.order.clear()

    def shown(self) -> list[dict[str, Any]]:
        return [self.outputs[k] for k in self.order if k in self.outputs]

    def sent_chars(self) -> int:
        return sum(
            len(b.get("text/html", "")) for kind, b in self.calls if kind in ("display", "update")
        )


def make_view(**kwargs: Any) -> tuple[NotebookView, Recorder, Clock]:
    clock = Clock()
    recorder = Recorder()
    view = NotebookView(recorder, clock=clock, widgets=ipywidgets, **kwargs)
    return view, recorder, clock


def test_reasoning_title_formats() -> None:
    assert reasoning_title(4.23, 312) == "Thought for 4.2 s · 312 tokens"
    assert reasoning_title(4.23, None) == "Thought for 4.2 s"
    assert reasoning_title(None, None) == "Thinking…"
    assert reasoning_title(75, 1234) == "Thought for 1 min 15 s · 1,234 tokens"


def test_first_words_are_shown_at_once_then_throttled() -> None:
    view, rec, clock = make_view()
    view.handle(TextDelta("Hello"))
    assert rec.calls[0][0] == "display"
    assert "Hello" in rec.calls[0][1]["text/html"]
    for _ in range(50):  # 50 deltas within 10 ms: no redraw
        clock.advance(0.0002)
        view.handle(TextDelta(" w"))
    assert len(rec.calls) == 1
    clock.advance(0.5)
    view.handle(TextDelta("!"))
    assert len(rec.calls) == 2
    assert rec.calls[1][0] == "update"
    assert rec.calls[1][1]["text/html"].count(" w") == 50


def test_keepalive_redraws_the_trailing_edge_during_a_stall() -> None:
    view, rec, clock = make_view()
    view.handle(TextDelta("First"))
    clock.advance(0.01)
    view.handle(TextDelta(" words"))  # too soon: not drawn
    assert "words" not in rec.calls[-1][1]["text/html"]
    clock.advance(2.0)
    view.handle(KeepAlive("OPENROUTER PROCESSING"))
    assert "First words" in rec.calls[-1][1]["text/html"]


def test_long_answer_sends_few_messages_and_bounded_traffic() -> None:
    view, rec, clock = make_view()
    paragraph = "Lorem ipsum dolor sit amet, consectetur adipiscing elit sed do. " * 6
    answer = "\n\n".join(f"{paragraph.strip()} ({i})" for i in range(40)) + "\n"
    pieces = [answer[i : i + 16] for i in range(0, len(answer), 16)]  # ~4 chars/token
    for piece in pieces:
        clock.advance(0.02)  # 50 deltas/s = 800 chars/s
        view.handle(TextDelta(piece))
    view.handle(Finished(reason="stop"))
    messages = [c for c in rec.calls if c[0] in ("display", "update")]
    elapsed = 0.02 * len(pieces)
    assert len(pieces) > 900
    assert len(messages) <= 10 * elapsed + 2  # never more than 10 redraws a second
    assert rec.sent_chars() < 4 * len(render_html(answer))  # not quadratic
    assert view.live_outputs <= 30  # finished blocks grouped: JupyterLab shows 50 at most
    # the live outputs, in order, hold the whole answer exactly once
    live_text = "".join(html.unescape(o["bundle"]["text/html"]) for o in rec.shown())
    for i in range(40):
        assert live_text.count(f"({i})") == 1


def test_open_code_fence_is_cut_so_redraws_stay_small() -> None:
    view, rec, clock = make_view()
    code = "".join(f"x_{i} = {i} * 2  # a line of code\n" for i in range(400))
    text = "```python\n" + code + "```\n"
    for i in range(0, len(text), 20):
        clock.advance(0.05)
        view.handle(TextDelta(text[i : i + 20]))
    view.handle(Finished(reason="stop"))
    biggest = max(len(b["text/html"]) for k, b in rec.calls if k == "update")
    assert biggest < 40_000  # the whole block rendered is far larger
    assert view.live_outputs >= 4


def test_reasoning_widget_streams_then_collapses_with_title() -> None:
    view, _rec, clock = make_view()
    view.handle(ReasoningDelta("Let me think"))
    accordion = view.panel
    assert accordion.get_state()["selected_index"] == 0
    assert accordion.titles == ("Thinking…",)
    clock.advance(0.3)
    view.handle(ReasoningDelta(" about <b>this</b>."))
    box = accordion.children[0]
    values = [child.value for child in box.children]
    assert values == [
        '<div><pre style="white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;'
        'margin:0;font-size:0.9em;line-height:1.35">'
        "Let me think about &lt;b&gt;this&lt;/b&gt;.</pre></div>"
    ]
    clock.advance(3.9)
    view.handle(TextDelta("Answer."))
    assert accordion.selected_index is None
    assert accordion.titles == ("Thought for 4.2 s",)
    view.handle(Usage(prompt_tokens=10, completion_tokens=400, reasoning_tokens=312, cost=0.0001))
    assert accordion.titles == ("Thought for 4.2 s · 312 tokens",)


def test_final_outputs_read_well_without_widgets() -> None:
    view, rec, clock = make_view()
    view.handle(ReasoningDelta("Plan: <img src=x onerror=alert(1)>"))
    clock.advance(1.0)
    view.handle(TextDelta("| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>alert(1)</script>"))
    view.handle(Usage(prompt_tokens=3, completion_tokens=5, reasoning_tokens=2))
    view.handle(Finished(reason="stop"))
    view.finish(
        FinalSummary(
            footer="model · 3 in / 5 out", metadata={"ormagic": {"model": "m"}}, reasoning_tokens=2
        )
    )
    shown = rec.shown()
    assert [sorted(o["bundle"]) for o in shown] == [
        ["text/html", "text/plain"],
        ["text/html", "text/markdown", "text/plain"],
        ["text/html", "text/plain"],
    ]
    details = shown[0]["bundle"]["text/html"]
    assert details.startswith("<details><summary>Thought for 1.0 s · 2 tokens</summary>")
    assert "&lt;img src=x onerror=alert(1)&gt;" in details
    answer = shown[1]
    assert "<table>" in answer["bundle"]["text/html"]
    assert "<script" not in answer["bundle"]["text/html"]
    assert "<script" not in answer["bundle"]["text/markdown"]
    assert answer["bundle"]["text/plain"].endswith("<script>alert(1)</script>")
    assert answer["metadata"] == {"ormagic": {"model": "m"}}
    assert shown[2]["bundle"]["text/plain"] == "model · 3 in / 5 out"
    assert rec.calls.count(("clear", None)) == 1


def test_hidden_reasoning_is_not_shown() -> None:
    view, rec, _clock = make_view(show_reasoning=False)
    view.handle(ReasoningDelta("secret plan"))
    view.handle(TextDelta("Done."))
    view.handle(Finished())
    view.finish(FinalSummary(footer="f"))
    assert rec.widgets == []
    assert all("secret plan" not in str(o) for o in rec.shown())
    assert view.reasoning == "secret plan"


def test_encrypted_reasoning_is_shown_as_such() -> None:
    view, rec, _clock = make_view()
    item = {"type": "reasoning.encrypted", "data": "gAAAA...", "format": "openai-responses-v1"}
    view.handle(ReasoningDelta("", details=(item,)))
    view.handle(TextDelta("Hi"))
    view.handle(Finished())
    view.finish(FinalSummary(footer="f"))
    details = rec.shown()[0]["bundle"]["text/html"]
    assert "1 encrypted reasoning block(s): not readable, kept in the conversation" in details
    assert "gAAAA" not in details


def test_failure_keeps_partial_answer_with_status_line() -> None:
    view, rec, _clock = make_view()
    view.handle(TextDelta("Partial ans"))
    view.handle(StreamFailed(StreamError("Provider disconnected")))
    view.finish(FinalSummary(footer="m · usage unavailable", status="⚠ Provider disconnected"))
    shown = rec.shown()
    assert shown[0]["bundle"]["text/plain"] == "Partial ans"
    assert shown[1]["bundle"]["text/plain"] == "⚠ Provider disconnected\nm · usage unavailable"


def test_pacer_interval_grows_with_resend_size() -> None:
    clock = Clock()
    pacer = Pacer(clock)
    assert pacer.due(10)
    pacer.drew()
    pacer.received(200)
    clock.advance(1.0)  # 200 chars/s arriving: re-send at most as fast
    assert pacer.due(180)  # 180 / 200 = 0.9 s
    assert not pacer.due(400)  # 400 / 200 = 2 s
    assert not pacer.due(6000)  # 6000 / 200 = 30 s -> clamped to 4 s
    clock.advance(3.0)
    assert pacer.due(6000)


def test_terminal_view_prints_plain_text() -> None:
    out = io.StringIO()
    view = TerminalView(out)
    view.handle(ReasoningDelta("hmm"))
    view.handle(TextDelta("**Hi**"))
    view.handle(Finished())
    view.finish(FinalSummary(footer="m · 1 in / 1 out", status=None))
    assert out.getvalue() == "Thinking…\nhmm\n\n**Hi**\nm · 1 in / 1 out\n"


def test_many_blocks_are_merged_below_jupyterlabs_output_limit() -> None:
    view, rec, clock = make_view()
    view.handle(ReasoningDelta("Plan."))
    clock.advance(0.5)
    paragraphs = [f"Paragraph {i}: " + "words and more words " * 25 for i in range(200)]
    answer = "\n\n".join(paragraphs) + "\n"
    for i in range(0, len(answer), 16):
        clock.advance(0.04)  # 400 chars/s, about 100 tokens/s
        view.handle(TextDelta(answer[i : i + 16]))
    view.handle(Finished(reason="stop"))
    assert view.merges >= 1
    shown = rec.shown()
    assert len(shown) + len(rec.widgets) <= 46  # + the footer: within JupyterLab's 50
    # after a merge the reasoning panel is shown again, above the answer
    assert rec.order[0].startswith("widget-")
    live_text = "".join(html.unescape(o["bundle"]["text/html"]) for o in shown)
    assert [live_text.count(f"Paragraph {i}:") for i in range(200)] == [1] * 200
    sent = rec.sent_chars()
    assert sent < 5 * len(answer), (sent, len(answer))


def test_panel_closes_every_widget_it_made_and_keeps_its_token_count() -> None:
    view, _rec, clock = make_view()
    view.handle(ReasoningDelta("Thinking " * 400))  # several reasoning blocks
    clock.advance(2.0)
    view.handle(ReasoningDelta("more " * 400))
    clock.advance(2.0)
    view.handle(TextDelta("Answer."))
    view.handle(Usage(prompt_tokens=1, completion_tokens=2, reasoning_tokens=300))
    accordion = view.panel
    assert accordion.titles == ("Thought for 4.0 s · 300 tokens",)
    children = list(accordion.children[0].children)
    made = [accordion, accordion.layout, accordion.children[0], accordion.children[0].layout]
    for child in children:
        made += [child, child.layout, child.style]
    view.handle(Finished())
    view.finish(FinalSummary(footer="f", reasoning_tokens=300))
    assert [w.comm for w in made] == [None] * len(made)  # closed widgets drop their comm


def test_waiting_line_until_the_first_words_then_replaced_in_place() -> None:
    view, rec, clock = make_view(show_reasoning=False)
    view.start("deepseek/deepseek-v4-flash")
    assert rec.calls == [
        (
            "display",
            {
                "text/html": '<div style="color:#888;font-size:0.85em;margin-top:0.4em">'
                "⋯ Waiting for deepseek/deepseek-v4-flash</div>",
                "text/plain": "⋯ Waiting for deepseek/deepseek-v4-flash",
            },
        )
    ]
    view.handle(ReasoningDelta("hidden thoughts"))
    for _ in range(30):  # 3 s of hidden reasoning: the line ticks about once a second
        clock.advance(0.1)
        view.handle(ReasoningDelta("."))
    notes = [b["text/plain"] for kind, b in rec.calls if kind == "update"]
    assert notes == [
        "⋯ deepseek/deepseek-v4-flash is thinking (1 s; reasoning hidden)",
        "⋯ deepseek/deepseek-v4-flash is thinking (2 s; reasoning hidden)",
        "⋯ deepseek/deepseek-v4-flash is thinking (3 s; reasoning hidden)",
    ]
    view.handle(TextDelta("Hello"))
    assert rec.calls[-1][0] == "update"  # the answer took the waiting line's place
    assert "Hello" in rec.calls[-1][1]["text/html"]
    assert [kind for kind, _ in rec.calls].count("display") == 1


def test_waiting_line_is_emptied_above_a_reasoning_panel_and_removed_on_failure() -> None:
    view, rec, _clock = make_view()
    view.start("m")
    view.handle(ReasoningDelta("thinking"))
    assert ("update", {"text/plain": ""}) in rec.calls
    assert len(rec.widgets) == 1
    failed, rec2, _ = make_view()
    failed.start("m")
    failed.abandon()
    assert rec2.calls[-1] == ("clear", None)
