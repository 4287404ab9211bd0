"""A real kernel under hostile conditions: the key never comes out, a 10 MB answer is fine.

The kernel runs with the canary key (``canary.CANARY_KEY``); every command, every failure
path, the exports and a notebook saved by nbclient are searched for it. The server even
echoes the key back in its error messages, as a careless proxy might.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from canary import CANARY_KEY, assert_no_key, key_hits
from kernel_support import Execution, Kernel

from ormagic.testing._frames import Chat, plan_stream
from ormagic.testing.fake_openrouter import ErrorReply, FakeOpenRouter, RawReply, StreamReply

pytestmark = pytest.mark.timeout(300)

API_KEY = CANARY_KEY  # the module's fake server accepts the canary (conftest)
ECHO = f"Invalid credentials: Bearer {CANARY_KEY}"


def _run(kernel: Kernel, code: str, **kwargs: Any) -> Execution:
    execution = kernel.execute(code, **kwargs)
    # everything the kernel sent but the echo of the code as typed, and the reply
    sent = [m["content"] for m in execution.messages if m["msg_type"] != "execute_input"]
    assert_no_key(sent, execution.reply["content"])
    return execution


# (the reply, whether the message shown quotes what the server said about the key)
FAILURES = [
    pytest.param(ErrorReply(401, ECHO), True, id="401 echoing the key"),
    pytest.param(ErrorReply(402, f"Insufficient credits for {CANARY_KEY}"), True, id="402"),
    pytest.param(ErrorReply(429, ECHO, retry_after="3600"), True, id="429"),
    pytest.param(ErrorReply(500, ECHO), True, id="500"),
    pytest.param(ErrorReply(400, "bad", body=ECHO.encode()), False, id="an HTML error page"),
    pytest.param(
        StreamReply(text="Partial", error={"code": 502, "message": ECHO}), True, id="stream"
    ),
    pytest.param(StreamReply(text="Partial", drop=True), False, id="dropped"),
    pytest.param(
        RawReply([b"data: {not json " + CANARY_KEY.encode() + b"\n\n"]), True, id="bad chunk"
    ),
]


@pytest.mark.parametrize(("reply", "quoted"), FAILURES)
def test_no_failure_shows_the_key(
    kernel: Kernel, server: FakeOpenRouter, reply: Any, quoted: bool
) -> None:
    server.enqueue(reply)
    execution = _run(kernel, "%%chat -c canary-failures\nHello")
    assert execution.status == "error" and execution.error_text().startswith("UsageError: ")
    assert ("[REDACTED]" in execution.error_text()) is quoted


def test_no_command_shows_the_key(kernel: Kernel, server: FakeOpenRouter, tmp_path: Path) -> None:
    server.enqueue(StreamReply(text="Hi", reasoning="Think."))
    _run(kernel, "%%chat -c canary\nHello")
    exported = tmp_path / "conversation"
    commands = [
        "%chat",
        "%chat history canary",
        "%chat models",
        "%chat usage",
        "%chat key",
        "%chat config",
        "%chat context",
        "%config ChatMagics",
        f"%chat export {exported}.ipynb -c canary",
        f"%chat export {exported}.json -c canary",
        f"%chat load {exported}.json -c canary-loaded",
        "%chat frobnicate",
        "%%chat --context weird\nx",
        "import ormagic; ormagic.ask('Hi', conversation='canary')",
        "ormagic.conversation('canary').messages",
        "get_ipython().find_magic('chat').__self__.engine.client_settings()",
        "ormagic.configure(max_tokens=5); ormagic.ask('again', conversation='canary')",
        "ormagic.configure(max_tokens=16384)",
    ]
    for code in commands:
        _run(kernel, code)
    assert_no_key(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "conversation.ipynb",
        "conversation.json",
    ]


def test_a_notebook_saved_by_nbclient_holds_no_key(
    server: FakeOpenRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbclient import NotebookClient

    server.enqueue(StreamReply(text="Saved answer."), ErrorReply(401, ECHO))
    cells = [
        "%load_ext ormagic",
        "%%chat -c saved\nHello",
        "%chat key",
        "%%chat -c saved\nAgain",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    monkeypatch.setenv("OPENROUTER_API_KEY", CANARY_KEY)  # the kernel nbclient starts
    monkeypatch.setenv("OPENROUTER_BASE_URL", server.base_url)
    NotebookClient(notebook, timeout=120, allow_errors=True, kernel_name="python3").execute()
    path = tmp_path / "saved.ipynb"
    nbformat.write(notebook, path)
    assert "Saved answer." in path.read_text()
    assert_no_key(path)


def test_the_canary_search_finds_the_key_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "cache.bin").write_bytes(b"\x00" + CANARY_KEY.encode())

    class Task:
        def __init__(self) -> None:
            self.settings = {"headers": {"Authorization": f"Bearer {CANARY_KEY}"}}

    assert key_hits("nothing here", {"masked": "sk-or-v1-can...ary"}) == []
    things = (tmp_path, [("graph", Task())], CANARY_KEY[:-10], ValueError(CANARY_KEY))
    assert [bool(key_hits(thing)) for thing in things] == [True] * 4


# --------------------------------------------------------------------------- 10 MB


def test_a_10_mb_answer_streams_and_the_kernel_stays_responsive(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    paragraph = "The sensor readings drift over time, so each column needs a check. " * 14
    answer = ((paragraph + "\n\n") * 11_000)[:10_000_000]
    chat = Chat(generation_id="gen-big", created=1, model="m/big", provider="P")
    usage = {"prompt_tokens": 1, "completion_tokens": 2_500_000, "total_tokens": 2_500_001}
    frames = plan_stream(StreamReply(text=answer, chunk_chars=65_536), chat, usage)
    server.enqueue(RawReply([frame.data for frame in frames]))
    execution = kernel.execute("%%chat -c big\nA very long answer, please.", timeout=240)
    assert execution.status == "ok", execution.error_text()
    [final] = [o for o in execution.final_outputs() if "text/markdown" in o.get("data", {})]
    assert final["data"]["text/plain"] == answer
    displays = execution.display_messages()
    assert len(displays) < 200  # a few pieces and redraws, not one per chunk
    after = kernel.execute(
        "import ormagic\nlen(ormagic.conversation('big').messages[-1]['content'])"
    )
    assert after.status == "ok"
    [result] = after.of_type("execute_result")
    assert result["content"]["data"]["text/plain"] == str(len(answer))


def test_the_module_ran_with_the_canary(server: FakeOpenRouter) -> None:
    assert server.api_key == CANARY_KEY and "canary" in sys.modules
