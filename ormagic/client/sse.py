"""Server-sent events: bytes -> lines -> events, incrementally.

We decode SSE ourselves rather than use httpx-sse because httpx-sse drops comment lines,
and OpenRouter's ``: OPENROUTER PROCESSING`` keep-alive comments are the only sign of life
during a long reasoning stall (docs/openrouter-api.md §4.1): they are surfaced here as
:class:`SSEComment` so the renderer can redraw while nothing else arrives.

Two stages, each a generator over the previous one:

- :func:`iter_lines` splits a byte stream into lines (CR, LF or CRLF; UTF-8 decoded
  incrementally, so a character or a CRLF split across network chunks is fine).
- :func:`iter_sse` interprets lines as the WHATWG event-stream format
  (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

__all__ = ["SSEComment", "SSEEvent", "iter_lines", "iter_sse"]

# Only CR, LF and CRLF end a line in an event stream; str.splitlines() would also break on
# U+2028, U+2029, U+0085 and friends, which may appear inside JSON strings (§9).
_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


# Named tuples rather than frozen dataclasses: one is made per chunk of every stream, and
# a tuple is made in a third of the time (bench/bench_client.py).
class SSEEvent(NamedTuple):
    """One dispatched event: its ``data`` lines joined with ``\\n``."""

    data: str
    event: str = ""
    id: str = ""
    retry: int | None = None


class SSEComment(NamedTuple):
    """A comment line (``: text``); ``text`` is what follows the colon, minus one space."""

    text: str


def iter_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Yield the lines of a byte stream as they complete, without their line ends.

    Work is linear in the input: each chunk is decoded and split once, and the pieces of
    a line that spans many chunks are joined once, when the line ends. Invalid UTF-8
    becomes U+FFFD. A final line without a line end is yielded at EOF.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending: list[str] = []
    after_cr = False  # the previous text ended in CR: a leading LF completes that CRLF
    first = True
    for chunk in chunks:
        text = decoder.decode(chunk)
        if not text:
            continue
        if first:
            # The spec strips one leading byte-order mark from the stream.
            text, first = text.removeprefix(_BOM), False
        if after_cr and text.startswith("\n"):
            text = text[1:]
        after_cr = text.endswith("\r")
        if not text:
            continue
        # str.split is the fast path; CR needs the pattern (CRLF is one line end)
        lines = _LINE_END.split(text) if "\r" in text else text.split("\n")
        if len(lines) == 1:
            pending.append(text)
            continue
        if pending:
            pending.append(lines[0])
            yield "".join(pending)
            pending.clear()
        else:
            yield lines[0]
        yield from lines[1:-1]
        if lines[-1]:
            pending.append(lines[-1])
    tail = decoder.decode(b"", final=True)
    if tail:
        pending.append(tail)
    if pending:
        yield "".join(pending)


def iter_sse(lines: Iterable[str]) -> Iterator[SSEEvent | SSEComment]:
    """Interpret event-stream lines: yield comments at once, events on their blank line.

    A block without ``data`` dispatches nothing, and a block still open at EOF is dropped,
    as the spec, openai-python and OpenRouter's TypeScript SDK do (§9).
    """
    block = _Block()
    data = block.data
    for line in lines:
        if not line:
            if len(data) == 1 and not block.event and block.retry is None:
                # the usual one-line event, made without the keyword-handling __new__
                yield _new_tuple(SSEEvent, (data.pop(), "", block.last_id, None))
                continue
            event = block.dispatch()
            data = block.data
            if event is not None:
                yield event
        elif line.startswith("data:"):  # nearly every line: the fast path
            block.data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith(":"):
            yield SSEComment(_strip_space(line[1:]))
        else:
            name, _, value = line.partition(":")
            block.field(name, _strip_space(value))


_new_tuple = tuple.__new__


def _strip_space(value: str) -> str:
    return value[1:] if value.startswith(" ") else value


class _Block:
    """The fields of the event being read; ``id`` persists across events (WHATWG)."""

    __slots__ = ("data", "event", "last_id", "retry")

    def __init__(self) -> None:
        self.data: list[str] = []
        self.event = ""
        self.last_id = ""
        self.retry: int | None = None

    def field(self, name: str, value: str) -> None:
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value
        elif name == "id":
            if "\0" not in value:
                self.last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        # Any other field name is ignored, as the spec requires.

    def dispatch(self) -> SSEEvent | None:
        event = None
        if self.data:
            event = SSEEvent("\n".join(self.data), self.event, self.last_id, self.retry)
        self.data = []
        self.event = ""
        self.retry = None
        return event
