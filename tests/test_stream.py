"""Chunk interpretation: SSE items -> ormagic events (docs/openrouter-api.md §4-§6)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from ormagic.client.sse import SSEComment, SSEEvent, iter_lines, iter_sse
from ormagic.client.stream import iter_completion_events, iter_events
from ormagic.errors import ProtocolError, StreamError, TransportError
from ormagic.events import (
    Event,
    Finished,
    KeepAlive,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    Usage,
)

# docs/openrouter-api.md §4.4, verbatim.
SECTION_4_4 = """: OPENROUTER PROCESSING

data: {"id":"gen-1785160442-AbCdEfGhIjKlMnOpQrSt","object":"chat.completion.chunk","created":1785160442,"model":"deepseek/deepseek-v4-flash","provider":"DeepSeek","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"The user","reasoning_details":[{"type":"reasoning.text","text":"The user","format":"unknown","index":0}]},"finish_reason":null,"native_finish_reason":null}]}

data: {"id":"gen-1785160442-AbCdEfGhIjKlMnOpQrSt","object":"chat.completion.chunk","created":1785160442,"model":"deepseek/deepseek-v4-flash","provider":"DeepSeek","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":" asks for 2+2.","reasoning_details":[{"type":"reasoning.text","text":" asks for 2+2.","format":"unknown","index":0}]},"finish_reason":null,"native_finish_reason":null}]}

: OPENROUTER PROCESSING

data: {"id":"gen-1785160442-AbCdEfGhIjKlMnOpQrSt","object":"chat.completion.chunk","created":1785160442,"model":"deepseek/deepseek-v4-flash","provider":"DeepSeek","choices":[{"index":0,"delta":{"role":"assistant","content":"4"},"finish_reason":null,"native_finish_reason":null}]}

data: {"id":"gen-1785160442-AbCdEfGhIjKlMnOpQrSt","object":"chat.completion.chunk","created":1785160442,"model":"deepseek/deepseek-v4-flash","provider":"DeepSeek","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":null},"finish_reason":"stop","native_finish_reason":"stop"}]}

data: {"id":"gen-1785160442-AbCdEfGhIjKlMnOpQrSt","object":"chat.completion.chunk","created":1785160442,"model":"deepseek/deepseek-v4-flash","provider":"DeepSeek","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,"cost":0.0000042,"is_byok":false,"prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"completion_tokens_details":{"reasoning_tokens":6},"cost_details":{"upstream_inference_cost":null,"upstream_inference_prompt_cost":0.00000168,"upstream_inference_completions_cost":0.00000252}}}

data: [DONE]

"""  # noqa: E501

GEN = "gen-1785160442-AbCdEfGhIjKlMnOpQrSt"
MODEL = "deepseek/deepseek-v4-flash"
PROCESSING = KeepAlive("OPENROUTER PROCESSING")


def events_of(raw: bytes | Iterable[bytes], generation_id: str | None = None) -> list[Event]:
    chunks = [raw] if isinstance(raw, bytes) else raw
    return list(iter_events(iter_sse(iter_lines(chunks)), generation_id=generation_id))


def data(obj: Any) -> SSEEvent:
    return SSEEvent(json.dumps(obj))


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> SSEEvent:
    """A chunk shaped like real traffic (§4.2), with one choice unless ``choices`` given."""
    body: dict[str, Any] = {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "created": 1785160442,
        "model": MODEL,
        "provider": "DeepSeek",
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", **(delta or {})},
                "finish_reason": finish,
                "native_finish_reason": finish,
            }
        ],
    }
    body.update(top)
    return data(body)


def only_these(*items: SSEEvent | SSEComment) -> Iterator[SSEEvent | SSEComment]:
    """Yield ``items``, then fail the test if anyone reads further."""
    yield from items
    raise AssertionError("read past the end")


def failure(event: Event) -> tuple[Any, ...]:
    """A StreamFailed as comparable values (exceptions compare by identity)."""
    assert isinstance(event, StreamFailed)
    error = event.error
    fields = (type(error), str(error), event.generation_id, event.model, event.provider)
    if isinstance(error, StreamError):
        return (*fields, error.code, dict(error.metadata), error.generation_id)
    return fields


TEXT_1 = {"type": "reasoning.text", "text": "The user", "format": "unknown", "index": 0}
TEXT_2 = {"type": "reasoning.text", "text": " asks for 2+2.", "format": "unknown", "index": 0}
EXPECTED_4_4: list[Event] = [
    PROCESSING,
    ReasoningDelta("The user", (TEXT_1,)),
    ReasoningDelta(" asks for 2+2.", (TEXT_2,)),
    PROCESSING,
    TextDelta("4"),
    Usage(prompt_tokens=12, completion_tokens=9, reasoning_tokens=6, cached_tokens=0, cost=4.2e-6),
    Finished("stop", "stop", GEN, MODEL, "DeepSeek"),
]


def test_section_4_4_stream_gives_exact_events() -> None:
    events = events_of(SECTION_4_4.encode(), generation_id="gen-from-header")
    assert events == EXPECTED_4_4
    usage = events[5]
    assert isinstance(usage, Usage)
    assert usage.raw["cost_details"]["upstream_inference_completions_cost"] == 0.00000252
    assert usage.raw["is_byok"] is False


@pytest.mark.parametrize("end", ["\r\n", "\r"])
def test_section_4_4_byte_at_a_time_with_other_line_ends(end: str) -> None:
    raw = SECTION_4_4.replace("\n", end).encode()
    assert events_of(raw[i : i + 1] for i in range(len(raw))) == EXPECTED_4_4


USAGE = {
    "prompt_tokens": 71,
    "completion_tokens": 15,
    "total_tokens": 86,
    "cost": 0.0000524,
    "is_byok": False,
    "prompt_tokens_details": {"cached_tokens": 3},
    "cost_details": {"upstream_inference_cost": None},
    "completion_tokens_details": {"reasoning_tokens": 4},
}
USAGE_CHUNKS = {
    "empty_choices": data({"id": "gen-1", "model": MODEL, "choices": [], "usage": USAGE}),
    "one_choice": chunk({"content": ""}, usage=USAGE),
    "with_finish": chunk({"content": ""}, "stop", usage=USAGE),
    "no_choices_key": data({"id": "gen-1", "usage": USAGE}),
}


@pytest.mark.parametrize("variant", sorted(USAGE_CHUNKS))
def test_usage_in_each_variant(variant: str) -> None:
    items = [chunk({"content": "Hi"}), chunk({"content": ""}, "stop"), USAGE_CHUNKS[variant]]
    events = list(iter_events(only_these(*items, SSEEvent("[DONE]"))))
    assert events == [
        TextDelta("Hi"),
        Usage(71, 15, reasoning_tokens=4, cached_tokens=3, cost=0.0000524),
        Finished("stop", "stop", "gen-1", MODEL, "DeepSeek"),
    ]


def test_usage_without_nested_details_or_cost() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    events = list(iter_events([data({"choices": [], "usage": usage})]))
    assert events == [Usage(5, 2, 0, 0, None), Finished()]
    assert events[0].raw == usage  # type: ignore[union-attr]


def test_only_the_last_usage_is_emitted_just_before_the_end() -> None:
    first = data({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    last = data({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 9}})
    events = list(iter_events([first, chunk({"content": "x"}), last]))
    assert events == [TextDelta("x"), Usage(1, 9), Finished(None, None, "gen-1", MODEL, "DeepSeek")]


MID_STREAM_ERROR = [
    chunk({"content": "Partial ans"}, id="gen-1785160442-XyZ"),
    data(
        {
            "id": "gen-1785160442-XyZ",
            "object": "chat.completion.chunk",
            "model": MODEL,
            "provider": "DeepSeek",
            "error": {
                "code": 502,
                "message": "Provider disconnected unexpectedly",
                "metadata": {"error_type": "provider_unavailable"},
            },
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
        }
    ),
]
EXPECTED_MID_STREAM_FAILURE = (
    StreamError,
    "Provider disconnected unexpectedly",
    "gen-1785160442-XyZ",
    MODEL,
    "DeepSeek",
    502,
    {"error_type": "provider_unavailable"},
    "gen-1785160442-XyZ",
)


@pytest.mark.parametrize(
    "after",
    [[], [SSEEvent("[DONE]")], [chunk({"content": "never read"})]],
    ids=["then-eof", "then-done", "then-more-data"],
)
def test_mid_stream_error_is_terminal(after: list[SSEEvent]) -> None:
    # only_these() fails the test if anything after the error chunk is read.
    events = list(iter_events(only_these(*MID_STREAM_ERROR, *after)))
    assert events[0] == TextDelta("Partial ans")
    assert len(events) == 2
    assert failure(events[1]) == EXPECTED_MID_STREAM_FAILURE


def test_string_error_code_and_missing_metadata() -> None:
    error = {"error": {"code": "server_error", "message": "Upstream timed out"}, "choices": []}
    events = list(iter_events([data(error)], generation_id="gen-h"))
    assert len(events) == 1
    assert failure(events[0]) == (
        StreamError,
        "Upstream timed out",
        "gen-h",
        None,
        None,
        "server_error",
        {},
        "gen-h",
    )


def test_error_inside_a_choice_is_terminal_too() -> None:
    error = {"code": 429, "message": "Rate limited upstream", "metadata": {"error_type": "x"}}
    choice = {"index": 0, "delta": {"content": "b"}, "finish_reason": "error", "error": error}
    items = [chunk({"content": "a"}), data({"id": "gen-1", "choices": [choice]})]
    events = list(iter_events(only_these(*items)))
    assert events[:2] == [TextDelta("a"), TextDelta("b")]
    assert failure(events[2]) == (
        StreamError,
        "Rate limited upstream",
        "gen-1",
        MODEL,
        "DeepSeek",
        429,
        {"error_type": "x"},
        "gen-1",
    )
    assert len(events) == 3


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("Internal Server Error", "'Internal Server Error'"),
        ("[1, 2]", "'[1, 2]'"),
        ('"just a string"', "'\"just a string\"'"),
        ("x" * 100, repr("x" * 80) + "..."),
    ],
)
def test_data_that_is_not_a_json_object_is_a_protocol_error(bad: str, message: str) -> None:
    events = list(iter_events(only_these(chunk({"content": "a"}), SSEEvent(bad))))
    assert events[0] == TextDelta("a")
    assert failure(events[1]) == (
        ProtocolError,
        f"The server sent a stream chunk that is not a JSON object: {message}",
        "gen-1",
        MODEL,
        "DeepSeek",
    )
    assert len(events) == 2


def test_done_stops_reading_at_once() -> None:
    items = only_these(SSEComment("x"), chunk({"content": "a"}), SSEEvent("[DONE]"))
    assert list(iter_events(items)) == [
        KeepAlive("x"),
        TextDelta("a"),
        Finished(None, None, "gen-1", MODEL, "DeepSeek"),
    ]


def test_eof_without_done_finishes() -> None:
    events = events_of(
        b'data: {"choices":[{"delta":{"content":"a"},"finish_reason":"length"}]}\n\n'
    )
    assert events == [TextDelta("a"), Finished("length")]


def test_empty_stream_is_a_protocol_error_with_the_header_generation_id() -> None:
    [failed] = list(iter_events([], generation_id="gen-h"))
    assert isinstance(failed, StreamFailed) and failed.generation_id == "gen-h"
    assert isinstance(failed.error, ProtocolError)
    assert str(failed.error) == (
        "The stream ended before the answer was complete (no [DONE], no finish reason); "
        "what arrived is kept."
    )


def test_a_stream_that_just_stops_keeps_what_arrived_and_says_it_was_cut() -> None:
    events = events_of(b'data: {"choices":[{"delta":{"content":"Hal"}}]}\n\ndata: {"cho')
    assert events[0] == TextDelta("Hal")
    assert isinstance(events[1], StreamFailed) and isinstance(events[1].error, ProtocolError)
    assert len(events) == 2


def test_the_usage_chunk_also_says_the_stream_is_complete() -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 1}
    events = list(iter_events([chunk({"content": "a"}), data({"choices": [], "usage": usage})]))
    assert events[-1] == Finished(None, None, "gen-1", MODEL, "DeepSeek")


def test_json_nested_deeper_than_python_goes_is_a_protocol_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    events = events_of(b'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: ' + deep.encode())
    assert events[0] == TextDelta("a")
    assert isinstance(events[1], StreamFailed) and isinstance(events[1].error, ProtocolError)


def test_generation_id_model_and_finish_reason_are_remembered() -> None:
    items = [
        data({"choices": [{"delta": {"content": "a"}}]}),
        data({"id": "gen-2", "model": "m", "provider": "P", "choices": [{"delta": {}}]}),
        data(
            {"choices": [{"delta": {}, "finish_reason": "length", "native_finish_reason": "max"}]}
        ),
        data({"id": "", "model": None, "choices": [{"delta": {}, "finish_reason": None}]}),
    ]
    events = list(iter_events(items, generation_id="gen-h"))
    assert events == [TextDelta("a"), Finished("length", "max", "gen-2", "m", "P")]


def test_odd_choices_do_not_crash() -> None:
    items = [
        data({"id": "gen-1"}),
        data({"choices": []}),
        data({"choices": None}),
        data({"choices": "nope"}),
        data({"choices": [None, 3]}),
        data({"choices": [{"delta": None}]}),
        data({"choices": [{"delta": {"content": None, "reasoning": None}}]}),
        data({"choices": [{"delta": {"content": ["part"], "reasoning": 5}}]}),
        SSEEvent(""),
        SSEEvent("  "),
        data({"choices": [{"delta": {"content": "ok"}}]}),
        SSEEvent("[DONE]"),
    ]
    assert list(iter_events(items)) == [TextDelta("ok"), Finished(generation_id="gen-1")]


def test_reasoning_string_and_its_alias() -> None:
    items = [
        chunk({"reasoning": "plain", "content": ""}),
        chunk({"reasoning_content": "alias"}),
        chunk({"reasoning": "", "reasoning_content": "second"}),
    ]
    assert list(iter_events(items))[:3] == [
        ReasoningDelta("plain"),
        ReasoningDelta("alias"),
        ReasoningDelta("second"),
    ]


def test_details_win_over_the_same_text_in_reasoning() -> None:
    detail = {"type": "reasoning.text", "text": "same", "index": 0}
    items = [chunk({"reasoning": "same", "reasoning_details": [detail], "content": "A"})]
    assert list(iter_events(items))[:2] == [ReasoningDelta("same", (detail,)), TextDelta("A")]


def test_unknown_fields_and_unknown_detail_types_are_kept() -> None:
    details: list[dict[str, Any]] = [
        {"type": "reasoning.text", "text": "think ", "signature": None, "id": "r1", "index": 0},
        {"type": "reasoning.summary", "summary": "summed", "format": "openai-responses-v1"},
        {"type": "reasoning.encrypted", "data": "gAAAA", "format": "openai-responses-v1"},
        {"type": "reasoning.server_tool_call", "tool_name": "fusion", "arguments": {}},
        {"type": "reasoning.future", "payload": [1, 2], "text": "not shown"},
    ]
    item = chunk(
        {
            "reasoning_details": [*details, "not-a-dict"],
            "tool_calls": None,
            "refusal": None,
            "new_field": 1,
        },
        openrouter_metadata={"x": 1},
        service_tier="default",
    )
    assert list(iter_events([item, SSEEvent("[DONE]")])) == [
        ReasoningDelta("think summed", tuple(details)),
        Finished(None, None, "gen-1", MODEL, "DeepSeek"),
    ]


def test_encrypted_reasoning_has_no_text_but_is_kept() -> None:
    detail = {"type": "reasoning.encrypted", "data": "[REDACTED]", "format": "anthropic-claude-v1"}
    events = list(iter_events([chunk({"reasoning_details": [detail], "reasoning": None})]))
    assert events[0] == ReasoningDelta("", (detail,))
    assert isinstance(events[0], ReasoningDelta)
    assert events[0].encrypted is True


def test_an_error_raised_by_the_source_becomes_the_terminal_event() -> None:
    def source() -> Iterator[SSEEvent]:
        yield chunk({"content": "a"}, id="gen-9")
        raise TransportError("dropped")

    events = list(iter_events(source()))
    assert events[0] == TextDelta("a")
    assert failure(events[1]) == (TransportError, "dropped", "gen-9", MODEL, "DeepSeek")
    assert len(events) == 2


def test_usage_seen_before_a_failure_is_still_reported() -> None:
    items = [
        data({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        SSEEvent("garbage"),
    ]
    events = list(iter_events(items))
    assert events[0] == Usage(3, 2)
    assert isinstance(events[1], StreamFailed)
    assert isinstance(events[1].error, ProtocolError)


# -- non-streaming JSON completions (§3) --------------------------------------------------

COMPLETION = {
    "id": "gen-1785160442-5ORlzdIrlBsDoqBP7E7B",
    "object": "chat.completion",
    "created": 1785160442,
    "model": MODEL,
    "provider": "DeepSeek",
    "system_fingerprint": None,
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "native_finish_reason": "stop",
            "message": {
                "role": "assistant",
                "content": "4",
                "reasoning": "The user asks 2+2 ...",
                "reasoning_details": [
                    {
                        "type": "reasoning.text",
                        "text": "The user asks 2+2 ...",
                        "format": "unknown",
                        "index": 0,
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21, "cost": 0.0000042},
}


def test_non_streaming_completion_gives_the_same_events_as_a_stream() -> None:
    detail = COMPLETION["choices"][0]["message"]["reasoning_details"][0]  # type: ignore[index]
    assert list(iter_completion_events(COMPLETION, generation_id="gen-h")) == [
        ReasoningDelta("The user asks 2+2 ...", (detail,)),
        TextDelta("4"),
        Usage(12, 9, 0, 0, 0.0000042),
        Finished("stop", "stop", "gen-1785160442-5ORlzdIrlBsDoqBP7E7B", MODEL, "DeepSeek"),
    ]


def test_non_streaming_provider_error_after_partial_output() -> None:
    body = {
        "id": "gen-5",
        "choices": [
            {
                "finish_reason": "error",
                "message": {"role": "assistant", "content": "Half an"},
                "error": {
                    "code": 502,
                    "message": "Provider died",
                    "metadata": {"error_type": "server"},
                },
            }
        ],
    }
    events = list(iter_completion_events(body))
    assert events[0] == TextDelta("Half an")
    assert failure(events[1]) == (
        StreamError,
        "Provider died",
        "gen-5",
        None,
        None,
        502,
        {"error_type": "server"},
        "gen-5",
    )
    assert len(events) == 2
