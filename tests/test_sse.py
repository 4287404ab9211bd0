"""The SSE decoder, fed hand-split byte chunks (docs/openrouter-api.md §9 edge cases)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from waiting import LINEAR_GROWTH_LIMIT, growth

from ormagic.client.sse import SSEComment, SSEEvent, iter_lines, iter_sse

PAYLOAD = '{"choices":[{"delta":{"content":"hé ✓"}}]}'
KEEPALIVE = SSEComment("OPENROUTER PROCESSING")


def decode(chunks: Iterable[bytes]) -> list[SSEEvent | SSEComment]:
    return list(iter_sse(iter_lines(chunks)))


def splits(raw: bytes) -> list[list[bytes]]:
    """``raw`` cut in two at every byte position, plus byte by byte."""
    cuts = [[raw[:i], raw[i:]] for i in range(len(raw) + 1)]
    return [*cuts, [raw[i : i + 1] for i in range(len(raw))]]


# -- iter_lines ---------------------------------------------------------------------------


@pytest.mark.parametrize("end", ["\n", "\r", "\r\n"])
def test_every_split_point_gives_the_same_event(end: str) -> None:
    raw = f"data: {PAYLOAD}{end}{end}".encode()
    for chunks in splits(raw):
        assert decode(chunks) == [SSEEvent(PAYLOAD)], chunks


@pytest.mark.parametrize("end", ["\n", "\r", "\r\n"])
def test_every_split_point_of_two_events_with_keepalives(end: str) -> None:
    raw = (
        f": OPENROUTER PROCESSING{end}{end}data: a{end}{end}"
        f": OPENROUTER PROCESSING{end}{end}data: b{end}{end}"
    ).encode()
    expected = [KEEPALIVE, SSEEvent("a"), KEEPALIVE, SSEEvent("b")]
    for chunks in splits(raw):
        assert decode(chunks) == expected, chunks


def test_cr_at_end_of_one_chunk_and_lf_at_start_of_next_is_one_line_end() -> None:
    assert list(iter_lines([b"a\r", b"\nb\r", b"\n"])) == ["a", "b"]
    # A lone CR followed by a chunk that does not start with LF ends the line too.
    assert list(iter_lines([b"a\r", b"b\n"])) == ["a", "b"]
    # Empty chunks between the CR and the LF change nothing.
    assert list(iter_lines([b"a\r", b"", b"\nb"])) == ["a", "b"]


def test_cr_cr_is_two_line_ends_and_lf_cr_is_two() -> None:
    assert list(iter_lines([b"a\r\rb\n\rc"])) == ["a", "", "b", "", "c"]


def test_mixed_endings_utf8_and_eof_drop_the_unfinished_event() -> None:
    # openai-python test_mixed_endings_utf8_and_eof (§9)
    raw = "id:one\r\ndata:известни\r\n\ndata:two\n\rdata:unfinished".encode()
    expected = [SSEEvent("известни", id="one"), SSEEvent("two", id="one")]
    for chunks in splits(raw):
        assert decode(chunks) == expected


def test_multibyte_character_split_across_chunks() -> None:
    raw = "data: ✓é😀\n\n".encode()
    star = raw.index("😀".encode())
    chunks = [raw[: star + 1], raw[star + 1 : star + 2], raw[star + 2 : star + 3], raw[star + 3 :]]
    assert decode(chunks) == [SSEEvent("✓é😀")]


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert list(iter_lines([b"ok \xff\xfe!\n", b"cut \xe2\x9c"])) == [
        "ok \ufffd\ufffd!",
        "cut \ufffd",
    ]


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c"])
def test_unicode_line_breaks_inside_data_do_not_split(char: str) -> None:
    payload = f'{{"content":"one{char}two"}}'
    assert decode([f"data: {payload}\n\n".encode()]) == [SSEEvent(payload)]


def test_final_unterminated_line_is_yielded_by_iter_lines() -> None:
    assert list(iter_lines([b"a\nb"])) == ["a", "b"]
    assert list(iter_lines([b"a\n"])) == ["a"]
    assert list(iter_lines([])) == []


def test_leading_byte_order_mark_is_stripped() -> None:
    assert decode([b"\xef\xbb", b"\xbfdata: x\n\n"]) == [SSEEvent("x")]


def _chunked(event_bytes: bytes, size: int) -> list[bytes]:
    return [event_bytes[i : i + size] for i in range(0, len(event_bytes), size)]


def _decoding(body_char: str, size: int) -> Callable[[int], Callable[[], object]]:
    def run(n: int) -> Callable[[], object]:
        chunks = _chunked(f"data: {body_char * n}\n\n".encode(), size)
        return lambda: decode(chunks)

    return run


def test_one_megabyte_event_in_4k_chunks() -> None:
    body = "x" * (1 << 20)
    assert decode(_chunked(f"data: {body}\n\n".encode(), 4096)) == [SSEEvent(body)]
    # 64 KB against 256 KB: past that, copying the line itself (linear, and unavoidable)
    # gets slower per byte as it outgrows the CPU caches, which growth would misread
    assert growth(_decoding("x", 4096), 1 << 16) < LINEAR_GROWTH_LIMIT


def test_one_megabyte_event_in_small_chunks_is_linear() -> None:
    # Rescanning the growing buffer on every 64-byte chunk would touch ~8 GB here.
    body = "é" * (1 << 19)  # 1 MiB of UTF-8, characters split across chunk ends
    assert decode(_chunked(f"data: {body}\n\n".encode(), 63)) == [SSEEvent(body)]
    assert growth(_decoding("é", 63), 1 << 16) < LINEAR_GROWTH_LIMIT


# -- iter_sse -----------------------------------------------------------------------------


def test_keepalives_before_between_and_after_events() -> None:
    raw = (
        b": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n"
        b"data: 1\n\n: OPENROUTER PROCESSING\n\ndata: 2\n\n: OPENROUTER PROCESSING\n\n"
    )
    assert decode([raw]) == [
        KEEPALIVE,
        KEEPALIVE,
        SSEEvent("1"),
        KEEPALIVE,
        SSEEvent("2"),
        KEEPALIVE,
    ]


def test_comments_are_surfaced_at_once_even_inside_an_event() -> None:
    lines = iter_sse(iter(["data: a", ": ping", ""]))
    assert next(lines) == SSEComment("ping")
    assert next(lines) == SSEEvent("a")


@pytest.mark.parametrize(("line", "text"), [(": ", ""), (":", ""), (":x", "x"), (":  two", " two")])
def test_comment_text_loses_one_leading_space(line: str, text: str) -> None:
    assert decode([f"{line}\n\n".encode()]) == [SSEComment(text)]


def test_multiline_data_is_joined_with_newlines() -> None:
    raw = b'data: {\ndata: "foo":\ndata: \ndata:\ndata: true}\n\n'
    assert decode([raw]) == [SSEEvent('{\n"foo":\n\n\ntrue}')]


def test_escaped_newlines_inside_json_do_not_split_the_event() -> None:
    payload = '{"content":"a\\n\\nb"}'
    assert decode([f"data: {payload}\n\n".encode()]) == [SSEEvent(payload)]


@pytest.mark.parametrize(
    ("line", "data"),
    [("data:x", "x"), ("data: x", "x"), ("data:  x", " x"), ("data", ""), ("data:", "")],
)
def test_exactly_one_leading_space_is_stripped(line: str, data: str) -> None:
    assert decode([f"{line}\n\n".encode()]) == [SSEEvent(data)]


def test_field_value_splits_at_the_first_colon_only() -> None:
    assert decode([b"data: a:b: c\n\n"]) == [SSEEvent("a:b: c")]


def test_extra_blank_lines_are_harmless() -> None:
    assert decode([b"\n\n\ndata: a\n\n\n\n\ndata: b\n\n\n"]) == [SSEEvent("a"), SSEEvent("b")]


def test_event_id_and_retry_fields() -> None:
    raw = b"event: update\nid: 7\nretry: 1500\ndata: a\n\ndata: b\n\n"
    assert decode([raw]) == [
        SSEEvent("a", event="update", id="7", retry=1500),
        SSEEvent("b", id="7"),  # the last id persists; event and retry do not
    ]


@pytest.mark.parametrize("value", ["1.5", "-1", "10s", "", "١٢"])
def test_retry_that_is_not_ascii_digits_is_ignored(value: str) -> None:
    assert decode([f"retry: {value}\ndata: a\n\n".encode()]) == [SSEEvent("a")]


def test_id_containing_nul_is_ignored() -> None:
    raw = b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"
    assert decode([raw]) == [SSEEvent("a", id="1"), SSEEvent("b", id="1")]


def test_unknown_fields_are_ignored() -> None:
    raw = b"foo: bar\nDATA: shout\ndata: a\nx\n\n"
    assert decode([raw]) == [SSEEvent("a")]


def test_block_without_data_dispatches_nothing() -> None:
    raw = b"event: ping\n\nid: 3\n\nretry: 10\n\ndata: a\n\n"
    assert decode([raw]) == [SSEEvent("a", id="3")]


@pytest.mark.parametrize("tail", [b"data: partial", b"data: partial\n", b"data: a\ndata: b\n"])
def test_unterminated_event_at_eof_is_dropped(tail: bytes) -> None:
    assert decode([b"data: done\n\n", tail]) == [SSEEvent("done")]
