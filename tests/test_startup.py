"""``%load_ext ormagic`` stays light: the engine and the heavy libraries wait for a question.

How long loading takes is a benchmark (``bench/bench_startup.py``); what it imports is a
fact a test can hold, in a fresh process: none of httpx, markdown-it or nbformat, nor
the engine, the views or the commands, until the first ``%%chat``, which still works and
then shares its engine with ``ormagic.ask``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from processes import python_child

from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

ROOT = Path(__file__).resolve().parents[1]
DEFERRED = [
    "httpx",
    "markdown_it",
    "nbformat",
    "ormagic.engine.engine",
    "ormagic.render.views",
    "ormagic.render.markdown",
    "ormagic.jupyter.commands",
]
PROGRAM = f"""
import io, json, sys, contextlib
from IPython.core.interactiveshell import InteractiveShell
before = set(sys.modules)
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "ormagic")
loaded = sorted(n for n in {DEFERRED!r} if n in sys.modules and n not in before)
with contextlib.redirect_stdout(io.StringIO()):
    shell.run_cell_magic("chat", "-c s", "Hello")
import ormagic
same = ormagic.conversation("s").turns[-1].answer
shell.run_line_magic("config", "ChatMagics.max_tokens = 77")
answer = ormagic.ask("Again", conversation="s")
print(json.dumps({{"at_load": loaded, "after_chat": [n for n in {DEFERRED!r} if n in sys.modules],
                  "answer": same, "asked": answer.text}}))
"""


def test_loading_imports_nothing_heavy_and_the_first_question_brings_it(
    fake_openrouter: FakeOpenRouter,
) -> None:
    fake_openrouter.enqueue(StreamReply(text="First."), StreamReply(text="Second."))
    env = {
        **os.environ,
        "OPENROUTER_API_KEY": fake_openrouter.api_key,
        "OPENROUTER_BASE_URL": fake_openrouter.base_url,
        "PYTHONPATH": str(ROOT),
    }
    result = python_child("-c", PROGRAM, env=env)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["at_load"] == []
    assert set(found["after_chat"]) >= {"httpx", "ormagic.engine.engine"}  # a terminal: no HTML
    assert found["answer"] == "First."
    assert found["asked"] == "Second."
    # ormagic.ask used %%chat's engine, with the setting made through %config
    assert [r.body["max_tokens"] for r in fake_openrouter.chat_requests()] == [16384, 77]


def test_tool_lines_and_batch_progress_do_not_load_the_markdown_renderer() -> None:
    # a batch's bar and a tool call's line only escape text: markdown-it and pygments wait
    # for an answer that needs them
    program = (
        "import sys, ormagic.render.progress, ormagic.render.toolcalls\n"
        "print(sorted(m for m in ('markdown_it', 'pygments', 'ormagic.render.markdown')"
        " if m in sys.modules))"
    )
    result = python_child("-c", program)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
