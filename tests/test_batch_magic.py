"""%%chat --each in a real IPython shell (terminal-style output) against the fake server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from ormagic.jupyter.each import _one_model
from ormagic.testing._replies import content_text, request_messages
from ormagic.testing.fake_openrouter import ErrorReply, FakeOpenRouter, Reply, StreamReply


def prompt_of(body: Any) -> str:
    return content_text(request_messages(body)[-1]["content"])


def echo(body: dict[str, Any]) -> Reply:
    return StreamReply(text="re: " + prompt_of(body))


@pytest.fixture
def shell(shell: InteractiveShell, fake_env: FakeOpenRouter) -> InteractiveShell:
    """conftest's shell, with every row answered by its own prompt and ``df`` defined."""
    fake_env.respond = echo
    shell.run_cell(
        "import pandas as pd\ndf = pd.DataFrame({'text': ['tea', 'soup']}, index=[3, 1])"
    )
    return shell


def error_line(ip: InteractiveShell, cell: str, capsys: pytest.CaptureFixture[str]) -> str:
    result = ip.run_cell(cell)
    assert isinstance(result.error_in_exec, UsageError)
    return str(result.error_in_exec)


def test_each_stores_the_answers_in_answers_by_default_or_in_o(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shell.run_cell("%%chat --each df --max-tokens 20\nLabel {text}").success
    assert shell.user_ns["answers"].to_dict() == {3: "re: Label tea", 1: "re: Label soup"}
    assert shell.run_cell(
        "%%chat --each df -o labels --max-tokens 20 -m openai/gpt-5-nano\n{text}?"
    ).success
    assert shell.user_ns["labels"].tolist() == ["re: tea?", "re: soup?"]
    assert fake_env.chat_requests()[-1].body["model"] == "openai/gpt-5-nano"
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("2 rows · 2 to send · ~") and err[1].startswith("2 rows · ")


def test_each_with_a_schema_variable_gives_a_dataframe(
    shell: InteractiveShell, fake_env: FakeOpenRouter
) -> None:
    fake_env.respond = lambda body: StreamReply(
        text=json.dumps({"kind": prompt_of(body), "hot": True})
    )
    shell.run_cell("shape = {'kind': str, 'hot': bool}")
    assert shell.run_cell("%%chat --each df --schema shape --max-tokens 20\n{text}").success
    assert shell.user_ns["answers"].to_dict("index") == {
        3: {"kind": "tea", "hot": True},
        1: {"kind": "soup", "hot": True},
    }


def test_context_is_sent_with_each_row_only_when_asked(
    shell: InteractiveShell, fake_env: FakeOpenRouter
) -> None:
    shell.run_cell("marker = 41 + 1", store_history=True)
    shell.run_cell("%%chat --each df --max-tokens 20\n{text}", store_history=True)
    assert sorted(prompt_of(r.body) for r in fake_env.chat_requests()) == ["soup", "tea"]
    fake_env.reset()
    fake_env.respond = echo
    shell.run_cell("%%chat --each df --max-tokens 20 --context all\n{text}", store_history=True)
    sent = [prompt_of(r.body) for r in fake_env.chat_requests()]
    assert all(text.startswith("Notebook context") and "marker = 41 + 1" in text for text in sent)
    assert sorted(text.rsplit("\n\n", 1)[1] for text in sent) == ["soup", "tea"]


def test_deferred_rows_arrive_when_the_cell_is_run_again(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    cell = "%%chat --each df --deferred --max-tokens 20\nLabel {text}"
    assert shell.run_cell(cell).success
    assert shell.user_ns["answers"].isna().all()
    [job_id] = fake_env.batches.jobs
    assert f"batch job {job_id}: validating (0 of 2 done)" in capsys.readouterr().err
    for _ in range(3):  # in_progress, finalizing, completed
        assert shell.run_cell(cell).success
    assert shell.user_ns["answers"].to_dict() == {3: "re: Label tea", 1: "re: Label soup"}
    assert list(fake_env.batches.jobs) == [job_id]  # nothing was submitted twice
    assert fake_env.chat_requests() == []


def test_no_cache_sends_every_row_again(shell: InteractiveShell, fake_env: FakeOpenRouter) -> None:
    for _ in range(2):
        shell.run_cell("%%chat --each df --no-cache --max-tokens 20\n{text}")
    assert len(fake_env.chat_requests()) == 4


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%%chat --concurrency 4\nhi", "--concurrency only applies with --each NAME."),
        (
            "%%chat --deferred --no-cache\nhi",
            "--no-cache, --deferred only applies with --each NAME.",
        ),
        ("%%chat --each df --fix\n{text}", "--each does not take --fix."),
        ("%%chat --each df -f code --new\n{text}", "--each does not take --new, -f/--format."),
        (
            "%%chat --each df -c talk --no-interpolate --hide-reasoning --no-tools\n{text}",
            "--each does not take --no-interpolate, --hide-reasoning, --no-tools, "
            "-c/--conversation.",
        ),
        (
            "%%chat --each nothing\n{item}",
            "--each nothing: there is no variable 'nothing' in this kernel.",
        ),
        ("%%chat --each df -o 2x\n{text}", "-o/--out needs a variable name, not '2x'."),
        (
            "%%chat --each df\nLabel {review}",
            "The template uses {review}, which the rows do not have; they have: text, index.",
        ),
        (
            "%%chat --each df --concurrency 0\n{text}",
            "concurrency must be a positive whole number, not 0.",
        ),
    ],
)
def test_bad_flags_are_one_line(
    shell: InteractiveShell,
    fake_env: FakeOpenRouter,
    capsys: pytest.CaptureFixture[str],
    cell: str,
    message: str,
) -> None:
    assert error_line(shell, cell, capsys) == message
    assert fake_env.chat_requests() == []


def test_one_model_per_batch() -> None:
    assert _one_model(None) is None
    assert _one_model("a/b") == "a/b"
    assert _one_model(["a/b"]) == "a/b"  # -m made repeatable elsewhere gives a list
    with pytest.raises(UsageError) as caught:
        _one_model(["a/b", "c/d"])
    assert str(caught.value) == "--each runs one model: give a single -m."


def test_a_batch_that_stops_ends_the_cell_with_one_line_and_keeps_what_was_answered(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    # no credits left after the first row: "Run all" must stop here, not go on with holes
    fake_env.respond = lambda body: (
        echo(body) if "tea" in prompt_of(body) else ErrorReply(402, "Insufficient credits")
    )
    line = error_line(
        shell, "%%chat --each df --max-tokens 20 --concurrency 1\nLabel {text}", capsys
    )
    assert line == (
        "Stopped after 1 of 2 rows: Not enough credits (Insufficient credits). Add credits at "
        "https://openrouter.ai/settings/credits or lower --max-tokens. The answers are in "
        "answers and in the cache: run the cell again to send the rest."
    )
    assert shell.user_ns["answers"].to_dict() == {3: "re: Label tea", 1: None}
