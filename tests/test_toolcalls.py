"""Tool calls at the client's seams: SSE chunks -> ToolCallDelta events -> the assistant
message, with every way providers split, repeat and mislabel fragments
(docs/openrouter-tools.md §1.3-§1.5)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ormagic.client.http import ChatRequest, OpenRouterClient
from ormagic.client.message import MessageBuilder
from ormagic.client.settings import ClientSettings, Secret
from ormagic.client.sse import iter_lines, iter_sse
from ormagic.client.stream import iter_completion_events, iter_events
from ormagic.client.toolcalls import ToolCallAssembler, join_surrogates
from ormagic.events import Event, Finished, ReasoningDelta, TextDelta, ToolCallDelta
from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply, ToolCall

# The recorded stream of docs/openrouter-tools.md §1.3 (CAS-TC, openai/gpt-4.1-mini).
RECORDED = (
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"id":"gen-1754441566-QNLn","provider":"OpenAI","model":"openai/gpt-4.1-mini",'
    b'"object":"chat.completion.chunk","created":1754441566,"choices":[{"index":0,"delta":'
    b'{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":'
    b'"call_o4OCgtJrNoZTmoCRvmlfoHfj","type":"function","function":{"name":"llm_version",'
    b'"arguments":""}}]},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n'
    b'data: {"id":"gen-1754441566-QNLn","choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":null,"tool_calls":[{"index":0,"function":{"arguments":"{}"},"type":"function"}]},'
    b'"finish_reason":null}]}\n\n'
    b'data: {"id":"gen-1754441566-QNLn","choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":""},"finish_reason":"tool_calls","native_finish_reason":"tool_calls"}]}\n\n'
    b'data: {"id":"gen-1754441566-QNLn","choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":""},"finish_reason":null}],"usage":{"prompt_tokens":48,"completion_tokens":11,'
    b'"total_tokens":59,"cost":0.0000368}}\n\n'
    b"data: [DONE]\n\n"
)


def events_of(raw: bytes) -> list[Event]:
    return list(iter_events(iter_sse(iter_lines([raw]))))


def message_of(events: list[Event]) -> dict[str, Any]:
    builder = MessageBuilder()
    for event in events:
        builder.add(event)
    return builder.message()


def test_recorded_stream_gives_fragments_then_the_message_to_send_back() -> None:
    events = events_of(RECORDED)
    fragments = [e for e in events if isinstance(e, ToolCallDelta)]
    assert fragments == [
        ToolCallDelta(0, "call_o4OCgtJrNoZTmoCRvmlfoHfj", "llm_version", ""),
        ToolCallDelta(0, None, None, "{}"),
    ]
    assert [e for e in events if isinstance(e, TextDelta)] == []
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.reason == "tool_calls"
    # content null, the call verbatim, and reasoning fields present though nothing came
    assert message_of(events) == {
        "role": "assistant",
        "content": None,
        "reasoning": "",
        "reasoning_details": [],
        "tool_calls": [
            {
                "id": "call_o4OCgtJrNoZTmoCRvmlfoHfj",
                "type": "function",
                "function": {"name": "llm_version", "arguments": "{}"},
            }
        ],
    }


def test_text_and_reasoning_before_the_call_stay_with_it() -> None:
    detail = {"type": "reasoning.text", "text": "Look first.", "format": "unknown", "index": 0}
    builder = MessageBuilder()
    for event in (
        ReasoningDelta("Look first.", (detail,)),
        TextDelta("Let me check."),
        ToolCallDelta(0, "c1", "list_variables", ""),
    ):
        builder.add(event)
    assert builder.message() == {
        "role": "assistant",
        "content": "Let me check.",
        "reasoning": "Look first.",
        "reasoning_details": [detail],
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "list_variables", "arguments": "{}"},
            }
        ],
    }


def test_a_plain_answer_is_unchanged_unless_reasoning_must_be_kept() -> None:
    builder = MessageBuilder()
    builder.add(TextDelta("Done."))
    assert builder.message() == {"role": "assistant", "content": "Done."}
    # a later round of a tool-calling turn: DeepSeek wants reasoning back, even empty
    assert builder.message(keep_reasoning=True) == {
        "role": "assistant",
        "content": "Done.",
        "reasoning": "",
        "reasoning_details": [],
    }


def assemble(*deltas: ToolCallDelta) -> list[tuple[str, str, str]]:
    assembler = ToolCallAssembler()
    for delta in deltas:
        assembler.add(delta)
    return [(c.id, c.name, c.arguments) for c in assembler.calls()]


def test_ids_repeated_in_every_fragment_are_assigned_not_concatenated() -> None:
    # Fireworks / DeepSeek hosts: id and name again with every piece (litellm#8990)
    assert assemble(
        ToolCallDelta(0, "call_x", "describe_variable", ""),
        ToolCallDelta(0, "call_x", "describe_variable", '{"name"'),
        ToolCallDelta(0, "call_x", "describe_variable", ': "sales"}'),
    ) == [("call_x", "describe_variable", '{"name": "sales"}')]


def test_parallel_calls_sharing_an_index_are_kept_apart() -> None:
    assert assemble(
        ToolCallDelta(0, "call_a", "list_variables", ""),
        ToolCallDelta(0, None, None, "{}"),
        ToolCallDelta(0, "call_b", "describe_variable", ""),
        ToolCallDelta(0, None, None, '{"name": "df"}'),
    ) == [
        ("call_a", "list_variables", "{}"),
        ("call_b", "describe_variable", '{"name": "df"}'),
    ]


def test_interleaved_parallel_fragments_follow_their_index() -> None:
    assert assemble(
        ToolCallDelta(0, "call_a", "value_counts", ""),
        ToolCallDelta(1, "call_b", "preview_rows", ""),
        ToolCallDelta(0, None, None, '{"name": '),
        ToolCallDelta(1, None, None, '{"name": "df", '),
        ToolCallDelta(0, None, None, '"df"}'),
        ToolCallDelta(1, None, None, '"rows": 3}'),
    ) == [
        ("call_a", "value_counts", '{"name": "df"}'),
        ("call_b", "preview_rows", '{"name": "df", "rows": 3}'),
    ]


def test_fragments_without_an_index_continue_the_last_call() -> None:
    assert assemble(
        ToolCallDelta(None, "call_a", "read_cell", ""),
        ToolCallDelta(None, None, None, '{"number": 3}'),
        ToolCallDelta(None, "call_b", "last_error", ""),
    ) == [("call_a", "read_cell", '{"number": 3}'), ("call_b", "last_error", "{}")]


def test_missing_empty_and_duplicate_ids_are_generated_once() -> None:
    assembler = ToolCallAssembler()
    for delta in (
        ToolCallDelta(0, None, "list_variables", ""),
        ToolCallDelta(1, "", "last_error", "  "),
        ToolCallDelta(2, "same", "read_cell", '{"number": 1}'),
        ToolCallDelta(3, "same", "read_cell", '{"number": 2}'),
    ):
        assembler.add(delta)
    calls = assembler.calls()
    ids = [c.id for c in calls]
    assert ids[2] == "same"
    assert len(set(ids)) == 4 and all(i.startswith("call_") for i in (ids[0], ids[1], ids[3]))
    assert [c.arguments for c in calls] == ["{}", "{}", '{"number": 1}', '{"number": 2}']
    assert [c.id for c in assembler.calls()] == ids  # generated ids are stable


def test_surrogate_halves_split_across_fragments_are_joined() -> None:
    # "📈" (U+1F4C8) is two UTF-16 code units; a JavaScript gateway cutting the arguments
    # string between them sends each half as an escape of its own
    high, low = json.loads('"\\ud83d"'), json.loads('"\\udcc8"')
    assert join_surrogates(high + low) == "📈"
    assert assemble(
        ToolCallDelta(0, "c", "search_notebook", '{"text": "' + high),
        ToolCallDelta(0, None, None, low + '"}'),
    ) == [("c", "search_notebook", '{"text": "📈"}')]
    assert join_surrogates("a\ud83db") == "a\ufffdb"  # a lone half cannot be sent as UTF-8


def test_a_non_streaming_answer_with_tool_calls() -> None:
    body = {
        "id": "gen-1",
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "read_cell", "arguments": {"number": 2}},
                        },
                        {"id": "call_2", "type": "function", "function": {"name": "last_error"}},
                    ],
                },
            }
        ],
    }
    message = message_of(list(iter_completion_events(body)))
    assert message["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "read_cell", "arguments": '{"number": 2}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "last_error", "arguments": "{}"}},
    ]


CALLS = [
    ToolCall("describe_variable", {"name": "Umsätze 📈"}, id="call_a"),
    ToolCall("value_counts", {"name": "sales", "column": "région", "top": 5}, id="call_b"),
]
EXPECTED = [
    {
        "id": "call_a",
        "type": "function",
        "function": {"name": "describe_variable", "arguments": '{"name": "Umsätze 📈"}'},
    },
    {
        "id": "call_b",
        "type": "function",
        "function": {
            "name": "value_counts",
            "arguments": '{"name": "sales", "column": "région", "top": 5}',
        },
    },
]


@pytest.mark.parametrize(
    "style", ["openai", "repeat_ids", "shared_index", "no_index", "interleaved"]
)
@pytest.mark.parametrize(("chunk", "byte_at_a_time"), [(0, False), (1, False), (3, True)])
def test_every_fragment_shape_from_the_fake_server_assembles_the_same_calls(
    fake_openrouter: FakeOpenRouter, style: str, chunk: int, byte_at_a_time: bool
) -> None:
    # tool_chunk_chars=1 cuts "📈" into its two UTF-16 halves; byte_at_a_time cuts every
    # multi-byte character across network reads too
    fake_openrouter.enqueue(
        StreamReply(
            text="",
            tool_calls=CALLS,
            tool_style=style,
            tool_chunk_chars=chunk,
            byte_at_a_time=byte_at_a_time,
        )
    )
    settings = ClientSettings(
        api_key=Secret(fake_openrouter.api_key), base_url=fake_openrouter.base_url
    )
    with (
        OpenRouterClient(settings) as client,
        client.stream_chat(ChatRequest([{"role": "user", "content": "?"}])) as events,
    ):
        received = list(events)
    message = message_of(received)
    assert message["tool_calls"] == EXPECTED
    assert message["content"] is None
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"name": "Umsätze 📈"}
    finished = received[-1]
    assert isinstance(finished, Finished) and finished.reason == "tool_calls"
