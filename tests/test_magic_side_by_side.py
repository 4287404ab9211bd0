"""``%%chat -m A -m B`` in a real IPython shell (terminal output) against the fake server."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

import ormagic
from ormagic.testing.fake_openrouter import ErrorReply, FakeOpenRouter, StreamReply

A, B = "deepseek/deepseek-v4-flash", "openai/gpt-5-nano"


def test_sections_then_footers_in_a_terminal(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.enqueue_for(A, StreamReply(text="Alpha.", provider="DeepSeek"))
    fake_env.enqueue_for(B, ErrorReply(402, "Insufficient credits"))
    result = shell.run_cell(f"%%chat -c t -m {A} -m {B} -o answers\nQ", store_history=True)
    assert result.success
    out = capsys.readouterr().out
    assert out.startswith(f"⋯ Asking {A}, {B} side by side\n")
    assert f"\n── [1] {A} ──\nAlpha.\n" in out
    assert f"\n── [2] {B} ──\n\n" in out
    assert f"\n[1] {A} via DeepSeek · " in out
    assert "\n[2] ⚠ Not enough credits (Insufficient credits)." in out
    assert out.endswith(f"The conversation continues from [1] {A} (%chat pick N to change).\n")
    assert shell.user_ns["answers"] == ["Alpha.", ""]  # -o: every answer, in -m order
    assert [r.model for r in ormagic.conversation("t").turns[0].responses] == [A, B]


def test_one_model_keeps_todays_single_answer(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.enqueue(StreamReply(text="Just one.", provider="OpenAI"))
    assert shell.run_cell(f"%%chat -c one -m {B} -o one\nQ").success
    out = capsys.readouterr().out
    assert out.startswith("Just one.\n")
    assert "side by side" not in out
    assert shell.user_ns["one"] == "Just one."
    assert fake_env.chat_requests()[0].body["model"] == B


def test_code_of_the_kept_answer_goes_below(
    shell: InteractiveShell, fake_env: FakeOpenRouter
) -> None:
    fake_env.enqueue_for(A, ErrorReply(500, "Internal"))
    fake_env.enqueue_for(B, StreamReply(text="Try:\n\n```python\nprint(2 + 2)\n```\n"))
    assert shell.run_cell(f"%%chat -c code -m {A} -m {B} -f code\nQ").success
    assert shell.rl_next_input == "print(2 + 2)"


def test_too_many_models_is_one_line_and_sends_nothing(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    models = " ".join(f"-m m/{i}" for i in range(5))
    result = shell.run_cell(f"%%chat {models}\nQ")
    assert not result.success
    err = capsys.readouterr().err
    assert err == (
        "UsageError: Side by side takes at most 4 models (5 given): more columns do not fit "
        "a notebook.\n"
    )
    assert fake_env.requests == []


def test_no_model_answering_ends_the_cell_with_one_line(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.enqueue_for(A, ErrorReply(402, "Insufficient credits"))
    fake_env.enqueue_for(B, ErrorReply(402, "Insufficient credits"))
    result = shell.run_cell(f"%%chat -c none -m {A} -m {B}\nQ")
    assert not result.success
    assert (
        capsys.readouterr().err
        == "UsageError: None of the models answered; each column says why.\n"
    )
    assert ormagic.conversation("none").turns == []


class _Stopped:
    """A value whose text the user stops (the stop button, while a slow repr runs)."""

    def __format__(self, spec: str) -> str:
        raise KeyboardInterrupt

    __str__ = __repr__ = lambda self: self.__format__("")


@pytest.mark.parametrize("models", [f"-m {A}", f"-m {A} -m {B}"], ids=["one", "side-by-side"])
def test_stopping_while_the_question_is_prepared_is_one_line_and_sends_nothing(
    shell: InteractiveShell,
    fake_env: FakeOpenRouter,
    capsys: pytest.CaptureFixture[str],
    models: str,
) -> None:
    shell.user_ns["slow"] = _Stopped()
    result = shell.run_cell(f"%%chat -c stop {models}\nWhat is {{slow}}?")
    assert not result.success
    assert capsys.readouterr().err == (
        "UsageError: Interrupted before the question was sent; nothing changed.\n"
    )
    assert fake_env.requests == []
    assert ormagic.conversation("stop").turns == []


def test_code_blocks_for_a_new_cell_are_the_ones_the_answer_shows(
    shell: InteractiveShell, fake_env: FakeOpenRouter
) -> None:
    # a fence in a list item counts, a longer closing fence closes, an unclosed one
    # (the answer cut short) is unfinished code and stays out
    fake_env.enqueue_for(
        B,
        StreamReply(
            text="1. First:\n\n   ```python\n   a = 1\n   ```\n\n````\nb = 2\n`````\n\n```\nc = ("
        ),
    )
    fake_env.enqueue_for(A, ErrorReply(500, "Internal"))
    assert shell.run_cell(f"%%chat -c blocks -m {A} -m {B} -f code\nQ").success
    assert shell.rl_next_input == "a = 1\nb = 2"
