"""The magics in a real IPython shell (terminal-style output) against the fake server."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import new_shell
from IPython.core.interactiveshell import InteractiveShell

import ormagic
from ormagic.testing.fake_openrouter import ErrorReply, FakeOpenRouter, StreamReply


def run(ip: InteractiveShell, code: str) -> Any:
    return ip.run_cell(code, store_history=True)


def test_loading_prints_nothing_and_registers_both_magics(
    fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    ip = new_shell()
    try:
        ip.run_line_magic("load_ext", "ormagic")
        assert capsys.readouterr() == ("", "")
        assert "chat" in ip.magics_manager.magics["cell"]
        assert "chat" in ip.magics_manager.magics["line"]
        assert fake_env.requests == []  # no network I/O at load
    finally:
        InteractiveShell.clear_instance()


def test_terminal_output_is_plain_text(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.enqueue(StreamReply(reasoning="Thinking hard.", text="**Four.**", provider="DeepSeek"))
    result = run(shell, "%%chat\nWhat is 2+2?")
    assert result.success
    out = capsys.readouterr().out
    assert out.startswith("Thinking…\nThinking hard.\n\n**Four.**\n")
    assert "deepseek/deepseek-v4-flash via DeepSeek · " in out


def test_precedence_flag_then_config_then_environment(
    shell: InteractiveShell, fake_env: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORMAGIC_MODEL", "env/model")
    run(shell, "%%chat -c p\nA")
    run(shell, "%config ChatMagics.model = 'config/model'")
    run(shell, "%%chat -c p\nB")
    run(shell, "%%chat -c p -m flag/model\nC")
    assert [r.body["model"] for r in fake_env.chat_requests()] == [
        "env/model",
        "config/model",
        "flag/model",
    ]


def test_budget_guard_refuses_until_raised(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.enqueue(
        StreamReply(
            text="ok",
            usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cost": 0.002},
        )
    )
    run(shell, "%config ChatMagics.max_cost = 0.001")
    assert run(shell, "%%chat -c b\nFirst").success
    capsys.readouterr()
    refused = run(shell, "%%chat -c b\nSecond")
    assert not refused.success
    assert capsys.readouterr().err.strip() == (
        "UsageError: Budget reached: this session spent $0.002 of max_cost $0.001. "
        "Raise it with %config ChatMagics.max_cost = …"
    )
    assert len(fake_env.chat_requests()) == 1
    run(shell, "%chat config max_cost=0.01")
    assert run(shell, "%%chat -c b\nThird").success
    assert len(fake_env.chat_requests()) == 2


def test_routing_flags_fill_the_request(shell: InteractiveShell, fake_env: FakeOpenRouter) -> None:
    run(
        shell,
        "%%chat --fallback anthropic/claude-sonnet-4.6 --fallback openai/gpt-5-nano "
        "--provider deepinfra --provider novita --provider-sort price --no-fallbacks\nHi",
    )
    body = fake_env.chat_requests()[0].body
    assert body["models"] == ["anthropic/claude-sonnet-4.6", "openai/gpt-5-nano"]
    assert body["provider"] == {
        "order": ["deepinfra", "novita"],
        "sort": "price",
        "allow_fallbacks": False,
    }


def test_fallback_model_is_said_plainly(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.enqueue(
        StreamReply(text="Hi", model="anthropic/claude-sonnet-4.6", provider="Anthropic")
    )
    run(shell, "%%chat --fallback anthropic/claude-sonnet-4.6\nHi")
    out = capsys.readouterr().out
    assert (
        "⚠ answered by anthropic/claude-sonnet-4.6 (fallback; asked for "
        "deepseek/deepseek-v4-flash) via Anthropic"
    ) in out


def test_config_shows_settings_never_the_key(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, "%chat config model=openai/gpt-5-nano temperature=0.5")
    out = capsys.readouterr().out
    assert "\nmodel            'openai/gpt-5-nano'\n" in "\n" + out
    assert "\ntemperature      0.5\n" in out
    assert "\napi_key          set from OPENROUTER_API_KEY\n" in out
    assert fake_env.api_key not in out
    assert shell.run_line_magic("config", "ChatMagics.model") == "openai/gpt-5-nano"
    bad = run(shell, "%chat config temperature=hot")
    assert not bad.success
    assert "bad value for temperature: 'hot'" in capsys.readouterr().err
    key = run(shell, "%chat config api_key=sk-or-v1-abc")
    assert not key.success
    assert "Set the key in the environment (OPENROUTER_API_KEY)" in capsys.readouterr().err


def test_models_key_usage_commands(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, "%chat models deepseek")
    out = capsys.readouterr().out
    assert "deepseek/deepseek-v4-flash" in out
    assert "1,048,576" in out
    assert "$0.14" in out and "$0.28" in out
    run(shell, "%chat key")
    out = capsys.readouterr().out
    assert "remaining  $7.25" in out
    assert fake_env.api_key not in out
    fake_env.enqueue(
        StreamReply(
            text="ok", usage={"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}
        )
    )
    run(shell, "%%chat -c u\nHi")
    capsys.readouterr()
    run(shell, "%chat usage")
    out = capsys.readouterr().out
    assert "$0.0000042" in out  # 12 * $0.14/M + 9 * $0.28/M, from the listed prices


def test_export_and_load_round_trip(
    shell: InteractiveShell,
    fake_env: FakeOpenRouter,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_env.enqueue(StreamReply(reasoning="Hmm.", text="One."), StreamReply(text="Two."))
    run(shell, "%%chat -c lesson\nFirst?")
    run(shell, "%%chat -c lesson\nSecond?")
    messages = ormagic.conversation("lesson").messages
    run(shell, f"%chat export {tmp_path / 'lesson.json'} -c lesson")
    run(shell, f"%chat export {tmp_path / 'lesson.ipynb'} -c lesson")
    assert json.loads((tmp_path / "lesson.json").read_text())["messages"] == messages
    nb = nbformat.read(tmp_path / "lesson.ipynb", as_version=4)
    nbformat.validate(nb)
    assert [c.source for c in nb.cells if c.cell_type == "code"][1:] == [
        "%%chat -c lesson\nFirst?",
        "%%chat -c lesson\nSecond?",
    ]
    run(shell, f"%chat load {tmp_path / 'lesson.json'} -c replay")
    assert ormagic.conversation("replay").messages == messages
    capsys.readouterr()
    again = run(shell, f"%chat export {tmp_path / 'lesson.json'} -c lesson")
    assert not again.success
    assert "exists" in capsys.readouterr().err
    for path in (tmp_path / "lesson.json", tmp_path / "lesson.ipynb"):
        assert fake_env.api_key not in path.read_text()


def test_context_command_shows_without_sending(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, "sales = [1, 2, 3]\nprint('total', sum(sales))")
    capsys.readouterr()
    run(shell, "%chat context what about sales")
    out = capsys.readouterr().out
    assert out.startswith("Context for the next %%chat: about ")
    assert "print('total', sum(sales))" in out
    assert "total 6" in out
    assert "- sales: " in out
    assert fake_env.chat_requests() == []


def test_public_surface() -> None:
    assert ormagic.__all__ == sorted(ormagic.__all__)
    assert ormagic.__all__ == [
        "APIError",
        "Answer",
        "ConfigError",
        "Conversation",
        "Engine",
        "MissingKeyError",
        "OrmagicError",
        "StreamError",
        "TransportError",
        "__version__",
        "ask",
        "batch_report",
        "batch_results",
        "configure",
        "conversation",
        "load_ipython_extension",
        "map",
        "stream",
        "tool",
        "unload_ipython_extension",
    ]
    # every public name resolves, lazily
    assert all(getattr(ormagic, name) is not None for name in ormagic.__all__)


def test_answer_cut_by_max_tokens_says_so(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.enqueue(StreamReply(text="A long story that", finish_reason="length"))
    assert run(shell, "%%chat --max-tokens 5\nTell me a story").success
    out = capsys.readouterr().out
    assert "⚠ The answer hit the --max-tokens cap and is cut short; raise it for more.\n" in out
    assert fake_env.chat_requests()[0].body["max_tokens"] == 5


def test_code_format_without_code_says_so(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.enqueue(StreamReply(text="Just words, no code."))
    assert run(shell, "%%chat -f code\nExplain").success
    out = capsys.readouterr().out
    assert "The answer has no code block, so no cell was added below.\n" in out


def test_new_with_an_empty_cell_forgets_nothing(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.enqueue(StreamReply(text="Kept."))
    run(shell, "%%chat -c keep\nRemember me")
    capsys.readouterr()
    failed = run(shell, "%%chat -c keep --new\n\n")
    assert not failed.success
    assert capsys.readouterr().err.strip() == (
        "UsageError: The cell is empty: write your question below the %%chat line."
    )
    assert [t.answer for t in ormagic.conversation("keep").turns] == ["Kept."]


def test_usage_looks_up_the_cost_of_a_dropped_stream(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.enqueue(
        StreamReply(
            text="Half an",
            drop=True,
            usage={
                "prompt_tokens": 1000,
                "completion_tokens": 500,
                "total_tokens": 1500,
                "cost": 0.00028,
            },
        )
    )
    assert not run(shell, "%%chat -c cut\nGo").success
    [turn] = ormagic.conversation("cut").turns
    assert turn.cost is None and turn.generation_id is not None
    fake_env.generation_delay_polls = 1  # the first lookup finds nothing yet
    capsys.readouterr()
    run(shell, "%chat usage")
    assert "cost unknown" in capsys.readouterr().out
    run(shell, "%chat usage")
    out = capsys.readouterr().out
    assert "total: 1 turn · 1,000 in / 500 out · $0.00028 · " in out
    assert turn.cost == 0.00028
    looked_up = [r for r in fake_env.requests if r.path.endswith("/generation")]
    assert [r.query["id"] for r in looked_up] == [turn.generation_id] * 2


# -- state changes only when a question is valid ----------------------------------------


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (
            "--new --context weird",
            "UsageError: Context must be auto, none, all or a positive number of cells, "
            "not 'weird'.",
        ),
        ("--new --max-tokens 0", "UsageError: --max-tokens must be a positive number."),
        ("--new --temperature 7", "UsageError: --temperature must be between 0 and 2, not 7."),
        ("--new -o 2x", "UsageError: -o/--out needs a variable name, not '2x'."),
        (
            "--system Pirate --context -3",
            "UsageError: Context must be auto, none, all or a positive number of cells, not '-3'.",
        ),
    ],
)
def test_a_refused_question_changes_nothing(
    shell: InteractiveShell,
    fake_env: FakeOpenRouter,
    capsys: pytest.CaptureFixture[str],
    flags: str,
    error: str,
) -> None:
    fake_env.enqueue(StreamReply(text="Kept."))
    run(shell, "%%chat -c keep --system Librarian\nRemember me")
    before = ormagic.conversation("keep")
    session_id = before.session_id
    capsys.readouterr()
    refused = run(shell, f"%%chat -c keep {flags}\nAnd now?")
    assert not refused.success
    assert capsys.readouterr().err.strip() == error
    after = ormagic.conversation("keep")
    assert [t.answer for t in after.turns] == ["Kept."]
    assert (after.system, after.session_id) == ("Librarian", session_id)
    assert len(fake_env.chat_requests()) == 1


def test_new_without_a_key_forgets_nothing(
    shell: InteractiveShell,
    fake_env: FakeOpenRouter,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_env.enqueue(StreamReply(text="Kept."))
    run(shell, "%%chat -c keep\nRemember me")
    monkeypatch.delenv("OPENROUTER_API_KEY")
    capsys.readouterr()
    assert not run(shell, "%%chat -c keep --new --system Pirate\nAgain").success
    assert capsys.readouterr().err.strip() == (
        "UsageError: No OpenRouter API key: set OPENROUTER_API_KEY or `%config ChatMagics.api_key`."
    )
    conversation = ormagic.conversation("keep")
    assert ([t.answer for t in conversation.turns], conversation.system) == (["Kept."], None)


def test_an_error_before_the_answer_began_forgets_nothing(
    shell: InteractiveShell, fake_env: FakeOpenRouter
) -> None:
    fake_env.enqueue(StreamReply(text="Kept."), ErrorReply(402, "Not enough credits."))
    run(shell, "%%chat -c keep\nRemember me")
    assert not run(shell, "%%chat -c keep --new --system Pirate\nAgain").success
    conversation = ormagic.conversation("keep")
    assert ([t.answer for t in conversation.turns], conversation.system) == (["Kept."], None)


def test_new_and_reset_start_the_context_alike(
    shell: InteractiveShell, fake_env: FakeOpenRouter
) -> None:
    def context_after(start_afresh: str) -> str:
        run(shell, "before_question = 1")
        run(shell, "%%chat -c ctx\nFirst")
        run(shell, "after_question = 2")
        if start_afresh == "reset":
            run(shell, "%chat reset ctx")
            run(shell, "%%chat -c ctx\nSecond")
        else:
            run(shell, "%%chat -c ctx --new\nSecond")
        content: str = fake_env.chat_requests()[-1].body["messages"][-1]["content"]
        return content

    with_new = context_after("new")
    with_reset = context_after("reset")
    # a fresh conversation reads the most recent cells, not only those since "First"
    for content in (with_new, with_reset):
        assert "before_question = 1" in content and "after_question = 2" in content
        assert content.startswith("Notebook context (the most recently executed cells; ")


def test_a_large_value_is_bounded_in_the_prompt(
    shell: InteractiveShell, fake_env: FakeOpenRouter
) -> None:
    run(shell, "big = 'A' * 50_000 + 'middle' + 'Z' * 50_000")
    assert run(shell, "%%chat --context none\nSummarise {big}").success
    [request] = fake_env.chat_requests()
    content = request.body["messages"][-1]["content"]
    assert content.startswith("Summarise " + "A" * 3000)
    assert content.endswith("Z" * 3000)
    assert "… [92,041 characters left out] …" in content
    assert "middle" not in content
    assert len(content) < 8_100


def test_a_failing_str_is_one_line(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, "class Bad:\n    def __str__(self):\n        raise ValueError('no text for you')")
    run(shell, "bad = Bad()")
    capsys.readouterr()
    assert not run(shell, "%%chat\nWhat is {bad}").success
    assert capsys.readouterr().err.strip() == (
        "UsageError: Cannot put {bad} into the prompt: str() raised ValueError: no text for you"
    )
    assert fake_env.chat_requests() == []


def test_the_magics_settings_are_the_engines_defaults_with_the_same_values() -> None:
    # %config ChatMagics.NAME and ormagic.configure(NAME=...) set one thing: a trait the
    # engine does not know, or a default that differs, would make them disagree
    from ormagic.engine.options import Defaults
    from ormagic.jupyter.magic import SETTINGS, ChatMagics

    defaults = Defaults()
    assert tuple(f.name for f in dataclasses.fields(Defaults)) == SETTINGS
    traits = ChatMagics.class_traits()
    assert {name: traits[name].default() for name in SETTINGS} == {
        name: getattr(defaults, name) for name in SETTINGS
    }
