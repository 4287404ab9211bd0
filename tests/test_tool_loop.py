"""The tool loop in a real IPython shell (terminal view) against the loopback fake server:
the messages sent back in each round, the limits, every error case, interrupts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from waiting import eventually

import ormagic
from ormagic.engine.engine import Engine, set_default_engine
from ormagic.engine.export import export_json, load_json
from ormagic.engine.options import AskOptions
from ormagic.engine.tools import ToolRegistry, user_tools
from ormagic.events import TextDelta, ToolResult, ToolRound
from ormagic.testing.fake_openrouter import ErrorReply, FakeOpenRouter, StreamReply, ToolCall

SALES_CELL = (
    "import pandas as pd\n"
    "sales = pd.DataFrame({'month': ['Jan', 'Feb', 'Mar'], 'amount': [10.5, 20.0, None]})"
)


def run(ip: InteractiveShell, code: str) -> Any:
    return ip.run_cell(code, store_history=True)


def tool_messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["tool_call_id"], m["content"]) for m in body["messages"] if m["role"] == "tool"]


def names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools", ())]


BUILTINS = [
    "list_variables",
    "describe_variable",
    "preview_rows",
    "value_counts",
    "read_cell",
    "search_notebook",
    "last_error",
]


def test_a_user_tool_with_a_docstring_schema_is_offered_and_called(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(
        shell,
        "import ormagic\n"
        "@ormagic.tool\n"
        "def monthly_total(month: str, region: str | None = None) -> float:\n"
        '    """Total sales of one month.\n\n'
        "    Args:\n"
        "        month: The month as YYYY-MM.\n"
        "        region: Only this region (all when omitted).\n"
        '    """\n'
        "    return {'2024-03': 1234.5}.get(month, 0.0)\n",
    )
    fake_env.enqueue(
        StreamReply(text="", tool_calls=[ToolCall("monthly_total", {"month": "2024-03"}, "c1")]),
        StreamReply(text="March sold 1,234.50."),
    )
    assert run(shell, "%%chat -c mine\nHow much in March 2024?").success
    first, second = (r.body for r in fake_env.chat_requests())
    assert names(first) == [*BUILTINS, "monthly_total"]
    assert first["tools"][-1] == {
        "type": "function",
        "function": {
            "name": "monthly_total",
            "description": "Total sales of one month.",
            "parameters": {
                "type": "object",
                "properties": {
                    "month": {"type": "string", "description": "The month as YYYY-MM."},
                    "region": {
                        "type": ["string", "null"],
                        "description": "Only this region (all when omitted).",
                        "default": None,
                    },
                },
                "required": ["month"],
                "additionalProperties": False,
            },
        },
    }
    assert second["tools"] == first["tools"]  # on every request of the exchange
    assert "tool_choice" not in first and "tool_choice" not in second
    assert tool_messages(second) == [("c1", "1234.5")]
    out = capsys.readouterr().out
    assert '⚙ monthly_total(month="2024-03") → 1 line\nMarch sold 1,234.50.\n' in out
    assert " · 1 tool call\n" in out


def test_every_error_is_one_line_for_the_model_and_the_cell(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, SALES_CELL)
    run(
        shell,
        "import ormagic\n"
        "@ormagic.tool\n"
        "def flaky(n: int) -> str:\n"
        '    """Fails."""\n'
        "    raise RuntimeError(f'backend down for {n}')\n",
    )
    calls = [
        ToolCall("describe_variable", '{"name": "sales"', "bad_json"),
        ToolCall("drop_table", {"name": "sales"}, "unknown"),
        ToolCall("preview_rows", {"rows": 3}, "missing"),
        ToolCall("preview_rows", {"name": "sales", "rows": "three"}, "wrong_type"),
        ToolCall("flaky", {"n": 2}, "raises"),
        ToolCall("describe_variable", {"name": "sale"}, "no_such_name"),
    ]
    fake_env.enqueue(StreamReply(text="", tool_calls=calls), StreamReply(text="Sorry."))
    assert run(shell, "%%chat -c errors\nLook around.").success
    assert tool_messages(fake_env.chat_requests()[1].body) == [
        (
            "bad_json",
            "Error: the arguments of describe_variable are not valid JSON (Expecting ',' "
            "delimiter at character 16); send one JSON object.",
        ),
        (
            "unknown",
            "Error: there is no tool named 'drop_table'; the tools are: "
            + ", ".join([*BUILTINS, "flaky"])
            + ".",
        ),
        ("missing", "Error: preview_rows: missing required argument 'name'."),
        ("wrong_type", "Error: preview_rows: argument 'rows' must be an integer, not a string."),
        ("raises", "Error: flaky raised RuntimeError: backend down for 2"),
        (
            "no_such_name",
            "Error: There is no variable named 'sale'. Did you mean sales? "
            "list_variables() lists them.",
        ),
    ]
    out = capsys.readouterr().out
    assert '⚙ drop_table(name="sales") → Error: there is no tool named' in out
    assert "⚙ flaky(n=2) → Error: flaky raised RuntimeError: backend down for 2\n" in out
    assert "Traceback" not in out
    assert " · 6 tool calls\n" in out


def test_the_round_limit_then_one_answer_without_tools(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, SALES_CELL)
    run(shell, "%config ChatMagics.max_tool_rounds = 2")
    # a model that never stops calling tools (two different calls: no repetition)
    fake_env.fallback = StreamReply(
        text="Here is what I found.",
        tool_calls=[ToolCall("list_variables"), ToolCall("describe_variable", {"name": "sales"})],
    )
    assert run(shell, "%%chat -c limit\nExplore.").success
    bodies = [r.body for r in fake_env.chat_requests()]
    assert len(bodies) == 3
    assert [b.get("tool_choice") for b in bodies] == [None, None, "none"]
    assert all(names(b) == BUILTINS for b in bodies)
    last_result = bodies[2]["messages"][-1]
    assert last_result["role"] == "tool"
    assert last_result["content"].endswith(
        "\n\n[ormagic: that was the last tool round (2); answer now with what you have, "
        "without calling tools.]"
    )
    out = capsys.readouterr().out
    assert "Tool round limit (2) reached: the model was asked to answer with what it has.\n" in out
    assert (
        "ⓘ Tool round limit (2) reached: the model was asked to answer with what it has.\n" in out
    )
    assert " · 4 tool calls\n" in out
    messages = ormagic.conversation("limit").messages
    assert [m["role"] for m in messages] == [
        "user",
        *("assistant", "tool", "tool") * 2,
        "assistant",
    ]
    assert messages[-1]["content"] == "Here is what I found."
    assert messages[1:-1] == bodies[2]["messages"][1:]  # kept exactly as sent


def test_a_repeated_call_gets_an_error_then_the_exchange_stops(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, SALES_CELL)
    fake_env.fallback = StreamReply(
        text="", tool_calls=[ToolCall("describe_variable", {"name": "sales"})]
    )
    assert run(shell, "%%chat -c loop\nDescribe sales.").success
    bodies = [r.body for r in fake_env.chat_requests()]
    assert len(bodies) == 4  # the fourth identical call is not answered by a new request
    results = [m["content"] for m in bodies[3]["messages"] if m["role"] == "tool"]
    assert results[0].startswith("pandas DataFrame, 3 rows")
    assert results[1] == results[0]
    assert results[2] == (
        "Error: this is the 3rd identical call to describe_variable in a row and its result "
        "has not changed; use the results you have or try something else."
    )
    messages = ormagic.conversation("loop").messages
    assert messages[-1] == {
        "role": "tool",
        "tool_call_id": "call_0_fake",
        "content": "Error: not run: the same call was repeated again; stopped.",
    }
    out = capsys.readouterr().out
    assert (
        '⚠ Stopped: the model kept repeating describe_variable(name="sales") with the same '
        "arguments.\n" in out
    )
    # the history stays one the API accepts: the next question goes through
    fake_env.fallback = None
    fake_env.enqueue(StreamReply(text="OK."))
    assert run(shell, "%%chat -c loop\nAnd now?").success


def test_calls_cut_by_max_tokens_are_not_run(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, SALES_CELL)
    fake_env.enqueue(
        StreamReply(
            text="",
            tool_calls=[ToolCall("preview_rows", '{"name": "sales", "ro', "cut")],
            finish_reason="length",
        )
    )
    assert run(shell, "%%chat -c cut --max-tokens 20\nShow rows.").success
    assert len(fake_env.chat_requests()) == 1
    assert ormagic.conversation("cut").messages[-1] == {
        "role": "tool",
        "tool_call_id": "cut",
        "content": "Error: not run: the answer hit max_tokens while writing this call, so its "
        "arguments may be cut short.",
    }
    out = capsys.readouterr().out
    assert (
        "⚠ The answer hit the --max-tokens cap while writing a tool call, so the call was not "
        "run; raise --max-tokens.\n" in out
    )


def test_an_interrupt_while_a_tool_runs_keeps_the_results_already_computed(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, SALES_CELL)
    # the kernel's stop button raises KeyboardInterrupt in the main thread, where the
    # tool runs: here the tool is where it lands
    run(
        shell,
        "import ormagic\n"
        "@ormagic.tool\n"
        "def slow_query(sql: str) -> str:\n"
        '    """Runs a slow query."""\n'
        "    raise KeyboardInterrupt\n",
    )
    fake_env.enqueue(
        StreamReply(
            reasoning="Two things to check.",
            text="Checking.",
            tool_calls=[
                ToolCall("list_variables", {}, "a"),
                ToolCall("slow_query", {"sql": "select 1"}, "b"),
                ToolCall("last_error", {}, "c"),
            ],
        )
    )
    result = run(shell, "%%chat -c stop\nCheck.")
    assert not result.success
    assert str(result.error_in_exec) == "Interrupted (partial answer kept in the conversation)."
    messages = ormagic.conversation("stop").messages
    assert [(m["role"], m.get("tool_call_id")) for m in messages] == [
        ("user", None),
        ("assistant", None),
        ("tool", "a"),
        ("tool", "b"),
        ("tool", "c"),
    ]
    assert messages[2]["content"].startswith("1 variable:\n- sales: DataFrame, 3 rows")
    assert [m["content"] for m in messages[3:]] == [
        "Error: not run: the user interrupted the answer.",
        "Error: not run: the user interrupted the answer.",
    ]
    assert messages[1]["content"] == "Checking."
    assert ormagic.conversation("stop").turns[0].interrupted
    assert len(fake_env.chat_requests()) == 1  # no next round after the interrupt
    out = capsys.readouterr().out
    assert "⏹ Interrupted: the partial answer is kept in the conversation.\n" in out
    fake_env.enqueue(StreamReply(text="Still here."))
    assert run(shell, "%%chat -c stop\nGo on.").success  # the fake accepts the history


def test_no_tools_for_a_model_without_them_said_once(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    llama = "meta-llama/llama-3.1-8b-instruct"
    run(shell, f"%%chat -c plain -m {llama}\nHi")
    run(shell, f"%%chat -c plain -m {llama}\nAgain")
    bodies = [r.body for r in fake_env.chat_requests()]
    assert ["tools" in b for b in bodies] == [False, False]
    footers = [line for line in capsys.readouterr().out.splitlines() if " via " in line]
    assert footers[0].endswith(f" · no tools: {llama} does not support tool calling")
    assert "no tools" not in footers[1]
    assert len([r for r in fake_env.requests if r.path.endswith("/models")]) == 1


def test_the_catalogue_is_read_once_whichever_command_reads_it_first(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    # a map's price estimate in a fresh session, then a question (whether the model takes
    # tools), then %chat models: one GET /models for all three (it is cached 300 s)
    ormagic.map("Say {item}", ["a"], model="meta-llama/llama-3.1-8b-instruct", progress=False)
    run(shell, "%%chat -c once -m meta-llama/llama-3.1-8b-instruct\nHi")
    run(shell, "%chat models llama")
    capsys.readouterr()
    assert len([r for r in fake_env.requests if r.path.endswith("/models")]) == 1


def test_tools_off_for_a_cell_or_for_the_session(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.enqueue(
        StreamReply(text="", tool_calls=[ToolCall("list_variables", {}, "x")]),
        StreamReply(text="Plain."),
    )
    assert run(shell, "%%chat -c off --no-tools\nAnything?").success
    run(shell, "%config ChatMagics.tools = False")
    assert run(shell, "%%chat -c off2\nAnything?").success
    assert ["tools" in r.body for r in fake_env.chat_requests()] == [False, False]
    # a model that calls tools anyway gets an answer for each call, and nothing runs
    assert ormagic.conversation("off").messages[-1] == {
        "role": "tool",
        "tool_call_id": "x",
        "content": "Error: not run: no tools are available for this question.",
    }
    assert "⚠ The model asked for tools, but tools are off for this question.\n" in (
        capsys.readouterr().out
    )


def test_usage_adds_up_over_rounds_and_history_shows_each_call(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, SALES_CELL)

    def usage(prompt: int, completion: int, cost: float) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cost": cost,
        }

    fake_env.enqueue(
        StreamReply(
            text="",
            tool_calls=[ToolCall("value_counts", {"name": "sales", "column": "month"})],
            usage=usage(100, 10, 0.001),
        ),
        StreamReply(text="Three months.", usage=usage(150, 5, 0.002)),
    )
    run(shell, "%%chat -c sums\nHow many months?")
    out = capsys.readouterr().out
    assert " · 250 in / 15 out · $0.003 · " in out
    turn = ormagic.conversation("sums").turns[0]
    assert (turn.usage.prompt_tokens, turn.usage.completion_tokens, turn.cost) == (250, 15, 0.003)
    first, second = turn.response.rounds
    assert (first.cost, second.cost) == (0.001, 0.002)
    assert first.generation_id != second.generation_id == turn.generation_id
    assert (first.generation_id or "").startswith("gen-")
    run(shell, "%chat history sums")
    assert capsys.readouterr().out == (
        "[1] You: How many months?\n"
        '[1] ⚙ value_counts(name="sales", column="month") → 4 lines\n'
        "[1] deepseek/deepseek-v4-flash: Three months.\n"
    )


def test_tools_command_lists_every_tool(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, "%chat tools")
    first = capsys.readouterr().out
    assert first.startswith(
        "Tools are on: at most 8 rounds of calls per question (%config ChatMagics.tools, "
        "ChatMagics.max_tool_rounds; --no-tools for one cell).\n\nBuilt-in, read-only:\n"
        "  list_variables()\n"
        "      List the notebook's variables: name, type, shape or length, approximate size.\n"
    )
    assert (
        "  preview_rows(name: string, start: integer = 0, rows: integer = 10, "
        "columns: array of string | null = null)\n" in first
    )
    assert "      name: The variable's name, as list_variables shows it" in first
    assert first.endswith("Yours: none yet (decorate a function with @ormagic.tool).\n")
    run(
        shell,
        "import ormagic\nfrom typing import Literal\n"
        "@ormagic.tool\n"
        "def convert(amount: float, to: Literal['EUR', 'USD'] = 'EUR') -> float:\n"
        '    """Convert money.\n\n    Args:\n        amount: How much.\n    """\n'
        "    return amount\n",
    )
    capsys.readouterr()
    run(shell, "%chat tools")
    assert capsys.readouterr().out.endswith(
        'Yours (@ormagic.tool):\n  convert(amount: number, to: "EUR" | "USD" = "EUR")\n'
        "      Convert money.\n      amount: How much.\n"
    )


def test_export_and_load_keep_the_tool_messages(
    shell: InteractiveShell, fake_env: FakeOpenRouter, tmp_path: Path
) -> None:
    run(shell, SALES_CELL)
    fake_env.enqueue(
        StreamReply(reasoning="Look.", text="", tool_calls=[ToolCall("list_variables", {}, "l")]),
        StreamReply(text="One DataFrame."),
    )
    run(shell, "%%chat -c saved\nWhat is there?")
    path = tmp_path / "saved.json"
    export_json(ormagic.conversation("saved"), path)
    loaded = load_json(path)
    assert loaded.messages == ormagic.conversation("saved").messages
    assert [m["role"] for m in loaded.messages] == ["user", "assistant", "tool", "assistant"]
    assert loaded.turns[0].answer == "One DataFrame."
    stray = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    stray.append({"role": "tool", "tool_call_id": "zz", "content": "?"})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(stray))
    with pytest.raises(ormagic.ConfigError) as info:
        load_json(bad)
    assert str(info.value) == (
        f"{bad}: message 3 is a tool result for 'zz', which the assistant did not call"
    )


def test_an_interrupted_round_keeps_its_generation_for_the_cost_lookup(
    fake_openrouter: FakeOpenRouter,
) -> None:
    registry = ToolRegistry()

    def lookup(key: str) -> str:
        """Look a key up."""
        return f"value of {key}"

    registry.register(lookup)
    engine = Engine(
        env={
            "OPENROUTER_API_KEY": fake_openrouter.api_key,
            "OPENROUTER_BASE_URL": fake_openrouter.base_url,
        },
        tools=registry,
    )
    fake_openrouter.enqueue(
        StreamReply(text="", tool_calls=[ToolCall("lookup", {"key": "k"}, "c")]),
        StreamReply(text=" ".join(f"w{i}" for i in range(50)), chunk_chars=3),
    )
    try:
        _interrupt_in_round_two(engine)
    finally:
        engine.close()


def _interrupt_in_round_two(engine: Engine) -> None:
    exchange = engine.exchange(engine.prepare("Look k up.", AskOptions(conversation="gen")))
    seen = []
    for event in exchange:
        seen.append(event)
        if isinstance(event, TextDelta):
            break  # the consumer stops in round 2: the connection is closed
    exchange.close()
    assert [type(e) for e in seen if isinstance(e, ToolResult | ToolRound)] == [
        ToolResult,
        ToolRound,
    ]
    turn = exchange.result.turn
    assert turn is not None and turn.interrupted
    assert [m["role"] for m in turn.response.messages] == ["assistant", "tool", "assistant"]
    assert turn.response.messages[1]["content"] == "value of k"
    first, second = turn.response.rounds
    assert first.cost is not None and second.cost is None and second.generation_id
    assert engine.ledger.unresolved() == [second.generation_id]
    assert turn.cost is None  # unknown until the interrupted round's cost is looked up
    # the fake, like OpenRouter, knows the generation once it noticed the client left
    eventually(engine.resolve_costs, "the interrupted round's cost lookup")
    assert second.cost is not None
    assert turn.cost == pytest.approx(first.cost + second.cost)


def test_ormagic_ask_calls_your_tools_from_plain_python(fake_env: FakeOpenRouter) -> None:
    set_default_engine(None)
    user_tools().clear()
    try:

        @ormagic.tool
        def exchange_rate(currency: str) -> float:
            """The euro's rate against a currency.

            Args:
                currency: ISO code, like USD.
            """
            return {"USD": 1.08}[currency]

        fake_env.enqueue(
            StreamReply(text="", tool_calls=[ToolCall("exchange_rate", {"currency": "USD"}, "r")]),
            StreamReply(text="1 EUR is 1.08 USD."),
            StreamReply(text="No tools this time."),
        )
        seen: list[Any] = []
        answer = ormagic.ask("How many dollars for a euro?", on_event=seen.append)
        # a script has no notebook: only your tools are offered
        assert names(fake_env.chat_requests()[0].body) == ["exchange_rate"]
        assert answer.text == "1 EUR is 1.08 USD."
        assert answer.tool_calls == (
            ToolResult("r", "exchange_rate", '{"currency": "USD"}', "1.08", False, 1),
        )
        assert answer.footer.endswith(" · 1 tool call")
        assert [type(e) for e in seen if isinstance(e, ToolResult | ToolRound)] == [
            ToolResult,
            ToolRound,
        ]
        ormagic.ask("Again?", tools=False)
        assert "tools" not in fake_env.chat_requests()[2].body
    finally:
        set_default_engine(None)
        user_tools().clear()


def test_a_refused_later_round_keeps_the_first_and_its_cost(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, SALES_CELL)
    fake_env.enqueue(
        StreamReply(
            text="Looking.",
            tool_calls=[ToolCall("list_variables", {}, "v")],
            usage={"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48, "cost": 0.01},
        ),
        ErrorReply(400, "Provider returned error"),
    )
    result = run(shell, "%%chat -c refused\nWhat is there?")
    assert not result.success
    assert (
        str(result.error_in_exec)
        == "Bad request: Provider returned error. Check the model id and options."
    )
    [turn] = ormagic.conversation("refused").turns
    assert [m["role"] for m in turn.response.messages] == ["assistant", "tool"]
    assert turn.error == "Bad request: Provider returned error. Check the model id and options."
    assert (turn.usage.prompt_tokens, turn.cost) == (40, 0.01)  # the refused round cost nothing
    assert len(turn.response.rounds) == 1
    out = capsys.readouterr().out
    assert "⚙ list_variables() → 2 lines\n" in out
    assert "⚠ Bad request: Provider returned error. Check the model id and options.\n" in out
