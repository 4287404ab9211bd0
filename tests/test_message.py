"""Accumulating the assistant message (docs/openrouter-api.md §4.4, §5)."""

from __future__ import annotations

import json
from typing import Any

from waiting import LINEAR_GROWTH_LIMIT, growth

from ormagic.client.message import MessageBuilder
from ormagic.client.sse import iter_lines, iter_sse
from ormagic.client.stream import iter_events
from ormagic.events import Finished, KeepAlive, ReasoningDelta, TextDelta, Usage

# The data chunks of the §4.4 stream, with its keep-alives.
_BASE = (
    '{"id":"gen-1785160442-AbCdEfGhIjKlMnOpQrSt","object":"chat.completion.chunk",'
    '"created":1785160442,"model":"deepseek/deepseek-v4-flash","provider":"DeepSeek",'
)
SECTION_4_4 = "".join(
    f"{line}\n\n"
    for line in [
        ": OPENROUTER PROCESSING",
        "data: "
        + _BASE
        + '"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":'
        '"The user","reasoning_details":[{"type":"reasoning.text","text":"The user",'
        '"format":"unknown","index":0}]},"finish_reason":null,"native_finish_reason":null}]}',
        "data: "
        + _BASE
        + '"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":'
        '" asks for 2+2.","reasoning_details":[{"type":"reasoning.text","text":'
        '" asks for 2+2.","format":"unknown","index":0}]},"finish_reason":null,'
        '"native_finish_reason":null}]}',
        ": OPENROUTER PROCESSING",
        "data: " + _BASE + '"choices":[{"index":0,"delta":{"role":"assistant","content":"4"},'
        '"finish_reason":null,"native_finish_reason":null}]}',
        "data: "
        + _BASE
        + '"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":null},'
        '"finish_reason":"stop","native_finish_reason":"stop"}]}',
        "data: "
        + _BASE
        + '"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,'
        '"cost":0.0000042,"is_byok":false,"prompt_tokens_details":{"cached_tokens":0,'
        '"cache_write_tokens":0},"completion_tokens_details":{"reasoning_tokens":6},'
        '"cost_details":{"upstream_inference_cost":null,"upstream_inference_prompt_cost":'
        '0.00000168,"upstream_inference_completions_cost":0.00000252}}}',
        "data: [DONE]",
    ]
)
# The accumulated message printed under §4.4, verbatim.
EXPECTED_4_4 = json.loads(
    '{"role":"assistant","content":"4","reasoning":"The user asks for 2+2.",'
    '"reasoning_details":[{"type":"reasoning.text","text":"The user asks for 2+2.",'
    '"format":"unknown","index":0}]}'
)


def built(*events: Any) -> MessageBuilder:
    builder = MessageBuilder()
    for event in events:
        builder.add(event)
    return builder


def text_item(text: str | None, index: int | None = 0, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning.text", "text": text, **extra}
    if index is not None:
        item["index"] = index
    return item


def test_section_4_4_accumulated_message() -> None:
    events = iter_events(iter_sse(iter_lines([SECTION_4_4.encode()])))
    builder = built(*events)
    assert builder.message() == EXPECTED_4_4
    assert builder.content == "4"
    assert builder.reasoning == "The user asks for 2+2."


def test_text_only_message_has_no_reasoning_keys() -> None:
    builder = built(TextDelta("Hel"), KeepAlive(), TextDelta("lo"), Usage(1, 2), Finished())
    assert builder.message() == {"role": "assistant", "content": "Hello"}
    assert builder.reasoning_details == []


def test_empty_builder() -> None:
    assert MessageBuilder().message() == {"role": "assistant", "content": ""}


def test_plain_reasoning_without_details() -> None:
    builder = built(ReasoningDelta("Let me "), ReasoningDelta("think."), TextDelta("Done"))
    assert builder.message() == {
        "role": "assistant",
        "content": "Done",
        "reasoning": "Let me think.",
    }


def test_same_index_merges_keeping_first_format_and_other_keys() -> None:
    builder = built(
        ReasoningDelta("a", (text_item("a", id="r1", format=None),)),
        ReasoningDelta("b", (text_item("b", id="r2", format="anthropic-claude-v1"),)),
        ReasoningDelta("", (text_item(None, format="unknown"),)),
        ReasoningDelta("c", (text_item("c"),)),
    )
    assert builder.reasoning_details == [
        {
            "type": "reasoning.text",
            "text": "abc",
            "id": "r1",
            "format": "anthropic-claude-v1",
            "index": 0,
        }
    ]
    assert builder.reasoning == "abc"


def test_signature_arriving_late_is_kept() -> None:
    builder = built(
        ReasoningDelta("Hmm", (text_item("Hmm", signature=None, format="anthropic-claude-v1"),)),
        ReasoningDelta(", ok", (text_item(", ok", signature=""),)),
        ReasoningDelta("", (text_item("", signature="sig-123"),)),
        ReasoningDelta("", (text_item("", signature="sig-other"),)),
    )
    assert builder.reasoning_details == [
        text_item("Hmm, ok", signature="sig-123", format="anthropic-claude-v1")
    ]


def test_index_change_starts_a_new_item() -> None:
    builder = built(
        ReasoningDelta("a", (text_item("a", 0),)),
        ReasoningDelta("b", (text_item("b", 0), text_item("c", 1))),
        ReasoningDelta("d", (text_item("d", 1),)),
        ReasoningDelta("e", (text_item("e", 0),)),
    )
    assert builder.reasoning_details == [
        text_item("ab", 0),
        text_item("cd", 1),
        text_item("e", 0),
    ]


def test_items_without_index_merge_with_each_other_only() -> None:
    builder = built(
        ReasoningDelta("x", (text_item("x", None),)),
        ReasoningDelta("y", (text_item("y", None),)),
        ReasoningDelta("z", (text_item("z", 0),)),
    )
    assert builder.reasoning_details == [text_item("xy", None), text_item("z", 0)]


def test_summary_encrypted_and_unknown_are_kept_in_order_and_break_runs() -> None:
    summary = {"type": "reasoning.summary", "summary": "S", "format": "openai-responses-v1"}
    encrypted = {"type": "reasoning.encrypted", "data": "gAAA", "format": "openai-responses-v1"}
    unknown = {"type": "reasoning.future", "blob": [1]}
    builder = built(
        ReasoningDelta("a", (text_item("a"),)),
        ReasoningDelta("S", (summary,)),
        ReasoningDelta("b", (text_item("b"),)),
        ReasoningDelta("", (encrypted, unknown)),
        ReasoningDelta("c", (text_item("c"),)),
        ReasoningDelta("d", (text_item("d"),)),
        ReasoningDelta("", (dict(summary),)),
    )
    assert builder.reasoning_details == [
        text_item("a"),
        summary,
        text_item("b"),
        encrypted,
        unknown,
        text_item("cd"),
        summary,
    ]
    assert builder.reasoning == "aSbcd"
    assert builder.message()["reasoning"] == "aSbcd"


def test_encrypted_only_reasoning_sends_details_but_no_reasoning_string() -> None:
    encrypted = {"type": "reasoning.encrypted", "data": "[REDACTED]"}
    builder = built(ReasoningDelta("", (encrypted,)), TextDelta("Hi"))
    assert builder.message() == {
        "role": "assistant",
        "content": "Hi",
        "reasoning_details": [encrypted],
    }


def test_returned_details_are_copies() -> None:
    item = text_item("a")
    builder = built(ReasoningDelta("a", (item,)))
    builder.reasoning_details[0]["text"] = "changed"
    builder.message()["reasoning_details"][0]["index"] = 9
    assert builder.reasoning_details == [text_item("a")]
    assert item == text_item("a")


def test_reading_midway_then_adding_more() -> None:
    builder = built(TextDelta("a"), TextDelta("b"), ReasoningDelta("r", (text_item("r"),)))
    assert builder.content == "ab"
    assert builder.reasoning_details == [text_item("r")]
    builder.add(TextDelta("c"))
    builder.add(ReasoningDelta("s", (text_item("s"),)))
    assert builder.content == "abc"
    assert builder.reasoning_details == [text_item("rs")]


def test_many_deltas_accumulate_in_linear_time() -> None:
    piece = "token " * 20

    def accumulate(n: int) -> dict[str, Any]:
        builder = MessageBuilder()
        for _ in range(n):
            builder.add(ReasoningDelta(piece, (text_item(piece),)))
            builder.add(TextDelta(piece))
        return builder.message()

    message = accumulate(10_000)
    assert len(message["content"]) == 10_000 * len(piece)
    assert message["reasoning_details"][0]["text"] == piece * 10_000
    assert growth(lambda n: lambda: accumulate(n), 5_000, repeats=3) < LINEAR_GROWTH_LIMIT
