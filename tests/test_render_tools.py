"""Tool calls in the views: event lists in, display calls and widget state out."""

from __future__ import annotations

import html
import io

import ipywidgets
from test_render import Clock, Recorder

from ormagic.events import (
    Finished,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolResult,
    ToolRound,
    Usage,
)
from ormagic.render.views import FinalSummary, NotebookView, TerminalView

LIST = ToolResult("c1", "list_variables", "{}", "1 variable:\n- sales: DataFrame", round=1)
BAD = ToolResult(
    "c2",
    "describe_variable",
    '{"name": "<b>x</b>"}',
    "Error: There is no variable named '<b>x</b>'.",
    error=True,
)


def round_one(view: NotebookView, clock: Clock) -> None:
    view.start("m")
    view.handle(ReasoningDelta("Look first."))
    clock.advance(1.0)
    view.handle(TextDelta("Let me check."))
    view.handle(ToolCallDelta(0, "c1", "list_variables", ""))
    view.handle(ToolCallDelta(1, "c2", "describe_variable", ""))
    view.handle(ToolCallDelta(1, None, None, '{"name": "<b>x</b>"}'))
    view.handle(Finished(reason="tool_calls"))
    view.handle(LIST)
    view.handle(BAD)
    view.handle(ToolRound(2))


def test_calls_show_as_stand_ins_then_collapsed_lines() -> None:
    clock, rec = Clock(), Recorder()
    view = NotebookView(rec, clock=clock, widgets=ipywidgets)
    view.start("m")
    view.handle(TextDelta("Let me check."))
    view.handle(ToolCallDelta(0, "c1", "list_variables", ""))
    view.handle(ToolCallDelta(1, "c2", "describe_variable", ""))
    [box] = [w for w in rec.widgets if isinstance(w, ipywidgets.VBox)]
    assert [html.unescape(w.value) for w in box.children] == [
        '<div style="color:#888;font-size:0.9em">⚙ list_variables(…)</div>',
        '<div style="color:#888;font-size:0.9em">⚙ describe_variable(…)</div>',
    ]
    stand_ins = list(box.children)
    view.handle(LIST)
    view.handle(BAD)
    assert [type(w).__name__ for w in box.children] == ["Accordion", "Accordion"]
    assert [w.titles for w in box.children] == [
        ("⚙ list_variables() → 2 lines",),
        ("⚙ describe_variable(name=\"<b>x</b>\") → Error: There is no variable named '<b>x</b>'.",),
    ]
    assert [w.selected_index for w in box.children] == [None, None]
    assert [w.comm for w in stand_ins] == [None, None]  # replaced stand-ins are closed
    details = box.children[1].children[0].value
    assert "&lt;b&gt;x&lt;/b&gt;" in details and "<b>x" not in details
    assert "result (an error, sent back to the model)" in details


def test_a_provider_repeating_id_and_name_in_every_fragment_gets_one_line_per_call() -> None:
    # Fireworks, DeepSeek and Qwen hosts repeat id and name in each fragment of a call;
    # one backend gives two parallel calls the same index, told apart by their ids
    clock, rec = Clock(), Recorder()
    view = NotebookView(rec, clock=clock, widgets=ipywidgets)
    view.start("m")
    view.handle(ToolCallDelta(0, "c1", "list_variables", ""))
    view.handle(ToolCallDelta(0, "c1", "list_variables", "{"))
    view.handle(ToolCallDelta(0, "c1", "list_variables", "}"))
    view.handle(ToolCallDelta(0, "c2", "describe_variable", '{"name": "<b>x</b>"}'))
    view.handle(ToolCallDelta(None, None, "describe_variable", ""))  # continues c2
    [box] = [w for w in rec.widgets if isinstance(w, ipywidgets.VBox)]
    assert [html.unescape(w.value) for w in box.children] == [
        '<div style="color:#888;font-size:0.9em">⚙ list_variables(…)</div>',
        '<div style="color:#888;font-size:0.9em">⚙ describe_variable(…)</div>',
    ]
    view.handle(Finished(reason="tool_calls"))
    view.handle(LIST)
    view.handle(BAD)
    assert [w.titles for w in box.children] == [
        ("⚙ list_variables() → 2 lines",),
        ("⚙ describe_variable(name=\"<b>x</b>\") → Error: There is no variable named '<b>x</b>'.",),
    ]
    view.handle(ToolRound(2))
    view.handle(ToolCallDelta(0, "c3", "list_variables", ""))  # index 0 again: a new round
    [_, box2] = [w for w in rec.widgets if isinstance(w, ipywidgets.VBox)]
    assert len(box2.children) == 1


def test_the_next_round_streams_below_and_the_final_output_lists_the_calls() -> None:
    clock, rec = Clock(), Recorder()
    view = NotebookView(rec, clock=clock, widgets=ipywidgets)
    round_one(view, clock)
    assert rec.calls[-1] == (
        "display",
        {
            "text/html": '<div style="color:#888;font-size:0.85em;margin-top:0.4em">'
            "⋯ Waiting for m</div>",
            "text/plain": "⋯ Waiting for m",
        },
    )
    view.handle(ReasoningDelta("Now answer."))
    clock.advance(2.0)
    view.handle(TextDelta("There is one DataFrame."))
    view.handle(Usage(prompt_tokens=5, completion_tokens=5, reasoning_tokens=4))
    view.handle(Finished(reason="stop"))
    panels = [w for w in rec.widgets if isinstance(w, ipywidgets.Accordion)]
    made = [*rec.widgets, *(c for w in rec.widgets for c in w.children)]
    view.finish(
        FinalSummary(
            footer="m · 2 tool calls",
            metadata={"ormagic": {"x": 1}},
            reasoning_tokens=4,
            tool_calls=(LIST, BAD),
        )
    )
    assert len(panels) == 2  # one reasoning panel per round
    assert [w.comm for w in made] == [None] * len(made)
    shown = rec.shown()
    assert [sorted(o["bundle"]) for o in shown] == [
        ["text/html", "text/plain"],
        ["text/html", "text/plain"],
        ["text/html", "text/markdown", "text/plain"],
        ["text/html", "text/plain"],
    ]
    reasoning, calls, answer, footer = (o["bundle"] for o in shown)
    assert reasoning["text/plain"] == "[Thought for 3.0 s · 4 tokens]"
    assert "Look first.\n\nNow answer." in reasoning["text/html"]
    assert calls["text/plain"] == (
        "⚙ list_variables() → 2 lines\n"
        "⚙ describe_variable(name=\"<b>x</b>\") → Error: There is no variable named '<b>x</b>'."
    )
    assert "<b>x" not in calls["text/html"]
    assert answer["text/plain"] == "Let me check.\n\nThere is one DataFrame."
    assert shown[2]["metadata"] == {"ormagic": {"x": 1}}
    assert footer["text/plain"] == "m · 2 tool calls"


def test_a_merge_redisplays_earlier_rounds_in_order() -> None:
    clock, rec = Clock(), Recorder()
    view = NotebookView(rec, clock=clock, widgets=ipywidgets)
    round_one(view, clock)
    paragraphs = [f"Paragraph {i}: " + "words and more words " * 25 for i in range(200)]
    answer = "\n\n".join(paragraphs) + "\n"
    for i in range(0, len(answer), 16):
        clock.advance(0.04)
        view.handle(TextDelta(answer[i : i + 16]))
    view.handle(Finished(reason="stop"))
    assert view.merges >= 1
    # round one's reasoning panel, text and calls come first again, then round two
    first_panel, first_box = rec.widgets[0], rec.widgets[1]
    assert isinstance(first_panel, ipywidgets.Accordion)
    assert isinstance(first_box, ipywidgets.VBox)

    def widget_at(key: str) -> object:
        return rec.widgets[int(key.split("-")[1]) - 1] if key.startswith("widget-") else None

    assert widget_at(rec.order[0]) is first_panel
    assert "Let me check." in rec.outputs[rec.order[1]]["bundle"]["text/html"]
    assert widget_at(rec.order[2]) is first_box
    live_text = "".join(html.unescape(o["bundle"]["text/html"]) for o in rec.shown())
    assert live_text.count("Let me check.") == 1
    assert [live_text.count(f"Paragraph {i}:") for i in range(200)] == [1] * 200
    assert len(rec.order) <= 42  # below JupyterLab's 50 outputs


def test_terminal_prints_one_plain_line_per_call() -> None:
    out = io.StringIO()
    view = TerminalView(out)
    view.handle(ReasoningDelta("Look first."))
    view.handle(TextDelta("Let me check."))
    view.handle(ToolCallDelta(0, "c1", "list_variables", ""))
    view.handle(Finished(reason="tool_calls"))
    view.handle(LIST)
    view.handle(BAD)
    view.handle(ToolRound(2, final=True, note="Tool round limit (1) reached."))
    view.handle(ReasoningDelta("Answer now."))
    view.handle(TextDelta("One DataFrame."))
    view.finish(FinalSummary(footer="m · 2 tool calls", status=None))
    assert out.getvalue() == (
        "Thinking…\nLook first.\n\nLet me check.\n"
        "⚙ list_variables() → 2 lines\n"
        "⚙ describe_variable(name=\"<b>x</b>\") → Error: There is no variable named '<b>x</b>'.\n"
        "Tool round limit (1) reached.\n"
        "Thinking…\nAnswer now.\n\nOne DataFrame.\n"
        "m · 2 tool calls\n"
    )
