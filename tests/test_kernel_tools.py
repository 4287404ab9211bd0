"""Tool calling in a real kernel against the loopback fake OpenRouter: the request bodies
of each round, and what a frontend receives, live and final."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from kernel_support import Execution, Kernel, start_kernel

from ormagic.testing._tools import TOOL_STYLES
from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply, ToolCall

pytestmark = pytest.mark.timeout(180)

SALES_CELL = (
    "import pandas as pd\n"
    "sales = pd.DataFrame({'month': ['Jan', 'Feb', 'Mar'], 'amount': [10.5, 20.0, None]})"
)
BUILTINS = [
    "list_variables",
    "describe_variable",
    "preview_rows",
    "value_counts",
    "read_cell",
    "search_notebook",
    "last_error",
]


def value(kernel: Kernel, expression: str) -> Any:
    execution = kernel.execute(f"import json as _j; print(_j.dumps({expression}))")
    assert execution.status == "ok", execution.error_text()
    return json.loads(execution.stream_text())


def opened(execution: Execution, model: str) -> list[dict[str, Any]]:
    """The state of every widget of kind ``model`` the kernel opened, in order."""
    return [
        m["content"]["data"]["state"]
        for m in execution.of_type("comm_open")
        if m["content"]["data"]["state"].get("_model_name") == model
    ]


def displayed(execution: Execution) -> list[dict[str, Any]]:
    return [o for o in execution.final_outputs() if "data" in o]


@pytest.fixture(autouse=True)
def _kernel_sales(kernel: Kernel) -> None:
    """The module's kernel holds ``sales`` and no variable another test defined (the
    model's list_variables would list it)."""
    assert kernel.execute("%reset_selective -f .").status == "ok"
    assert kernel.execute(SALES_CELL).status == "ok"


def test_a_two_round_exchange(kernel: Kernel, server: FakeOpenRouter) -> None:
    think = {
        "type": "reasoning.text",
        "text": "I should look at the data first.",
        "format": "unknown",
        "index": 0,
    }
    server.enqueue(
        StreamReply(
            reasoning_details=[think],
            text="",
            tool_calls=[
                ToolCall("list_variables", {}, "call_list"),
                ToolCall("describe_variable", {"name": "sales"}, "call_desc"),
            ],
            tool_chunk_chars=4,
            provider="DeepSeek",
        ),
        StreamReply(
            reasoning="The amount of March is NaN.",
            text="March is empty because its **amount** is missing (NaN).",
            provider="DeepSeek",
        ),
    )
    execution = kernel.execute("%%chat -c two\nWhy is March empty in sales?", cell_id="two-1")
    assert execution.status == "ok", execution.error_text()

    # -- what went to the server, round by round
    first, second = (r.body for r in server.chat_requests())
    assert [t["function"]["name"] for t in first["tools"]] == BUILTINS
    assert second["tools"] == first["tools"]
    assert "tool_choice" not in first and "tool_choice" not in second
    assert first["messages"][-1]["content"].endswith("Why is March empty in sales?")
    memory = value(kernel, "int(sales.memory_usage(deep=True).sum())")
    text_dtype = value(kernel, "str(sales.dtypes['month'])")
    described = "\n".join(
        [
            "pandas DataFrame, 3 rows \u00d7 2 columns",
            "columns (dtype, nulls):",
            f"  month: {text_dtype}, 0 null",
            "  amount: float64, 1 null",
            "describe() of the numeric columns:",
            "          amount",
            "count   2.000000",
            "mean   15.250000",
            "std     6.717514",
            "min    10.500000",
            "25%    12.875000",
            "50%    15.250000",
            "75%    17.625000",
            "max    20.000000",
            "head(5):",
            "  month  amount",
            "0   Jan    10.5",
            "1   Feb    20.0",
            "2   Mar     NaN",
        ]
    )
    assert second["messages"] == [
        first["messages"][0],
        {
            "role": "assistant",
            "content": None,
            "reasoning": "I should look at the data first.",
            "reasoning_details": [think],
            "tool_calls": [
                {
                    "id": "call_list",
                    "type": "function",
                    "function": {"name": "list_variables", "arguments": "{}"},
                },
                {
                    "id": "call_desc",
                    "type": "function",
                    "function": {"name": "describe_variable", "arguments": '{"name": "sales"}'},
                },
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_list",
            "content": f"1 variable:\n- sales: DataFrame, 3 rows \u00d7 2 columns, ~{memory} B",
        },
        {"role": "tool", "tool_call_id": "call_desc", "content": described},
    ]
    final_message = {
        "role": "assistant",
        "content": "March is empty because its **amount** is missing (NaN).",
        "reasoning": "The amount of March is NaN.",
        "reasoning_details": [
            {
                "type": "reasoning.text",
                "text": "The amount of March is NaN.",
                "format": "unknown",
                "index": 0,
            }
        ],
    }
    assert value(kernel, "__import__('ormagic').conversation('two').messages") == [
        *second["messages"],
        final_message,
    ]

    # -- live: round 1's reasoning, its calls (stand-ins, then one line each), round 2's
    accordions = opened(execution, "AccordionModel")
    assert [a["titles"] for a in accordions] == [
        ["Thinking…"],
        ["⚙ list_variables() → 2 lines"],
        ['⚙ describe_variable(name="sales") → 19 lines'],
        ["Thinking…"],
    ]
    assert [a["selected_index"] for a in accordions[1:3]] == [None, None]  # collapsed
    html_values = [h["value"] for h in opened(execution, "HTMLModel")]
    stand_ins = [v for v in html_values if "(…)" in v]
    assert [v.rsplit(">", 2)[-2].split("<")[0] for v in stand_ins] == [
        "⚙ list_variables(…)",
        "⚙ describe_variable(…)",
    ]
    details = [
        v for v in html_values if v.startswith('<div style="color:#888;font-size:0.9em">arg')
    ]
    assert len(details) == 2
    assert "&quot;name&quot;: &quot;sales&quot;" in details[1]
    assert "count   2.000000" in details[1]
    assert len(opened(execution, "VBoxModel")) == 3  # two reasoning panels, one box of calls
    comms = {m["content"]["comm_id"] for m in execution.of_type("comm_open")}
    closed = {m["content"]["comm_id"] for m in execution.of_type("comm_close")}
    assert comms <= closed  # every widget, its layout and style, closed at the end

    # -- final: reasoning, the calls, the answer, the footer; no widget left
    outputs = displayed(execution)
    assert len(outputs) == 4
    reasoning, calls, answer, footer = (o["data"] for o in outputs)
    assert reasoning["text/html"].startswith("<details><summary>Thought for ")
    assert (
        "I should look at the data first.\n\nThe amount of March is NaN."
        in (reasoning["text/html"])
    )
    assert calls["text/plain"] == (
        '⚙ list_variables() → 2 lines\n⚙ describe_variable(name="sales") → 19 lines'
    )
    assert calls["text/html"].startswith(
        "<details><summary>⚙ 2 tool calls: list_variables, describe_variable</summary>"
    )
    assert (
        "<details><summary>⚙ describe_variable(name=&quot;sales&quot;) → 19 lines</summary>"
        in calls["text/html"]
    )
    assert "  month  amount\n0   Jan    10.5" in calls["text/html"]
    assert answer["text/markdown"] == final_message["content"]
    meta = outputs[2]["metadata"]["ormagic"]
    assert meta["tool_calls"] == [
        {
            "id": "call_list",
            "name": "list_variables",
            "arguments": "{}",
            "round": 1,
            "error": False,
            "result_lines": 2,
        },
        {
            "id": "call_desc",
            "name": "describe_variable",
            "arguments": '{"name": "sales"}',
            "round": 1,
            "error": False,
            "result_lines": 19,
        },
    ]
    assert meta["rounds"] == 2
    assert meta["generation_ids"][1] == meta["generation_id"]
    usage = meta["usage"]
    assert footer["text/plain"].startswith("deepseek/deepseek-v4-flash via DeepSeek · ")
    assert (
        f"{usage['prompt_tokens']:,} in / {usage['completion_tokens']:,} out"
        in (footer["text/plain"])
    )
    assert footer["text/plain"].endswith(" · 2 tool calls")
    assert all("widget-view" not in json.dumps(o["data"]) for o in outputs)


@pytest.mark.parametrize("style", TOOL_STYLES)
def test_one_stand_in_line_per_call_however_the_provider_cuts_the_calls(
    kernel: Kernel, server: FakeOpenRouter, style: str
) -> None:
    # repeat_ids: id and name in every fragment; shared_index: both calls on index 0;
    # no_index; interleaved: the two calls' fragments alternate
    server.enqueue(
        StreamReply(
            text="",
            tool_calls=[
                ToolCall("list_variables", {}, "call_a"),
                ToolCall("describe_variable", {"name": "sales"}, "call_b"),
            ],
            tool_chunk_chars=3,
            tool_style=style,
        ),
        StreamReply(text="Done."),
    )
    execution = kernel.execute(f"%%chat -c style-{style}\nLook.")
    assert execution.status == "ok", execution.error_text()
    stand_ins = [h["value"] for h in opened(execution, "HTMLModel") if "(…)" in h["value"]]
    assert [v.rsplit(">", 2)[-2].split("<")[0] for v in stand_ins] == [
        "⚙ list_variables(…)",
        "⚙ describe_variable(…)",
    ]
    titles = [a["titles"] for a in opened(execution, "AccordionModel")]
    assert titles == [
        ["⚙ list_variables() → 2 lines"],
        ['⚙ describe_variable(name="sales") → 19 lines'],
    ]


def test_an_interrupt_in_the_middle_of_round_two(kernel: Kernel, server: FakeOpenRouter) -> None:
    words = " ".join(f"word{i}" for i in range(400))
    held = threading.Event()  # never opened: round two is mid-way when the interrupt comes
    server.enqueue(
        StreamReply(text="", tool_calls=[ToolCall("list_variables", {}, "vars")]),
        StreamReply(text=words, chunk_chars=6, gates={60: held}),
    )
    execution = kernel.execute("%%chat -c stop\nTalk slowly.", interrupt_after="word3")
    assert execution.status == "error"
    assert execution.error_text() == (
        "UsageError: Interrupted (partial answer kept in the conversation)."
    )
    outputs = displayed(execution)
    assert outputs[0]["data"]["text/plain"].startswith("⚙ list_variables() → 2 lines")
    partial = outputs[1]["data"]["text/plain"]
    assert partial.startswith("word0 word1 word2 word3") and len(partial) < len(words)
    assert outputs[2]["data"]["text/plain"].startswith(
        "⏹ Interrupted: the partial answer is kept in the conversation.\n"
    )
    messages = value(kernel, "__import__('ormagic').conversation('stop').messages")
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[2]["content"].startswith("1 variable:\n- sales: DataFrame")
    assert messages[3]["content"] == partial
    assert value(kernel, "__import__('ormagic').conversation('stop').turns[0].interrupted")
    assert server.chat_requests()[1].client_disconnected  # round 2's response was closed
    # the history is one a server accepts: the next question sends it whole
    server.enqueue(StreamReply(text="Still here."))
    after = kernel.execute("%%chat -c stop\nAre you there?")
    assert after.status == "ok", after.error_text()
    assert server.chat_requests()[2].body["messages"][:4] == messages


def test_a_rerun_cell_replaces_the_whole_exchange(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.enqueue(
        StreamReply(text="", tool_calls=[ToolCall("describe_variable", {"name": "sales"})]),
        StreamReply(text="First answer."),
        StreamReply(text="Second answer, no tools needed."),
    )
    kernel.execute("%%chat -c again\nSummarise sales.", cell_id="again-1")
    rerun = kernel.execute("%%chat -c again\nSummarise sales briefly.", cell_id="again-1")
    assert rerun.status == "ok", rerun.error_text()
    messages = value(kernel, "__import__('ormagic').conversation('again').messages")
    assert [(m["role"], m["content"].rsplit("\n", 1)[-1]) for m in messages] == [
        ("user", "Summarise sales briefly."),
        ("assistant", "Second answer, no tools needed."),
    ]
    third = server.chat_requests()[2].body
    assert len(third["messages"]) == 1  # the re-run did not see its own earlier rounds
    history = kernel.execute("%chat history again").of_type("display_data")[0]
    assert "⚙" not in history["content"]["data"]["text/plain"]


def test_tool_arguments_and_results_arrive_escaped(kernel: Kernel, server: FakeOpenRouter) -> None:
    kernel.execute("note = '<img src=x onerror=alert(1)>'")
    server.enqueue(
        StreamReply(
            text="",
            tool_calls=[
                ToolCall("describe_variable", {"name": "note"}, "a"),
                ToolCall("search_notebook", {"text": "<script>alert(2)</script>"}, "b"),
            ],
        ),
        StreamReply(text="Done."),
    )
    execution = kernel.execute("%%chat -c evil\nLook at note.")
    assert execution.status == "ok", execution.error_text()
    assert server.chat_requests()[1].body["messages"][2]["content"] == (
        "str, 28 characters: '<img src=x onerror=alert(1)>'"
    )
    for message in execution.messages:
        content = dict(message["content"])
        content.pop("metadata", None)  # data for programs (the raw arguments), never rendered
        data = {k: v for k, v in content.pop("data", {}).items() if k != "text/plain"}
        state = data.get("state", {})
        titles = state.pop("titles", None) if isinstance(state, dict) else None
        if titles:  # Accordion titles are plain text in every frontend
            assert all(isinstance(t, str) for t in titles)
        blob = json.dumps([content, data])
        assert "<img" not in blob
        assert "<script" not in blob
    final = displayed(execution)[0]["data"]["text/html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in final
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in final


def test_stopping_while_the_catalogue_is_read_sends_nothing(server: FakeOpenRouter) -> None:
    # a fresh engine must read /models to learn whether the model takes tools; the stop
    # button then ends the cell with one line, and no question was sent
    own = start_kernel(server)
    try:
        server.models_delay = 3600
        execution = own.execute(
            "%%chat -c early\nHello?",
            interrupt_when=lambda: any(r.path.endswith("/models") for r in server.requests),
        )
        assert execution.status == "error"
        assert execution.error_text() == (
            "UsageError: Interrupted before the question was sent; nothing changed."
        )
        assert server.chat_requests() == []
        assert [o["output_type"] for o in execution.final_outputs()] == ["stream"]
        assert value(own, "len(__import__('ormagic').conversation('early').turns)") == 0
    finally:
        own.shutdown()
