"""The side-by-side view at its seam: tagged events in, widget state and bundles out."""

from __future__ import annotations

import io
from typing import Any

import ipywidgets
from test_render import Clock, Recorder

from ormagic.errors import StreamError
from ormagic.events import Finished, ReasoningDelta, StreamFailed, TextDelta, Usage
from ormagic.render.columns import ColumnsView
from ormagic.render.compared import ColumnAnswer, TerminalColumnsView, side_by_side_bundle
from ormagic.view import FinalSummary

A, B = "deepseek/deepseek-v4-flash", "openai/gpt-5-nano"
HOSTILE = "<img src=x onerror=alert(1)>"


def make_view(**kwargs: Any) -> tuple[ColumnsView, Recorder, Clock]:
    clock = Clock()
    recorder = Recorder()
    view = ColumnsView(recorder, clock=clock, widgets=ipywidgets, **kwargs)
    return view, recorder, clock


def column_box(recorder: Recorder, column: int) -> Any:
    [row] = recorder.widgets
    return row.children[column]


def answer_values(recorder: Recorder, column: int) -> list[str]:
    answer_box = column_box(recorder, column).children[-1]
    return [child.value for child in answer_box.children]


def test_a_column_per_model_with_its_name_escaped() -> None:
    view, recorder, _ = make_view()
    view.start([A, HOSTILE])
    [row] = recorder.widgets
    assert isinstance(row, ipywidgets.HBox)
    heads = [box.children[0].value for box in row.children]
    assert heads == [f"<b>[1] {A}</b>", "<b>[2] &lt;img src=x onerror=alert(1)&gt;</b>"]
    statuses = [box.children[1].value for box in row.children]
    assert f"⋯ Waiting for {A}" in statuses[0]
    assert "<img" not in statuses[1]


def prose(html: str) -> str:
    """A column's piece of answer, at the line height of prose (not the widget's 28 px)."""
    return f'<div style="line-height:1.5">{html}</div>'


def test_first_words_at_once_then_one_paced_redraw_for_every_column() -> None:
    view, recorder, clock = make_view()
    view.start([A, B])
    view.handle(0, TextDelta("Hello "))
    view.handle(1, TextDelta("Bonjour "))
    assert answer_values(recorder, 0) == [prose("<div><p>Hello</p>\n</div>")]
    assert answer_values(recorder, 1) == [prose("<div><p>Bonjour</p>\n</div>")]
    assert view.redraws == 2
    # more words at the same moment: held back by the shared pacer
    view.handle(0, TextDelta("world"))
    view.handle(1, TextDelta("le monde"))
    assert answer_values(recorder, 0) == [prose("<div><p>Hello</p>\n</div>")]
    # the timer (no event arrived) draws both columns in one redraw
    clock.advance(0.1)
    view.idle()
    assert answer_values(recorder, 0) == [prose("<div><p>Hello world</p>\n</div>")]
    assert answer_values(recorder, 1) == [prose("<div><p>Bonjour le monde</p>\n</div>")]
    assert view.redraws == 3
    # the waiting line went away with the first words
    assert column_box(recorder, 0).children[1].value == ""


def test_a_slow_column_is_not_starved_by_a_fast_one() -> None:
    view, recorder, clock = make_view()
    view.start([A, B])
    view.handle(1, TextDelta("slow "))
    # column 0 streams fast for 5 s; column 1 sends one more word early on. The shared
    # pacer spaces redraws out as the open text grows (at most the rate text arrives,
    # render/live.py), and the redraw it allows draws the slow column too.
    for i in range(250):
        clock.advance(0.02)
        view.handle(0, TextDelta(f"w{i} "))
        if i == 1:
            view.handle(1, TextDelta("second"))
    assert answer_values(recorder, 1) == [prose("<div><p>slow second</p>\n</div>")]
    assert view.redraws <= 2 + 5 / 0.1  # first words, then at most 10 redraws a second


def test_each_column_has_its_own_reasoning_panel() -> None:
    view, recorder, clock = make_view()
    view.start([A, B])
    view.handle(1, ReasoningDelta("Thinking <b>hard</b>"))
    box = column_box(recorder, 1)
    accordion = box.children[2]  # between the status line and the answer
    assert isinstance(accordion, ipywidgets.Accordion)
    assert accordion.titles == ("Thinking…",)
    assert "Thinking &lt;b&gt;hard&lt;/b&gt;" in accordion.children[0].children[0].value
    assert len(column_box(recorder, 0).children) == 3  # no panel in the other column
    clock.advance(2.0)
    view.handle(1, TextDelta("Answer."))
    view.handle(1, Usage(reasoning_tokens=40))
    assert accordion.titles == ("Thought for 2.0 s · 40 tokens",)
    assert accordion.selected_index is None


def test_a_failure_shows_in_its_column_at_once() -> None:
    view, recorder, _ = make_view()
    view.start([A, B])
    view.handle(1, StreamFailed(StreamError(f"Boom {HOSTILE}")))
    status = column_box(recorder, 1).children[1].value
    assert "⚠ Boom &lt;img src=x onerror=alert(1)&gt;" in status
    assert f"⋯ Waiting for {A}" in column_box(recorder, 0).children[1].value


def summary(footer: str, status: str | None = None, tokens: int | None = None) -> FinalSummary:
    return FinalSummary(footer=footer, status=status, reasoning_tokens=tokens)


def test_finish_replaces_the_widgets_by_one_static_output() -> None:
    view, recorder, clock = make_view()
    view.start([A, B])
    view.handle(0, ReasoningDelta("Because."))
    clock.advance(1.5)
    view.handle(0, TextDelta("**Four**."))
    view.handle(0, Finished())
    view.handle(1, TextDelta(f"Four {HOSTILE}"))
    view.handle(1, StreamFailed(StreamError("Dropped")))
    made = [recorder.widgets[0], *recorder.widgets[0].children]
    metadata = {"ormagic": {"chosen": 1}}
    view.finish([summary("footer A", tokens=7), summary("footer B", "⚠ Dropped")], 1, metadata)
    assert [w.comm for w in made] == [None] * len(made)
    assert recorder.calls[-2][0] == "clear"
    [final] = recorder.shown()
    assert final["metadata"] == metadata
    bundle = final["bundle"]
    html = bundle["text/html"]
    assert f"[1] {A}</th>" in html
    assert f'[2] {B} <span title="' in html and "✓ kept</span></th>" in html
    assert "<summary>Thought for 1.5 s · 7 tokens</summary>" in html
    assert "<strong>Four</strong>" in html
    assert "<img" not in html
    assert html.index("⚠ Dropped") < html.index("footer B")
    assert bundle["text/plain"] == (
        f"── [1] {A} ──\n**Four**.\nfooter A\n\n"
        f"── [2] {B} (kept) ──\nFour {HOSTILE}\n⚠ Dropped\nfooter B"
    )
    markdown = bundle["text/markdown"]
    first, second = markdown.split("\n\n---\n\n")
    assert first.startswith(r"**\[1\] deepseek\/deepseek\-v4\-flash**")
    assert second.startswith(r"**\[2\] openai\/gpt\-5\-nano** · ✓ kept")
    assert "&lt;img" in second and "<img" not in second
    assert view.final_bundle(0)["text/plain"].startswith(f"── [1] {A} (kept) ──")


def test_plain_format_keeps_the_text_as_written() -> None:
    bundle = side_by_side_bundle(
        [ColumnAnswer(A, "# Not a heading", "", None, None, "f")], 0, plain=True
    )
    assert "<h1>" not in bundle["text/html"]
    assert "# Not a heading</pre>" in bundle["text/html"]
    assert "text/markdown" not in bundle


def test_terminal_prints_each_section_when_it_ends_then_the_footers() -> None:
    out = io.StringIO()
    view = TerminalColumnsView(out)
    view.start([A, B])
    view.handle(1, TextDelta("Bravo."))
    view.handle(0, TextDelta("Alpha"))
    view.handle(1, Finished())
    assert out.getvalue() == f"⋯ Asking {A}, {B} side by side\n\n── [2] {B} ──\nBravo.\n"
    view.handle(0, StreamFailed(StreamError("Dropped")))
    view.finish([summary("footer A", "⚠ Dropped"), summary("footer B")], 1, {})
    assert out.getvalue().endswith(
        f"── [1] {A} ──\nAlpha\n\n[1] ⚠ Dropped\n[1] footer A\n[2] footer B\n"
        f"The conversation continues from [2] {B} (%chat pick N to change).\n"
    )
