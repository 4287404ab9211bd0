"""The Python API (ormagic.ask, ormagic.stream, ormagic.configure) against the loopback server.

One test runs a script in a plain interpreter, as a user would; the others run in this
process on an engine of their own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from processes import python_child

import ormagic
from ormagic.errors import AuthenticationError, ConfigError, MissingKeyError
from ormagic.events import Event, Finished, ReasoningDelta, TextDelta, Usage
from ormagic.testing.fake_openrouter import ErrorReply, FakeOpenRouter, StreamReply

ROOT = Path(__file__).resolve().parents[1]
DETAILS = [
    {"type": "reasoning.text", "text": "Two and two.", "format": "unknown", "index": 0},
    {"type": "reasoning.encrypted", "data": "gAAAAB-opaque", "format": "unknown", "index": 1},
]
USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 9,
    "total_tokens": 21,
    "cost": 0.0000042,
    "completion_tokens_details": {"reasoning_tokens": 6},
}

SCRIPT = """
import json, sys
import ormagic

answer = ormagic.ask("What is 2+2?", model="openai/gpt-5-nano", max_tokens=64)
events = list(ormagic.stream("And times 3?"))
print(json.dumps({
    "text": answer.text,
    "str": str(answer),
    "reasoning": answer.reasoning,
    "model": answer.model,
    "provider": answer.provider,
    "generation_id": answer.generation_id,
    "usage": [answer.usage.prompt_tokens, answer.usage.completion_tokens,
              answer.usage.reasoning_tokens],
    "cost": answer.cost,
    "finish_reason": answer.finish_reason,
    "interrupted": answer.interrupted,
    "footer": answer.footer.split(" · ")[:3],
    "events": [type(e).__name__ for e in events],
    "turns": len(ormagic.conversation().turns),
    "loaded": sorted(m for m in ("IPython", "ipywidgets", "traitlets") if m in sys.modules),
}))
"""


def test_a_script_asks_and_streams_without_jupyter(fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.enqueue(
        StreamReply(
            text="**4**",
            reasoning_details=DETAILS,
            usage=USAGE,
            provider="OpenAI",
            generation_id="gen-1-script",
        ),
        StreamReply(text="12", usage=USAGE, provider="OpenAI"),
    )
    env = {
        **os.environ,
        "OPENROUTER_API_KEY": fake_openrouter.api_key,
        "OPENROUTER_BASE_URL": fake_openrouter.base_url,
        "PYTHONPATH": str(ROOT),
    }
    result = python_child("-c", SCRIPT, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "text": "**4**",
        "str": "**4**",
        "reasoning": "Two and two.",
        "model": "openai/gpt-5-nano",
        "provider": "OpenAI",
        "generation_id": "gen-1-script",
        "usage": [12, 9, 6],
        "cost": 0.0000042,
        "finish_reason": "stop",
        "interrupted": False,
        "footer": ["openai/gpt-5-nano via OpenAI", "12 in / 9 out (6 reasoning)", "$0.0000042"],
        "events": [
            "KeepAlive",
            "TextDelta",
            "KeepAlive",
            "Usage",
            "Finished",
        ],
        "turns": 2,
        "loaded": [],
    }
    first, second = fake_openrouter.chat_requests()
    assert first.body["model"] == "openai/gpt-5-nano"
    assert first.body["max_tokens"] == 64
    assert first.body["messages"] == [{"role": "user", "content": "What is 2+2?"}]
    # the second question continues the conversation, reasoning sent back unchanged
    assert second.body["messages"] == [
        {"role": "user", "content": "What is 2+2?"},
        {
            "role": "assistant",
            "content": "**4**",
            "reasoning": "Two and two.",
            "reasoning_details": DETAILS,
        },
        {"role": "user", "content": "And times 3?"},
    ]
    assert second.body["session_id"] == first.body["session_id"]


# -- in this process --------------------------------------------------------------------


@pytest.fixture
def api(fake_env: FakeOpenRouter) -> FakeOpenRouter:
    """The fake server, for ``ormagic.ask``'s default engine (each test starts with none:
    conftest)."""
    return fake_env


def test_answer_fields_and_events(api: FakeOpenRouter) -> None:
    api.enqueue(StreamReply(text="Four.", reasoning="Add.", usage=USAGE, provider="DeepSeek"))
    seen: list[Event] = []
    answer = ormagic.ask("What is 2+2?", on_event=seen.append)
    assert (answer.text, answer.reasoning, answer.model, answer.provider) == (
        "Four.",
        "Add.",
        "deepseek/deepseek-v4-flash",
        "DeepSeek",
    )
    assert answer.usage is not None and answer.usage.completion_tokens == 9
    assert answer.cost == 0.0000042
    assert answer.reasoning_details == (
        {"type": "reasoning.text", "text": "Add.", "format": "unknown", "index": 0},
    )
    assert "".join(e.text for e in seen if isinstance(e, TextDelta)) == "Four."
    assert "".join(e.text for e in seen if isinstance(e, ReasoningDelta)) == "Add."
    assert [type(e) for e in seen if isinstance(e, Usage | Finished)] == [Usage, Finished]


def test_the_markdown_repr_is_made_safe(api: FakeOpenRouter) -> None:
    api.enqueue(StreamReply(text='<img src=x onerror="alert(1)"> [x](javascript:alert(1))'))
    markdown = ormagic.ask("hi")._repr_markdown_()
    assert "<img" not in markdown
    assert "](javascript:" not in markdown
    assert markdown.startswith("&lt;img src=x onerror=")


def test_lasting_defaults_then_arguments(
    api: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORMAGIC_MODEL", "env/model")
    ormagic.ask("one")
    ormagic.configure(model="configured/model", max_tokens=99, system="Be brief.")
    ormagic.ask("two", conversation="other")
    ormagic.ask("three", conversation="third", model="argument/model", max_tokens=7)
    bodies = [r.body for r in api.chat_requests()]
    assert [(b["model"], b["max_tokens"]) for b in bodies] == [
        ("env/model", 16384),
        ("configured/model", 99),
        ("argument/model", 7),
    ]
    assert bodies[1]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_refusals_raise_and_change_nothing(
    api: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"^--max-tokens must be a positive number\.$"):
        ormagic.ask("hi", max_tokens=0)
    with pytest.raises(ConfigError, match=r"^Reasoning must be one of none, minimal, "):
        ormagic.ask("hi", reasoning="lots")
    api.enqueue(ErrorReply(401, "User not found."))
    with pytest.raises(AuthenticationError):
        ormagic.ask("hi")
    monkeypatch.delenv("OPENROUTER_API_KEY")
    with pytest.raises(MissingKeyError):
        ormagic.ask("hi")
    assert ormagic.conversation().turns == []
    assert len(api.chat_requests()) == 1  # only the 401


def test_a_mid_stream_error_returns_what_arrived(api: FakeOpenRouter) -> None:
    api.enqueue(StreamReply(text="Partial ans", error={"code": 502, "message": "Provider gone"}))
    answer = ormagic.ask("hi")
    assert (answer.text, answer.error, answer.interrupted) == (
        "Partial ans",
        "Provider gone",
        False,
    )
    assert ormagic.conversation().turns[0].answer == "Partial ans"


def test_stopping_a_stream_early_keeps_what_arrived(api: FakeOpenRouter) -> None:
    api.enqueue(StreamReply(text="one two three four", chunk_chars=4, usage=USAGE))
    events = ormagic.stream("count")
    texts = []
    for event in events:
        if isinstance(event, TextDelta):
            texts.append(event.text)
            if len(texts) == 2:
                break
    events.close()
    [turn] = ormagic.conversation().turns
    assert (turn.answer, turn.interrupted) == ("one two ", True)


def test_the_stream_is_checked_before_iterating(api: FakeOpenRouter) -> None:
    with pytest.raises(ConfigError):
        ormagic.stream("hi", max_tokens=-1)
    assert api.chat_requests() == []


def test_a_lone_surrogate_in_a_prompt_or_a_row_is_sent_as_a_replacement_character(
    api: FakeOpenRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # text decoded with surrogateescape (a file in another encoding) cannot be UTF-8:
    # the question still goes, with U+FFFD where the half character was
    monkeypatch.setenv("ORMAGIC_CACHE_DIR", str(tmp_path))
    api.enqueue(StreamReply(text="Read."), StreamReply(text="Row read."))
    assert ormagic.ask("caf\udce9 menu").text == "Read."
    assert ormagic.map("Row: {item}", ["th\udce9"], max_tokens=20, progress=False) == ["Row read."]
    sent = [r.body["messages"][-1]["content"] for r in api.chat_requests()]
    assert sent[0].endswith("caf\ufffd menu")
    assert sent[1] == "Row: th\ufffd"
