"""The scripted replies of the fake OpenRouter, the requests it records, its default answer.

A test scripts answers with :class:`StreamReply`, :class:`ErrorReply` and
:class:`RawReply` (``FakeOpenRouter.enqueue``); with nothing scripted,
:func:`default_reply` answers from the request's messages. Import these from
:mod:`ormagic.testing.fake_openrouter`, which re-exports them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ._tools import TOOL_STYLES, ToolCall

__all__ = [
    "ErrorReply",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "StreamReply",
    "ToolCall",
    "content_text",
    "default_reply",
    "request_messages",
]

_LINE_ENDINGS = ("\n", "\r", "\r\n")
_USAGE_VARIANTS = ("empty_choices", "one_choice", "with_finish")  # docs §4.3


@dataclass
class StreamReply:
    """A successful answer: SSE when the request asks for ``stream: true``, else JSON."""

    text: str = "Hello from the fake OpenRouter."
    reasoning: str = ""  # streamed as delta.reasoning plus a parallel reasoning.text item
    reasoning_details: list[dict[str, Any]] | None = None  # sent instead, one item per chunk
    chunk_chars: int = 12  # characters per content / reasoning delta
    delay: float = 0.0  # seconds before each data chunk
    byte_at_a_time: bool = False  # one byte per HTTP chunk (and per socket write)
    line_ending: str = "\n"  # "\n" | "\r" | "\r\n" for the SSE framing
    keepalives: bool = True  # ": OPENROUTER PROCESSING" first, and before the usage chunk
    usage: dict[str, Any] | None = None  # None: estimated from the characters (see reply_usage)
    usage_variant: str = "empty_choices"  # | "one_choice" | "with_finish" (docs §4.3)
    send_done: bool = True  # end with "data: [DONE]"
    model: str | None = None  # the answering model; None: the request's
    provider: str = "FakeProvider"
    error: dict[str, Any] | None = None  # mid-stream error chunk after the text (§6.3)
    drop: bool = False  # after the text, close the socket: no last chunk, usage or [DONE]
    stall: float = 0.0  # seconds of silence after the text
    generation_id: str | None = None  # None: a fresh gen-<unix>-<random>
    finish_reason: str | None = None  # None: "tool_calls" when calls are sent, else "stop"
    # tool calls streamed after the text (docs/openrouter-tools.md §1.3); a request with
    # tool_choice "none" gets the text without them, as from a real model
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_style: str = "openai"  # how the fragments are shaped, see _tools.TOOL_STYLES
    tool_chunk_chars: int = 0  # arguments cut every N UTF-16 units (0: in one piece)
    # hold the stream (after its headers) until this many chat requests (itself included)
    # have been in flight together (FakeOpenRouter.in_flight_wait at most, 10 s by default):
    # lets a test show that requests are concurrent
    wait_for_in_flight: int = 0
    # hold the stream where a test wants to look, until it opens the gate: the key is how
    # many characters of the text have been sent (0: after the reasoning, before the text;
    # len(text): after the text, before the usage chunk). What a frontend shows at that
    # point can then be checked without racing the stream.
    gates: dict[int, threading.Event] = field(default_factory=dict)

    @property
    def finish(self) -> str:
        """The finish reason sent."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    def __post_init__(self) -> None:
        if self.line_ending not in _LINE_ENDINGS:
            raise ValueError(f"line_ending must be one of {_LINE_ENDINGS!r}")
        if self.usage_variant not in _USAGE_VARIANTS:
            raise ValueError(f"usage_variant must be one of {_USAGE_VARIANTS!r}")
        if self.chunk_chars < 1:
            raise ValueError("chunk_chars must be at least 1")
        if self.tool_style not in TOOL_STYLES:
            raise ValueError(f"tool_style must be one of {TOOL_STYLES!r}")


@dataclass
class ErrorReply:
    """A pre-stream error: an HTTP error status with OpenRouter's JSON error body (§6.1)."""

    status: int
    message: str
    code: int | str | None = "status"  # "status": the same int as ``status``; None: omitted
    metadata: dict[str, Any] | None = None
    retry_after: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # raw body instead of JSON (default type text/html)


@dataclass
class RawReply:
    """Exact bytes, one HTTP chunk per item, for corners the other replies cannot reach."""

    chunks: list[bytes]
    status: int = 200
    headers: dict[str, str] = field(
        default_factory=lambda: {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    delay: float = 0.0
    drop: bool = False


Reply: TypeAlias = StreamReply | ErrorReply | RawReply


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or None when absent or not JSON
    client_disconnected: bool = False  # the client closed the stream before the end
    raw_body: bytes = b""
    started: float = 0.0  # time.monotonic() when the request had been read
    ended: float | None = None  # time.monotonic() when its answer ended (None: still going)
    received_at: float = field(default_factory=time.monotonic)  # when the request arrived


def content_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or the text parts of an array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def request_messages(body: Any) -> list[dict[str, Any]]:
    """The objects in a request body's ``messages`` list ([] when there is none)."""
    messages = body.get("messages") if isinstance(body, dict) else None
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def default_reply(messages: list[dict[str, Any]], model: str) -> StreamReply:
    """The deterministic answer given when no reply is scripted."""
    question = _last_user_text(messages)
    # the question is the last paragraph: clients such as ormagic put context before it
    asked = question.strip().split("\n\n")[-1].strip()
    flat = " ".join(asked.split())
    first_line = asked.splitlines()[0] if asked else "(an empty message)"
    text = (
        f"You asked:\n\n> {first_line}\n\n"
        "This is the fake OpenRouter server, so the answer is the same every time.\n\n"
        "| Field | Value |\n"
        "|---|---|\n"
        f"| Model | `{model}` |\n"
        f"| Characters in your message | {len(question)} |\n\n"
        '```python\nprint("Hello from the fake OpenRouter")\n```\n'
    )
    return StreamReply(text=text, reasoning=f"The user asks: {flat[:100]}. I'll answer briefly.")
