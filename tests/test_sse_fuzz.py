"""The SSE decoder and the stream interpreter under property-based fuzzing (hypothesis).

- Any split of a valid stream into network chunks gives the same events, and those are
  the events the stream was built from.
- Random bytes, truncated streams and two streams interleaved always end, with exactly
  one terminal event and no exception; one that never says it is complete ends in the
  protocol error, keeping whatever valid text came before.

The budget is bounded (a fixed number of examples, derandomized, no example database),
so the suite stays quick and every run tries the same cases.
"""

from __future__ import annotations

import atexit
import itertools
import json
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from ormagic.client.sse import iter_lines, iter_sse
from ormagic.client.stream import iter_events
from ormagic.errors import ProtocolError, StreamError
from ormagic.events import (
    Event,
    Finished,
    KeepAlive,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    Usage,
)

# hypothesis caches what it learns under .hypothesis/ in the working directory: not here
_HOME = tempfile.mkdtemp(prefix="ormagic-hypothesis-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
set_hypothesis_home_dir(_HOME)
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None)
GEN, MODEL, PROVIDER = "gen-1-fuzz", "fuzz/model", "FuzzProvider"
USAGE = {"prompt_tokens": 7, "completion_tokens": 3}

# Text a model may send: any Unicode (line separators, surrogate-free astral characters,
# quotes, backslashes, NUL), so JSON escapes and UTF-8 sequences of every length occur.
texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@dataclass(frozen=True)
class Piece:
    """One item of a stream: its event-stream text and the event it must give."""

    wire: str
    event: Event | None


def _data(chunk: dict[str, Any], ascii_only: bool) -> str:
    return "data: " + json.dumps(chunk, ensure_ascii=ascii_only)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": GEN, "model": MODEL, "provider": PROVIDER, "choices": [choice]}


@st.composite
def pieces(draw: st.DrawFn) -> Piece:
    kind = draw(st.sampled_from(["content", "reasoning", "keepalive", "empty", "unknown"]))
    ascii_only = draw(st.booleans())
    if kind == "content":
        text = draw(texts)
        return Piece(_data(_chunk({"content": text}), ascii_only), TextDelta(text))
    if kind == "reasoning":
        text = draw(texts)
        chunk = _chunk({"content": "", "reasoning": text})
        return Piece(_data(chunk, ascii_only), ReasoningDelta(text))
    if kind == "keepalive":
        return Piece(": OPENROUTER PROCESSING", KeepAlive("OPENROUTER PROCESSING"))
    if kind == "empty":
        return Piece(_data(_chunk({"content": ""}), ascii_only), None)
    return Piece(_data({**_chunk({}), "new_field": [1, {"x": None}]}, ascii_only), None)


@dataclass(frozen=True)
class Stream:
    body: bytes
    events: list[Event]
    finish_at: int  # bytes after which the stream has said it finished


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    items = draw(st.lists(pieces(), max_size=12))
    newline = draw(st.sampled_from(["\n", "\r", "\r\n"]))
    bom = "\ufeff" if draw(st.booleans()) else ""

    def block(wire: str) -> str:
        # a comment is a line of its own; an event ends at a blank line
        return wire + newline + ("" if wire.startswith(":") else newline)

    head = bom + "".join(block(p.wire) for p in items)
    finish = block(_data(_chunk({"content": ""}, "stop"), False))
    tail = block(_data({"id": GEN, "choices": [], "usage": USAGE}, False)) + block("data: [DONE]")
    events = [p.event for p in items if p.event is not None]
    events += [Usage(7, 3), Finished("stop", None, GEN, MODEL, PROVIDER)]
    finish_at = len((head + finish).encode())
    return Stream((head + finish + tail).encode(), events, finish_at)


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(body), *(cut % (len(body) + 1) for cut in cuts)})
    return [body[a:b] for a, b in itertools.pairwise(points)]


def decode(chunks: list[bytes]) -> list[Event]:
    return list(iter_events(iter_sse(iter_lines(chunks))))


def assert_well_ended(events: list[Event]) -> Event:
    """Exactly one terminal event, last; at most one Usage, just before it."""
    terminal = [e for e in events if isinstance(e, Finished | StreamFailed)]
    assert len(terminal) == 1 and events[-1] is terminal[0]
    usages = [i for i, e in enumerate(events) if isinstance(e, Usage)]
    assert usages in ([], [len(events) - 2])
    return events[-1]


@FUZZ
@given(stream=streams(), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_any_split_of_a_valid_stream_gives_its_events(stream: Stream, cuts: list[int]) -> None:
    assert decode([stream.body]) == stream.events
    assert decode(split(stream.body, cuts)) == stream.events


@FUZZ
@given(stream=streams())
def test_one_byte_at_a_time_gives_the_same_events(stream: Stream) -> None:
    assert decode([stream.body[i : i + 1] for i in range(len(stream.body))]) == stream.events


@FUZZ
@given(stream=streams(), at=st.integers(min_value=0), cuts=st.lists(st.integers(min_value=0)))
def test_a_truncated_stream_keeps_a_prefix_and_says_it_was_cut(
    stream: Stream, at: int, cuts: list[int]
) -> None:
    body = stream.body[: at % (len(stream.body) + 1)]
    events = decode(split(body, cuts))
    last = assert_well_ended(events)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    full = "".join(e.text for e in stream.events if isinstance(e, TextDelta))
    assert full.startswith(text)
    if len(body) < stream.finish_at:
        assert isinstance(last, StreamFailed) and isinstance(last.error, ProtocolError)
    else:
        assert last == stream.events[-1]


SSE_SHARDS = st.sampled_from(
    [
        *(b"data: ", b"data:", b"\n", b"\r", b"\r\n", b"\n\n", b": ping\n", b"event: x\n"),
        *(b"id: 1\n", b"retry: 10\n", b"{", b"}", b'"choices":[', b'{"delta":{"content":"a"}}'),
        *(b"[DONE]", b"\xef\xbb\xbf", b"\xff\xfe", b"\xe2\x80", b"\x00", b'"usage":{}'),
    ]
)


@FUZZ
@given(
    shards=st.lists(st.one_of(st.binary(max_size=16), SSE_SHARDS), max_size=40),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
def test_random_bytes_end_cleanly(shards: list[bytes], cuts: list[int]) -> None:
    body = b"".join(shards)
    events = decode(split(body, cuts))
    last = assert_well_ended(events)
    said_complete = b"[DONE]" in body or b"finish_reason" in body or b"usage" in body
    if not said_complete:
        assert isinstance(last, StreamFailed)
        assert isinstance(last.error, ProtocolError | StreamError)


@FUZZ
@given(
    first=streams(),
    second=streams(),
    sizes=st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40),
)
def test_two_streams_interleaved_end_cleanly(
    first: Stream, second: Stream, sizes: list[int]
) -> None:
    a, b, chunks, turn = first.body, second.body, [], 0
    while a or b:
        size = sizes[turn % len(sizes)]
        source = a if (turn % 2 == 0 and a) or not b else b
        chunks.append(source[:size])
        if source is a:
            a = a[size:]
        else:
            b = b[size:]
        turn += 1
    events = decode(chunks)
    assert_well_ended(events)
    kinds = (TextDelta, ReasoningDelta, KeepAlive, Usage, Finished, StreamFailed)
    assert all(isinstance(e, kinds) for e in events)


def test_the_properties_can_fail() -> None:
    # a decoder that lost the text after a split would be caught by the first property
    body = b'data: {"choices":[{"delta":{"content":"\xc3\xa9t\xc3\xa9"}}]}\n\n'
    whole, halves = decode([body]), decode([body[:30], body[30:]])  # split inside "\xc3\xa9"
    assert whole[0] == halves[0] == TextDelta("été")
    assert isinstance(whole[-1], StreamFailed)  # no [DONE], no finish reason: cut
    assert isinstance(halves[-1], StreamFailed)
