"""The fake OpenRouter's tool calling, seen over raw HTTP: the streamed fragments, the
non-streamed message, tool_choice "none", the fallback reply, and the 400s a real server
gives for a tool history it cannot accept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ormagic.testing.fake_openrouter import FAKE_API_KEY, FakeOpenRouter, StreamReply, ToolCall

AUTH = {"Authorization": f"Bearer {FAKE_API_KEY}"}
QUESTION = [{"role": "user", "content": "What is there?"}]
CALL = {"id": "c1", "type": "function", "function": {"name": "list_variables", "arguments": "{}"}}


@pytest.fixture
def client(fake_openrouter: FakeOpenRouter) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_openrouter.base_url, headers=AUTH, timeout=5) as c:
        yield c


def deltas(client: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    chunks = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")
    ]
    return [c["choices"][0] for c in chunks if c["choices"]]


def test_a_named_call_streams_as_id_and_name_then_argument_pieces(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.enqueue(
        StreamReply(
            text="",
            tool_calls=[ToolCall("describe_variable", {"name": "sales"}, "call_d")],
            tool_chunk_chars=8,
            keepalives=False,
        )
    )
    choices = deltas(client, {"model": "m", "messages": QUESTION, "stream": True})
    fragments = [c["delta"]["tool_calls"][0] for c in choices if c["delta"].get("tool_calls")]
    assert fragments == [
        {
            "index": 0,
            "id": "call_d",
            "type": "function",
            "function": {"name": "describe_variable", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"name":'}},
        {"index": 0, "function": {"arguments": ' "sales"'}},
        {"index": 0, "function": {"arguments": "}"}},
    ]
    assert [c["finish_reason"] for c in choices if c["finish_reason"]] == ["tool_calls"]


def test_repeated_ids_shared_index_and_no_index(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    calls = [ToolCall("a", {"x": 1}, "ia"), ToolCall("b", {}, "ib")]
    body = {"model": "m", "messages": QUESTION, "stream": True}
    shapes = {}
    for style in ("repeat_ids", "shared_index", "no_index"):
        fake_openrouter.enqueue(StreamReply(text="", tool_calls=calls, tool_style=style))
        shapes[style] = [
            c["delta"]["tool_calls"][0]
            for c in deltas(client, body)
            if c["delta"].get("tool_calls")
        ]
    assert shapes["repeat_ids"][1] == {
        "index": 0,
        "id": "ia",
        "type": "function",
        "function": {"name": "a", "arguments": '{"x": 1}'},
    }
    assert [f["index"] for f in shapes["shared_index"]] == [0, 0, 0, 0]
    assert all("index" not in f for f in shapes["no_index"])


def test_non_streamed_message_and_tool_choice_none(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    reply = StreamReply(text="I will answer now.", tool_calls=[ToolCall("list_variables")])
    fake_openrouter.enqueue(reply, reply)
    result = client.post(
        "/chat/completions", json={"model": "m", "messages": QUESTION, "stream": False}
    ).json()
    message = result["choices"][0]["message"]
    assert message["tool_calls"] == [
        {
            "id": "call_0_fake",
            "type": "function",
            "function": {"name": "list_variables", "arguments": "{}"},
        }
    ]
    assert result["choices"][0]["finish_reason"] == "tool_calls"
    answered = client.post(
        "/chat/completions",
        json={"model": "m", "messages": QUESTION, "stream": False, "tool_choice": "none"},
    ).json()["choices"][0]
    assert (answered["finish_reason"], answered["message"]["content"]) == (
        "stop",
        "I will answer now.",
    )
    assert "tool_calls" not in answered["message"]


def test_a_fallback_reply_answers_every_unscripted_request(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.fallback = StreamReply(text="Again.")
    body = {"model": "m", "messages": QUESTION, "stream": False}
    texts = [
        client.post("/chat/completions", json=body).json()["choices"][0]["message"]["content"]
        for _ in range(3)
    ]
    assert texts == ["Again."] * 3
    fake_openrouter.reset()
    assert fake_openrouter.fallback is None


def error_of(client: httpx.Client, model: str, messages: list[dict[str, Any]]) -> Any:
    response = client.post(
        "/chat/completions", json={"model": model, "messages": messages, "stream": False}
    )
    return response.status_code, response.json().get("error", {}).get("message")


def test_an_incomplete_tool_history_is_refused(client: httpx.Client) -> None:
    asked = {"role": "assistant", "content": None, "tool_calls": [CALL]}
    answered = {"role": "tool", "tool_call_id": "c1", "content": "1 variable"}
    assert error_of(client, "m", [*QUESTION, asked]) == (
        400,
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        "c1",
    )
    assert error_of(client, "m", [*QUESTION, asked, *QUESTION]) == error_of(
        client, "m", [*QUESTION, asked]
    )
    stray = {"role": "tool", "tool_call_id": "zz", "content": "?"}
    assert error_of(client, "m", [*QUESTION, asked, answered, stray]) == (
        400,
        "Invalid parameter: messages with role 'tool' must be a response to a preceding "
        "message with 'tool_calls'.",
    )
    assert error_of(client, "m", [*QUESTION, asked, answered])[0] == 200


def test_deepseek_wants_the_reasoning_of_a_tool_turn_back(client: httpx.Client) -> None:
    flash = "deepseek/deepseek-v4-flash"
    asked = {"role": "assistant", "content": None, "tool_calls": [CALL]}
    answered = {"role": "tool", "tool_call_id": "c1", "content": "1 variable"}
    final = {"role": "assistant", "content": "One.", "reasoning": "", "reasoning_details": []}
    refused = (400, "The `reasoning_content` in the thinking mode must be passed back to the API.")
    assert error_of(client, flash, [*QUESTION, asked, answered]) == refused
    kept = {**asked, "reasoning": "", "reasoning_details": []}
    assert error_of(client, flash, [*QUESTION, kept, answered])[0] == 200
    # every assistant message of that turn, the final answer too, on later turns
    bare_final = {"role": "assistant", "content": "One."}
    later = [*QUESTION, kept, answered, bare_final, *QUESTION]
    assert error_of(client, flash, later) == refused
    assert error_of(client, flash, [*QUESTION, kept, answered, final, *QUESTION])[0] == 200
    # a turn without tool calls needs nothing
    assert error_of(client, flash, [*QUESTION, bare_final, *QUESTION])[0] == 200
