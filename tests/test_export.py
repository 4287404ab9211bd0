"""Exporting conversations to .ipynb and JSON, and loading JSON back."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from markdown_it import MarkdownIt

from ormagic.engine.conversation import Conversation, Turn
from ormagic.engine.export import conversation_to_notebook, export_json, export_notebook, load_json
from ormagic.errors import ConfigError
from ormagic.events import Usage
from ormagic.render.markdown import neutralise_markdown

FLASH = "deepseek/deepseek-v4-flash"
# As accumulated from the stream of docs/openrouter-api.md §4.4; DeepSeek needs these
# reasoning_details back unchanged on the next turn (§8).
DETAILS = [
    {"type": "reasoning.text", "text": "The user asks for 2+2.", "format": "unknown", "index": 0},
    {"type": "reasoning.encrypted", "data": "gAAAAB…opaque", "format": "unknown", "index": 1},
]
DETAILS_BLOCK = (
    "<details><summary>Reasoning</summary>\n\n<pre>The user asks for 2+2.</pre>\n\n</details>"
)


def neutralised(text: str) -> str:
    """What the answer cell holds: the Markdown neutraliser's output."""
    return neutralise_markdown(text)


def export_ipynb(conversation: Conversation, path: Any, **kwargs: Any) -> None:
    """``export_notebook`` with the neutraliser the ``%chat export`` command hands in."""
    export_notebook(conversation, path, neutralise=neutralise_markdown, **kwargs)


def to_notebook(conversation: Conversation) -> Any:
    return conversation_to_notebook(conversation, neutralise=neutralise_markdown)


def sample() -> Conversation:
    conversation = Conversation(
        name="maths", system="Answer briefly.", session_id="ormagic-0123456789abcdef"
    )
    conversation.record(
        Turn.single(
            prompt="What is 2+2?",
            user_message={"role": "user", "content": "What is 2+2?"},
            assistant_message={
                "role": "assistant",
                "content": "4",
                "reasoning": "The user asks for 2+2.",
                "reasoning_details": copy.deepcopy(DETAILS),
            },
            cell_id="cell-1",
            model=FLASH,
            provider="DeepSeek",
            generation_id="gen-1785160442-AbCdEfGhIjKlMnOpQrSt",
            usage=Usage(prompt_tokens=12, completion_tokens=9, reasoning_tokens=6, cost=0.0000042),
            cost=0.0000042,
            elapsed=1.3,
        )
    )
    conversation.record(
        Turn.single(
            prompt="Und auf Deutsch? ü",
            # what was sent: the notebook context block, then the prompt
            user_message={
                "role": "user",
                "content": "<context>x = 4</context>\n\nUnd auf Deutsch? ü",
            },
            assistant_message={"role": "assistant", "content": "Vier."},
            cell_id="cell-2",
            model=FLASH,
            provider="DeepSeek",
            generation_id="gen-1785160450-ZyXwVuTsRqPoNmLkJiHg",
            usage=None,
            cost=None,
            elapsed=0.4,
            interrupted=True,
            error="Stream dropped <after> 3 chunks",
        )
    )
    return conversation


# -- JSON -------------------------------------------------------------------------------


def test_json_round_trip_keeps_messages_and_turns(tmp_path: Path) -> None:
    original = sample()
    path = tmp_path / "maths.json"
    export_json(original, path)
    loaded = load_json(path)
    assert loaded.messages == original.messages
    assert loaded.messages[2]["reasoning_details"] == DETAILS
    assert loaded.turns == original.turns
    assert (loaded.name, loaded.system, loaded.session_id) == (
        "maths",
        "Answer briefly.",
        "ormagic-0123456789abcdef",
    )


def test_json_document(tmp_path: Path) -> None:
    path = tmp_path / "maths.json"
    export_json(sample(), path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(
        '{\n "format": "ormagic.conversation",\n "version": 1,\n "name": "maths",'
    )
    assert "Und auf Deutsch? ü" in text  # ensure_ascii=False
    assert json.loads(text) == {
        "format": "ormagic.conversation",
        "version": 1,
        "name": "maths",
        "system": "Answer briefly.",
        "session_id": "ormagic-0123456789abcdef",
        "messages": sample().messages,
        "turns": [
            {
                "prompt": "What is 2+2?",
                "cell_id": "cell-1",
                "model": FLASH,
                "provider": "DeepSeek",
                "generation_id": "gen-1785160442-AbCdEfGhIjKlMnOpQrSt",
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": 9,
                    "reasoning_tokens": 6,
                    "cached_tokens": 0,
                    "cost": 0.0000042,
                },
                "cost": 0.0000042,
                "elapsed": 1.3,
                "interrupted": False,
                "error": None,
            },
            {
                "prompt": "Und auf Deutsch? ü",
                "cell_id": "cell-2",
                "model": FLASH,
                "provider": "DeepSeek",
                "generation_id": "gen-1785160450-ZyXwVuTsRqPoNmLkJiHg",
                "usage": None,
                "cost": None,
                "elapsed": 0.4,
                "interrupted": True,
                "error": "Stream dropped <after> 3 chunks",
            },
        ],
    }


def test_load_under_another_name(tmp_path: Path) -> None:
    path = tmp_path / "maths.json"
    export_json(sample(), path)
    assert load_json(path, name="copy").name == "copy"


def test_empty_conversation_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    export_json(Conversation(session_id="ormagic-empty"), path)
    loaded = load_json(path)
    assert (loaded.name, loaded.system, loaded.turns, loaded.messages) == ("default", None, [], [])
    assert loaded.session_id == "ormagic-empty"


def test_load_hand_written_messages(tmp_path: Path) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a prime."},
        {"role": "assistant", "content": "7"},
        {"role": "user", "content": [{"type": "text", "text": "Another?"}, {"type": "image_url"}]},
        {"role": "assistant", "content": "11"},
    ]
    path = tmp_path / "hand.json"
    path.write_text(json.dumps({"messages": messages}), encoding="utf-8")
    loaded = load_json(path)
    assert loaded.name == "default"
    assert loaded.system == "You are terse."
    assert [t.prompt for t in loaded.turns] == ["Name a prime.", "Another?"]
    assert [t.answer for t in loaded.turns] == ["7", "11"]
    assert [(t.model, t.usage, t.cost, t.cell_id) for t in loaded.turns] == [
        (None, None, None, None)
    ] * 2
    assert loaded.messages == messages
    assert loaded.session_id.startswith("ormagic-")


def test_load_a_bare_list_of_messages_with_a_bom(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    path = tmp_path / "bare.json"
    path.write_text("\ufeff" + json.dumps(messages), encoding="utf-8")
    loaded = load_json(path, name="greeting")
    assert (loaded.name, loaded.system, loaded.messages) == ("greeting", None, messages)


def test_load_takes_a_top_level_system_prompt(tmp_path: Path) -> None:
    path = tmp_path / "sys.json"
    path.write_text(json.dumps({"system": "Be kind.", "messages": []}), encoding="utf-8")
    loaded = load_json(path)
    assert loaded.system == "Be kind."
    assert loaded.messages == [{"role": "system", "content": "Be kind."}]


def test_tolerates_odd_turn_metadata(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    turns = [{"model": 3, "usage": {"prompt_tokens": "x", "completion_tokens": 2}, "cost": True}]
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({"messages": messages, "turns": turns}), encoding="utf-8")
    (turn,) = load_json(path).turns
    assert (turn.prompt, turn.model, turn.cost) == ("Hi", None, None)
    assert turn.usage == Usage(prompt_tokens=0, completion_tokens=2)


# -- bad input --------------------------------------------------------------------------


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_json(path)
    return str(info.value)


USER = {"role": "user", "content": "Hi"}
ASSISTANT = {"role": "assistant", "content": "Hello!"}


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    assert load_error(path) == f"Cannot read {path}: No such file or directory"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert load_error(tmp_path) == f"Cannot read {tmp_path}: Is a directory"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"name": "caf\xe9"}')
    assert load_error(path) == f"Cannot read {path}: it is not UTF-8 text"


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"messages": [\n  {"role": "user",}\n]}', encoding="utf-8")
    assert load_error(path) == (
        f"{path} is not valid JSON: Expecting property name enclosed in double quotes"
        " (line 2, column 19)"
    )


def test_wrong_format(tmp_path: Path) -> None:
    path = write(tmp_path, {"format": "jupyter.notebook", "messages": []})
    assert load_error(path) == f"{path} is not an ormagic conversation (format 'jupyter.notebook')"


def test_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path, "hello")
    assert load_error(path) == f"{path} is not an ormagic conversation: expected a JSON object"


def test_newer_version(tmp_path: Path) -> None:
    path = write(tmp_path, {"format": "ormagic.conversation", "version": 2, "messages": []})
    assert load_error(path) == (
        f"{path} has conversation format version 2; this ormagic reads version 1"
    )


def test_no_messages(tmp_path: Path) -> None:
    path = write(tmp_path, {"format": "ormagic.conversation", "version": 1})
    assert load_error(path) == f'{path} has no "messages" list'


def test_two_user_messages_in_a_row(tmp_path: Path) -> None:
    path = write(tmp_path, {"messages": [{"role": "system", "content": "S"}, USER, USER]})
    assert load_error(path) == (
        f"{path}: messages must alternate user and assistant; "
        "message 3 is 'user', expected 'assistant'"
    )


def test_assistant_first(tmp_path: Path) -> None:
    path = write(tmp_path, {"messages": [ASSISTANT, USER]})
    assert load_error(path) == (
        f"{path}: messages must alternate user and assistant; "
        "message 1 is 'assistant', expected 'user'"
    )


def test_unanswered_last_message(tmp_path: Path) -> None:
    path = write(tmp_path, {"messages": [USER, ASSISTANT, USER]})
    assert load_error(path) == (
        f"{path}: messages must alternate user and assistant; "
        "the last user message (message 3) has no answer"
    )


def test_message_without_role(tmp_path: Path) -> None:
    path = write(tmp_path, {"messages": [USER, {"content": "no role"}]})
    assert load_error(path) == f'{path}: message 2 is not an object with a "role"'


def test_system_prompt_that_is_not_text(tmp_path: Path) -> None:
    path = write(tmp_path, {"messages": [{"role": "system", "content": None}]})
    assert load_error(path) == f"{path}: the system message's content is not text"


def test_turn_metadata_that_does_not_match(tmp_path: Path) -> None:
    path = write(tmp_path, {"messages": [USER, ASSISTANT], "turns": [{}, {}]})
    assert load_error(path) == f'{path}: "turns" has 2 entries for 1 exchanges'
    path = write(tmp_path, {"messages": [USER, ASSISTANT], "turns": {"0": {}}})
    assert load_error(path) == f'{path}: "turns" is not a list'


# -- overwriting and writing ------------------------------------------------------------


@pytest.mark.parametrize(("export", "suffix"), [(export_json, ".json"), (export_ipynb, ".ipynb")])
def test_refuses_to_overwrite(export: Any, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"keep{suffix}"
    path.write_text("precious", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        export(sample(), path)
    assert str(info.value) == f"{path} exists; pass --force to overwrite"
    assert path.read_text(encoding="utf-8") == "precious"
    export(sample(), path, overwrite=True)
    assert path.read_text(encoding="utf-8").startswith("{\n")


def test_unwritable_path(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "out.json"
    with pytest.raises(ConfigError) as info:
        export_json(sample(), path)
    assert str(info.value) == f"Cannot write {path}: No such file or directory"


def test_exports_never_contain_the_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-" + "0" * 64)
    export_json(sample(), tmp_path / "c.json")
    export_ipynb(sample(), tmp_path / "c.ipynb")
    for name in ("c.json", "c.ipynb"):
        assert b"sk-or-v1" not in (tmp_path / name).read_bytes()


# -- notebook ---------------------------------------------------------------------------


def test_notebook_cells_and_metadata() -> None:
    notebook = to_notebook(sample())
    nbformat.validate(notebook)
    assert [(c.cell_type, c.source) for c in notebook.cells] == [
        (
            "code",
            "%load_ext ormagic\nimport ormagic\n\n"
            "ormagic.conversation('maths').system = 'Answer briefly.'",
        ),
        ("markdown", "# Conversation maths\n\nSystem prompt:\n\n<pre>Answer briefly.</pre>"),
        ("code", "%%chat -c maths\nWhat is 2+2?"),
        ("markdown", f"{DETAILS_BLOCK}\n\n{neutralised('4')}"),
        ("code", "%%chat -c maths\nUnd auf Deutsch? ü"),
        (
            "markdown",
            f"{neutralised('Vier.')}\n\n*Interrupted.*\n\n"
            "**Error:** Stream dropped &lt;after&gt; 3 chunks",
        ),
    ]
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    assert [(c.outputs, c.execution_count) for c in code_cells] == [([], None)] * 3
    # each answer keeps the record a %%chat output keeps, so %chat load reads it back
    common = {
        "format": 1,
        "conversation": "maths",
        "system": "Answer briefly.",
        "session_id": "ormagic-0123456789abcdef",
        "chosen": True,
        "requested_model": None,
        "model": FLASH,
        "provider": "DeepSeek",
        "finish_reason": None,
    }
    first = sample().turns[0].assistant_message
    assert notebook.cells[3].metadata == {
        "ormagic": {
            **common,
            "cell_id": notebook.cells[2].id,
            "prompt": "What is 2+2?",
            # the reasoning string is its details' text: kept once, rebuilt on reading
            "messages": [{k: v for k, v in first.items() if k != "reasoning"}],
            "reasoning_derived": [0],
            "content_in_output": None,
            "generation_id": "gen-1785160442-AbCdEfGhIjKlMnOpQrSt",
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": 9,
                "reasoning_tokens": 6,
                "cached_tokens": 0,
            },
            "cost": 0.0000042,
            "elapsed": 1.3,
            "interrupted": False,
            "error": None,
        }
    }
    assert notebook.cells[5].metadata == {
        "ormagic": {
            **common,
            "cell_id": notebook.cells[4].id,
            "prompt": "Und auf Deutsch? ü",
            "messages": [{"role": "assistant", "content": "Vier."}],
            "reasoning_derived": [],
            "content_in_output": None,
            "generation_id": "gen-1785160450-ZyXwVuTsRqPoNmLkJiHg",
            "usage": None,
            "cost": None,
            "elapsed": 0.4,
            "interrupted": True,
            "error": "Stream dropped <after> 3 chunks",
        }
    }
    assert notebook.metadata["ormagic"] == {
        "conversation": "maths",
        "session_id": "ormagic-0123456789abcdef",
        "system": "Answer briefly.",
    }
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_notebook_without_system_prompt() -> None:
    conversation = sample()
    conversation.system = None
    notebook = to_notebook(conversation)
    assert notebook.cells[0].source == "%load_ext ormagic"
    assert notebook.cells[1].source == "# Conversation maths"
    assert notebook.metadata["ormagic"] == {
        "conversation": "maths",
        "session_id": "ormagic-0123456789abcdef",
    }


def test_notebook_file_validates_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "maths.ipynb"
    export_ipynb(sample(), path)
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook == conversation_to_notebook_without_ids(notebook)
    assert notebook.cells[2].source == "%%chat -c maths\nWhat is 2+2?"
    assert notebook.cells[3].metadata["ormagic"]["generation_id"] == (
        "gen-1785160442-AbCdEfGhIjKlMnOpQrSt"
    )


def conversation_to_notebook_without_ids(read_back: Any) -> Any:
    """A fresh notebook of the sample with the ids of ``read_back`` (ids are random)."""
    fresh = to_notebook(sample())
    for cell, old in zip(fresh.cells, read_back.cells, strict=True):
        cell.id = old.id
    for prompt, answer in zip(fresh.cells[2::2], fresh.cells[3::2], strict=True):
        answer.metadata["ormagic"]["cell_id"] = prompt.id
    return fresh


def test_reasoning_from_details_when_the_plain_field_is_missing() -> None:
    conversation = sample()
    del conversation.turns[0].assistant_message["reasoning"]
    source = to_notebook(conversation).cells[3].source
    assert source == f"{DETAILS_BLOCK}\n\n{neutralised('4')}"


def test_hostile_model_text_is_inert_in_the_notebook() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    conversation = Conversation(name="x_<b>", system=f"{hostile}\nline two")
    conversation.record(
        Turn.single(
            prompt="hi",
            user_message={"role": "user", "content": "hi"},
            assistant_message={"role": "assistant", "content": hostile, "reasoning": hostile},
            error=hostile,
        )
    )
    notebook = to_notebook(conversation)
    nbformat.validate(notebook)
    markdown = [c.source for c in notebook.cells if c.cell_type == "markdown"]
    assert all("<img" not in source for source in markdown)
    # Rendered as Jupyter does, raw HTML allowed: still no tag from the model's text
    rendered = [MarkdownIt("commonmark").render(source) for source in markdown]
    assert all("<img" not in page and "<b>" not in page for page in rendered)
    assert rendered[0].startswith("<h1>Conversation x_&lt;b&gt;</h1>\n")
    assert rendered[1].endswith(
        "<p><strong>Error:</strong> &lt;img src=x onerror=alert(1)&gt;</p>\n"
    )
    assert markdown[1].startswith(
        "<details><summary>Reasoning</summary>\n\n"
        "<pre>&lt;img src=x onerror=alert(1)&gt;</pre>\n\n</details>\n\n"
    )
    # the system prompt is Python code in the first cell: a repr, not an injection
    assert notebook.cells[0].source.endswith(
        "ormagic.conversation('x_<b>').system = '<img src=x onerror=alert(1)>\\nline two'"
    )
