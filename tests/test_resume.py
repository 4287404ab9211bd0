"""Conversations picked up from the saved notebook: records, reading, resuming, commands."""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from kernel_support import Execution, start_kernel
from nbclient import NotebookClient

import ormagic
from ormagic.context.snapshot import NotebookSnapshot
from ormagic.engine.conversation import Response
from ormagic.engine.engine import Engine, default_engine, set_default_engine
from ormagic.engine.options import AskOptions
from ormagic.engine.resume import read_notebook, record, saved_ago
from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

pytestmark = pytest.mark.timeout(180)

ENCRYPTED = {"type": "reasoning.encrypted", "data": "gAAAAB+opaque/sk-or-v1-0000", "index": 1}
DETAILS = [
    {"type": "reasoning.text", "text": "Two and two.", "format": "unknown", "index": 0},
    ENCRYPTED,
]


def user(prompt: str) -> dict[str, str]:
    return {"role": "user", "content": prompt}


def saved_record(conversation: str, prompt: str, answer: str, **extra: Any) -> dict[str, Any]:
    response = Response(
        [{"role": "assistant", "content": answer}],
        model="deepseek/deepseek-v4-flash",
        provider="DeepSeek",
        generation_id=f"gen-{prompt}",
    )
    saved = record(
        conversation=conversation,
        system=None,
        session_id=f"ormagic-{conversation}",
        prompt=prompt,
        cell_id=None,
        response=response,
    )
    saved.update(extra)
    return saved


def chat_cell(source: str, *records: Mapping[str, Any], cell_id: str | None = None) -> Any:
    outputs = [
        nbformat.v4.new_output(
            "display_data", data={"text/plain": "answer"}, metadata={"ormagic": dict(saved)}
        )
        for saved in records
    ]
    cell = nbformat.v4.new_code_cell(source, outputs=outputs)
    if cell_id is not None:
        cell.id = cell_id
    return cell


def write(path: Path, *cells: Any) -> Path:
    nbformat.write(nbformat.v4.new_notebook(cells=list(cells)), path)
    return path


# -- the record ---------------------------------------------------------------------------


def test_the_record_keeps_what_the_model_needs_and_no_secret() -> None:
    key = "sk-or-v1-" + "a1" * 32
    response = Response(
        [
            {
                "role": "assistant",
                "content": f"Use {key}",
                "reasoning": "r",
                "reasoning_details": DETAILS,
            }
        ],
        model="m",
        provider="P",
        generation_id="gen-1",
    )
    saved = record(
        conversation="default",
        system="Be brief.",
        session_id="ormagic-s",
        prompt=f"my key is {key}",
        cell_id="cell-1",
        response=response,
        secrets=[key],
    )
    assert saved["prompt"] == "my key is [REDACTED]"
    assert saved["messages"][0]["content"] == "Use [REDACTED]"
    # opaque items go back byte for byte, even when they look like a key
    assert saved["messages"][0]["reasoning_details"] == DETAILS
    assert key not in json.dumps(saved)
    assert (saved["format"], saved["system"], saved["cell_id"]) == (1, "Be brief.", "cell-1")


def answer_record(content: str, **extra: Any) -> dict[str, Any]:
    response = Response([{"role": "assistant", "content": content, **extra}], model="m")
    return record(
        conversation="default",
        system=None,
        session_id="ormagic-s",
        prompt="Q",
        cell_id=None,
        response=response,
        in_output=True,
    )


def test_an_answer_shown_as_text_is_kept_once_and_read_back(tmp_path: Path) -> None:
    saved = answer_record("Two **and** two.", reasoning_details=DETAILS)
    assert saved["messages"] == [{"role": "assistant", "reasoning_details": DETAILS}]
    assert saved["content_in_output"] == "text/plain"
    # an answer with control characters shows differently: kept in the record
    escaped = answer_record("red \x1b[31m text")
    assert escaped["messages"][0]["content"] == "red \x1b[31m text"
    assert escaped["content_in_output"] is None
    output = nbformat.v4.new_output(
        "display_data",
        data={"text/plain": "Two **and** two.", "text/markdown": "Two **and** two."},
        metadata={"ormagic": saved},
    )
    path = tmp_path / "once.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%%chat\nQ", outputs=[output])]),
        path,
    )
    [turn] = read_notebook(path).conversations["default"].turns
    [message] = turn.response.messages
    assert message == {
        "role": "assistant",
        "content": "Two **and** two.",
        "reasoning_details": DETAILS,
    }


def test_a_record_whose_text_is_gone_is_skipped(tmp_path: Path) -> None:
    saved = answer_record("Four.")
    output = nbformat.v4.new_output(
        "display_data", data={"text/html": "<p>4</p>"}, metadata={"ormagic": saved}
    )
    path = tmp_path / "gone.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%%chat\nQ", outputs=[output])]),
        path,
    )
    found = read_notebook(path)
    assert found.conversations == {}
    assert found.notes == [
        "Skipped 1 saved answer in gone.ipynb whose ormagic metadata is malformed."
    ]


def test_saved_ago() -> None:
    now = 1_000_000.0
    assert saved_ago(now - 3, now) == "saved just now"
    assert saved_ago(now - 42, now) == "saved 42 s ago"
    assert saved_ago(now - 150, now) == "saved 2 min ago"
    assert saved_ago(now - 7300, now) == "saved 2 h ago"
    assert saved_ago(now - 86400, now) == "saved 1 day ago"
    assert saved_ago(None, now) == "saved at an unknown time"


# -- reading a notebook -----------------------------------------------------------------


def test_two_conversations_in_notebook_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "analysis.ipynb",
        nbformat.v4.new_markdown_cell("# Notes"),
        chat_cell("%%chat\nOne", saved_record("default", "One", "1"), cell_id="c1"),
        chat_cell("%%chat -c side\nAside", saved_record("side", "Aside", "a"), cell_id="c2"),
        nbformat.v4.new_code_cell("x = 1"),
        chat_cell("%%chat\nTwo", saved_record("default", "Two", "2"), cell_id="c3"),
    )
    found = read_notebook(path)
    assert found.notes == []
    default = found.conversations["default"]
    assert default.messages == [
        user("One"),
        {"role": "assistant", "content": "1"},
        user("Two"),
        {"role": "assistant", "content": "2"},
    ]
    assert [t.cell_id for t in default.turns] == ["c1", "c3"]  # the cell's own id
    assert default.session_id == "ormagic-default"
    assert found.conversations["side"].messages == [
        user("Aside"),
        {"role": "assistant", "content": "a"},
    ]


def test_bad_records_are_skipped_with_one_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "mixed.ipynb",
        chat_cell("%%chat\nOne", saved_record("default", "One", "1")),
        chat_cell("%%chat\nBad", saved_record("default", "Bad", "x", messages="not a list")),
        chat_cell(
            "%%chat\nBad2", saved_record("default", "Bad2", "x", messages=[{"role": "user"}])
        ),
        chat_cell("%%chat\nFuture", saved_record("default", "Future", "f", format=2)),
        # an answer saved by an ormagic from before records: no messages, not an error
        chat_cell("%%chat\nOld", {"model": "m", "usage": None}),
        chat_cell("%%chat\nTwo", saved_record("default", "Two", "2")),
    )
    found = read_notebook(path)
    assert [t.prompt for t in found.conversations["default"].turns] == ["One", "Two"]
    assert found.notes == [
        "Skipped 2 saved answers in mixed.ipynb whose ormagic metadata is malformed.",
        "Skipped 1 saved answer in mixed.ipynb written by a newer ormagic; "
        "upgrade ormagic to read them.",
    ]


@pytest.mark.parametrize(
    ("content", "note"),
    [
        (None, "Could not resume: gone.ipynb does not exist."),
        ("{not json", "Could not resume from gone.ipynb: it is not a readable notebook"),
        ('{"hello": "world"}', "Could not resume from gone.ipynb: it is not a readable notebook"),
    ],
)
def test_a_missing_damaged_or_foreign_file_is_one_note(
    tmp_path: Path, content: str | None, note: str
) -> None:
    path = tmp_path / "gone.ipynb"
    if content is not None:
        path.write_text(content)
    found = read_notebook(path)
    assert found.conversations == {}
    [line] = found.notes
    assert line.startswith(note)


# -- resuming in the engine -------------------------------------------------------------


class FileNotebook:
    """A notebook with no executed cells whose file is ``path``."""

    def __init__(self, path: Path | None) -> None:
        self._path = path

    @property
    def namespace(self) -> Mapping[str, Any]:
        return {}

    @property
    def path(self) -> str | None:
        return str(self._path) if self._path else None

    def snapshot(self, since: int | None) -> NotebookSnapshot:
        return NotebookSnapshot((), {}, None, self.path, ())

    def running_cell(self) -> int:
        return 1


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture
def engine(fake_env: FakeOpenRouter) -> Iterator[Engine]:
    engine = Engine()
    yield engine
    engine.close()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = write(
        tmp_path / "analysis.ipynb",
        chat_cell("%%chat\nOne", saved_record("default", "One", "1"), cell_id="c1"),
        chat_cell("%%chat -c side\nAside", saved_record("side", "Aside", "a"), cell_id="c2"),
        chat_cell("%%chat\nTwo", saved_record("default", "Two", "2"), cell_id="c3"),
    )
    stamp = time.time() - 125
    os.utime(path, (stamp, stamp))
    return path


def test_the_first_question_resumes_each_conversation_once(
    engine: Engine, saved: Path, fake_env: FakeOpenRouter
) -> None:
    notebook, notes = FileNotebook(saved), Notes()
    engine.prepare("Three", AskOptions(), notebook, notify=notes)
    assert notes.lines == ["Resumed 'default' from analysis.ipynb: 2 turns (saved 2 min ago)."]
    prepared = engine.prepare("Three", AskOptions(), notebook, notify=notes)
    assert len(notes.lines) == 1  # once
    assert prepared.request.messages == [
        user("One"),
        {"role": "assistant", "content": "1"},
        user("Two"),
        {"role": "assistant", "content": "2"},
        user("Three"),
    ]
    assert prepared.request.session_id == "ormagic-default"
    engine.prepare("More", AskOptions(conversation="side"), notebook, notify=notes)
    assert notes.lines[-1] == "Resumed 'side' from analysis.ipynb: 1 turn (saved 2 min ago)."
    assert [len(engine.conversation(n)) for n in ("default", "side")] == [2, 1]


def test_new_reset_and_the_setting_do_not_resume(engine: Engine, saved: Path) -> None:
    notebook, notes = FileNotebook(saved), Notes()
    prepared = engine.prepare("Fresh", AskOptions(new=True), notebook, notify=notes)
    assert prepared.request.messages == [user("Fresh")]
    engine.reset("side")
    engine.prepare("Fresh", AskOptions(conversation="side"), notebook, notify=notes)
    engine.defaults.resume = False
    engine.prepare("Fresh", AskOptions(conversation="other"), notebook, notify=notes)
    engine.prepare("Fresh", AskOptions(conversation="default"), notebook, notify=notes)
    assert notes.lines == []
    assert engine.store.names() == ["side"]


def test_without_a_file_nothing_is_resumed_and_the_question_is_asked(
    engine: Engine, tmp_path: Path, fake_env: FakeOpenRouter
) -> None:
    notes = Notes()
    damaged = tmp_path / "damaged.ipynb"
    damaged.write_text("{")
    result = engine.answer("Hi", AskOptions(), notebook=FileNotebook(damaged))
    assert result.outcome.text.startswith("You asked:")
    engine2 = Engine()
    prepared = engine2.prepare("Hi", AskOptions(), FileNotebook(None), notify=notes)
    engine2.close()
    assert prepared.request.messages == [user("Hi")] and notes.lines == []


# -- in a shell: the commands -----------------------------------------------------------


def test_resume_and_load_commands(
    shell: InteractiveShell, saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_cell(f"%chat resume {saved} -c side")
    assert capsys.readouterr().out == (
        "Resumed 'side' from analysis.ipynb: 1 turn (saved 2 min ago).\n"
    )
    shell.run_cell(f"%chat resume {saved} -c nobody")
    assert capsys.readouterr().out == "No saved %%chat turns of 'nobody' in analysis.ipynb.\n"
    shell.run_cell(f"%chat load {saved}")
    assert capsys.readouterr().out == (f"Loaded conversation 'default' (2 turns) from {saved}.\n")
    assert [t.answer for t in ormagic.conversation("default").turns] == ["1", "2"]
    failed = shell.run_cell(f"%chat load {saved} -c nobody")
    assert not failed.success
    assert capsys.readouterr().err.strip() == (
        f"UsageError: {saved} has no saved %%chat turns of 'nobody' (it holds: default, side)."
    )
    shell.run_cell(f"%chat resume {saved.parent / 'gone.ipynb'}")
    assert capsys.readouterr().out == (
        "Could not resume: gone.ipynb does not exist.\n"
        "No saved %%chat turns of 'default' in gone.ipynb.\n"
    )
    failed = shell.run_cell("%chat resume")
    assert capsys.readouterr().err.strip() == (
        "UsageError: %chat resume: this kernel does not know its notebook file; "
        "name it: %chat resume analysis.ipynb"
    )


def test_an_exported_notebook_loads_back(
    shell: InteractiveShell, fake_env: FakeOpenRouter, tmp_path: Path
) -> None:
    fake_env.enqueue(StreamReply(text="Four.", reasoning_details=DETAILS))
    shell.run_cell("%%chat -c lesson --system 'Be a tutor.'\nWhat is 2+2?")
    exported = ormagic.conversation("lesson").messages
    path = tmp_path / "lesson.ipynb"
    assert shell.run_cell(f"%chat export {path} -c lesson").success
    shell.run_cell("%chat reset lesson")
    shell.run_cell(f"%chat load {path}")
    assert ormagic.conversation("lesson").messages == exported


# -- a real kernel after a restart ------------------------------------------------------


def test_a_new_kernel_picks_the_conversation_up_from_the_saved_file(
    server: FakeOpenRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = copy.deepcopy(DETAILS)
    server.enqueue(
        StreamReply(text="It is **4**.", reasoning_details=first, provider="DeepSeek"),
        StreamReply(text="Then 12.", reasoning="Times three.", provider="DeepSeek"),
    )
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext ormagic"),
            nbformat.v4.new_code_cell("x = 2 + 2"),
            nbformat.v4.new_code_cell("%%chat\nWhat is {x}?"),
            nbformat.v4.new_code_cell("%%chat\nAnd times 3?"),
        ]
    )
    monkeypatch.setenv("OPENROUTER_API_KEY", server.api_key)  # for the kernel nbclient starts
    monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    path = tmp_path / "analysis.ipynb"
    nbformat.write(notebook, path)
    sent = [r.body["messages"] for r in server.chat_requests()]
    server.reset()

    kernel = start_kernel(server, JPY_SESSION_NAME=str(path))
    try:
        execution = kernel.execute("%%chat\nAnd minus 5?", cell_id="new-cell")
        assert execution.status == "ok", execution.error_text()
        [request] = server.chat_requests()
        assert request.body["messages"] == [
            user("What is 4?"),
            {
                "role": "assistant",
                "content": "It is **4**.",
                "reasoning": "Two and two.",
                "reasoning_details": DETAILS,
            },
            user("And times 3?"),
            {
                "role": "assistant",
                "content": "Then 12.",
                "reasoning": "Times three.",
                "reasoning_details": [
                    {
                        "type": "reasoning.text",
                        "text": "Times three.",
                        "format": "unknown",
                        "index": 0,
                    }
                ],
            },
            {"role": "user", "content": request.body["messages"][-1]["content"]},
        ]
        # what was sent the first time, less the context block, is what was resumed
        assert sent[1][1] == request.body["messages"][1]
        assert request.body["messages"][-1]["content"].endswith("And minus 5?")
        first_line = _quiet_lines(execution)[0]
        assert first_line.startswith("Resumed 'default' from analysis.ipynb: 2 turns (saved ")
        # re-running a resumed cell replaces its own turn (the cell keeps its id)
        rerun = kernel.execute("%%chat\nAnd times 3?", cell_id=notebook.cells[3].id)
        assert rerun.status == "ok", rerun.error_text()
        history = server.chat_requests()[-1].body["messages"]
        assert [m["content"] for m in history if m["role"] == "assistant"] == ["It is **4**."]
        answers = kernel.execute(
            "import json; print(json.dumps([t.answer for t in "
            "__import__('ormagic').conversation().turns]))"
        ).stream_text()
        # the re-run replaced the second turn in place; the new question stays last
        assert json.loads(answers)[0] == "It is **4**."
        assert len(json.loads(answers)) == 3
    finally:
        kernel.shutdown()


def _quiet_lines(execution: Execution) -> list[str]:
    return [
        o["data"]["text/plain"]
        for o in execution.final_outputs()
        if "data" in o and "text/markdown" not in o["data"]
    ]


def test_ormagic_ask_in_a_notebook_resumes_too(
    fake_env: FakeOpenRouter, saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_default_engine(Engine())
    try:
        default_engine().notebook = FileNotebook(saved)
        answer = ormagic.ask("Three")
    finally:
        set_default_engine(None)
    assert capsys.readouterr().out == (
        "Resumed 'default' from analysis.ipynb: 2 turns (saved 2 min ago).\n"
    )
    assert answer.text.startswith("You asked:")
    [request] = fake_env.chat_requests()
    assert [m["content"] for m in request.body["messages"]] == ["One", "1", "Two", "2", "Three"]


def test_a_turn_with_tool_rounds_comes_back_exactly(tmp_path: Path) -> None:
    calls = [
        {
            "id": "call_00_abc",
            "type": "function",
            "function": {"name": "describe_variable", "arguments": '{"name": "sales"}'},
        }
    ]
    messages = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": calls,
            "reasoning": "",
            "reasoning_details": [],
        },
        {"role": "tool", "tool_call_id": "call_00_abc", "content": "DataFrame 3 x 2"},
        {
            "role": "assistant",
            "content": "Three rows.",
            "reasoning": "Look.",
            "reasoning_details": [{"type": "reasoning.text", "text": "Look.", "index": 0}],
        },
    ]
    saved = record(
        conversation="default",
        system=None,
        session_id="ormagic-s",
        prompt="How big is sales?",
        cell_id="c1",
        response=Response(messages, model="m"),
    )
    path = write(tmp_path / "tools.ipynb", chat_cell("%%chat\nHow big is sales?", saved))
    [turn] = read_notebook(path).conversations["default"].turns
    assert turn.messages() == [user("How big is sales?"), *messages]


def test_a_side_by_side_turn_comes_back_with_every_answer_and_the_pick(tmp_path: Path) -> None:
    first = saved_record("default", "Which?", "from A", chosen=False, model="a/x")
    second = saved_record("default", "Which?", "from B", chosen=True, model="b/y")
    output = {"conversation": "default", "chosen": 1, "answers": [first, second]}
    path = write(tmp_path / "compare.ipynb", chat_cell("%%chat -m a/x -m b/y\nWhich?", output))
    [turn] = read_notebook(path).conversations["default"].turns
    assert [r.model for r in turn.responses] == ["a/x", "b/y"]
    assert turn.chosen == 1
    assert turn.messages() == [user("Which?"), {"role": "assistant", "content": "from B"}]
