"""A loopback fake of OpenRouter's API, for the test suite and for offline notebooks.

It speaks the protocol described in ``docs/openrouter-api.md`` (§10 is its checklist),
including the ugly corners a client must survive: keep-alive comments, three shapes of
the usage chunk, CR / CRLF framing, one byte per network write, pre-stream JSON errors,
mid-stream error chunks, abrupt closes and stalls. Replies are scripted with
:class:`StreamReply`, :class:`ErrorReply` and :class:`RawReply`; with nothing scripted it
answers every question with the same small Markdown answer, so a notebook works offline.

Standard library only; it listens on 127.0.0.1 and never contacts anything else::

    python -m ormagic.testing.fake_openrouter [--port 8765] [--key KEY]

    with FakeOpenRouter() as fake:
        fake.enqueue(StreamReply(text="Hi", reasoning="Greeting."))
        ...  # point a client at fake.base_url with FAKE_API_KEY
        assert fake.chat_requests()[0].body["stream"] is True
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import select
import socket
import socketserver
import string
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeAlias, cast
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "FAKE_API_KEY",
    "ErrorReply",
    "FakeOpenRouter",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "StreamReply",
    "default_models",
    "main",
]

FAKE_API_KEY = "sk-or-v1-fake-0000000000000000000000000000000000000000000000000000000000000000"
API_PREFIX = "/api/v1"
# The account default that OpenRouter applies when a request names no model (docs §2).
_DEFAULT_MODEL = "deepseek/deepseek-v4-flash"
_KEEPALIVE = "OPENROUTER PROCESSING"  # docs §4.1
_LINE_ENDINGS = ("\n", "\r", "\r\n")
_USAGE_VARIANTS = ("empty_choices", "one_choice", "with_finish")  # docs §4.3
_ID_ALPHABET = string.ascii_letters + string.digits
_JSON_SEPARATORS = (",", ":")
_CHAT_PATH = f"{API_PREFIX}/chat/completions"


# --------------------------------------------------------------------------- replies


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
    usage: dict[str, Any] | None = None  # None: estimated from the characters (see _usage)
    usage_variant: str = "empty_choices"  # | "one_choice" | "with_finish" (docs §4.3)
    send_done: bool = True  # end with "data: [DONE]"
    model: str | None = None  # the answering model; None: the request's
    provider: str = "FakeProvider"
    error: dict[str, Any] | None = None  # mid-stream error chunk after the text (§6.3)
    drop: bool = False  # after the text, close the socket: no last chunk, usage or [DONE]
    stall: float = 0.0  # seconds of silence after the text
    generation_id: str | None = None  # None: a fresh gen-<unix>-<random>
    finish_reason: str = "stop"

    def __post_init__(self) -> None:
        if self.line_ending not in _LINE_ENDINGS:
            raise ValueError(f"line_ending must be one of {_LINE_ENDINGS!r}")
        if self.usage_variant not in _USAGE_VARIANTS:
            raise ValueError(f"usage_variant must be one of {_USAGE_VARIANTS!r}")
        if self.chunk_chars < 1:
            raise ValueError("chunk_chars must be at least 1")


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


# --------------------------------------------------------------------------- catalogue


def _model(
    model_id: str,
    name: str,
    *,
    context: int | None,
    prices: tuple[str, str],
    params: Sequence[str],
    reasoning: dict[str, Any] | None = None,
    created: int = 1760000000,
) -> dict[str, Any]:
    """One ``GET /models`` entry in OpenRouter's shape (docs §7)."""
    entry: dict[str, Any] = {
        "id": model_id,
        "canonical_slug": model_id,
        "hugging_face_id": None,
        "name": name,
        "created": created,
        "description": f"{name}, as served by the fake OpenRouter.",
        "context_length": context,
        "architecture": {
            "modality": "text->text",
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "tokenizer": "Other",
            "instruct_type": None,
        },
        "pricing": {"prompt": prices[0], "completion": prices[1]},
        "top_provider": {
            "context_length": context,
            "max_completion_tokens": None,
            "is_moderated": False,
        },
        "per_request_limits": None,
        "supported_parameters": list(params),
        "default_parameters": {},
        "links": {"details": f"/api/v1/models/{model_id}/endpoints"},
    }
    if reasoning is not None:
        entry["reasoning"] = reasoning
    return entry


_BASIC = ("max_tokens", "temperature", "top_p", "stop", "seed")
_REASONING = ("include_reasoning", "reasoning", *_BASIC)


def default_models() -> list[dict[str, Any]]:
    """The fake's catalogue: one model for each case a model picker must handle."""
    return [
        _model(
            "deepseek/deepseek-v4-flash",
            "DeepSeek: DeepSeek V4 Flash",
            context=1048576,
            prices=("0.00000014", "0.00000028"),
            params=_REASONING,
            reasoning={"supported_efforts": ["high", "xhigh"], "default_effort": "high"},
            created=1777000000,
        ),
        _model(
            "meta-llama/llama-3.1-8b-instruct",
            "Meta: Llama 3.1 8B Instruct",
            context=131072,
            prices=("0.00000002", "0.00000005"),
            params=_BASIC,
        ),
        _model(
            "anthropic/claude-sonnet-4.6",
            "Anthropic: Claude Sonnet 4.6",
            context=1000000,
            prices=("0.000003", "0.000015"),
            params=(*_REASONING, "reasoning_effort"),
            reasoning={"supported_efforts": None, "supports_max_tokens": True},
        ),
        _model(
            "meta-llama/llama-3.3-70b-instruct:free",
            "Meta: Llama 3.3 70B Instruct (free)",
            context=65536,
            prices=("0", "0"),
            params=_BASIC,
        ),
        _model(
            "openai/gpt-5-nano",
            "OpenAI: GPT-5 Nano",
            context=400000,
            prices=("0.00000005", "0.0000004"),
            params=(*_REASONING, "reasoning_effort"),
            # Shape of the real 2026 entry (docs §2.2, CAS-26).
            reasoning={
                "mandatory": True,
                "supported_efforts": ["high", "medium", "low", "minimal"],
                "default_effort": "medium",
            },
        ),
        _model(
            "fakeco/mystery-1",
            "FakeCo: Mystery 1",
            context=None,  # context_length is nullable in the OpenAPI spec
            prices=("0.000001", "0.000002"),
            params=_BASIC,
        ),
    ]


def _default_key_info(api_key: str) -> dict[str, Any]:
    """``GET /key`` data (docs §7) for an ordinary, non-management key."""
    return {
        "label": f"{api_key[:12]}...{api_key[-3:]}",
        "limit": 10.0,
        "limit_remaining": 7.25,
        "limit_reset": None,
        "include_byok_in_limit": False,
        "usage": 2.75,
        "usage_daily": 0.5,
        "usage_weekly": 1.0,
        "usage_monthly": 2.75,
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "is_free_tier": False,
        "is_management_key": False,
        "is_provisioning_key": False,
        "expires_at": None,
        "rate_limit": {
            "requests": -1,
            "interval": "10s",
            "note": "This field is deprecated and safe to ignore.",
        },
    }


# --------------------------------------------------------------------------- chat content


@dataclass(frozen=True)
class _Chat:
    """What every chunk of one answer shares."""

    generation_id: str
    created: int
    model: str
    provider: str


def _new_generation_id() -> str:
    tail = "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))
    return f"gen-{int(time.time())}-{tail}"


def _content_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or the text parts of an array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _messages(body: Any) -> list[dict[str, Any]]:
    messages = body.get("messages") if isinstance(body, dict) else None
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def _default_reply(messages: list[dict[str, Any]], model: str) -> StreamReply:
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


def _readable(item: Mapping[str, Any]) -> str | None:
    """The text a reader sees in one reasoning_details item (docs §5), if any."""
    if item.get("type") == "reasoning.text":
        return str(item.get("text") or "")
    if item.get("type") == "reasoning.summary":
        return str(item.get("summary") or "")
    return None


def _reasoning_text(reply: StreamReply) -> str:
    if reply.reasoning_details is None:
        return reply.reasoning
    return "".join(_readable(item) or "" for item in reply.reasoning_details)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _prices(models: list[dict[str, Any]], model_id: str) -> tuple[float, float]:
    """Per-token prices of a catalogue model; a variant suffix falls back to the base id."""
    by_id = {m.get("id"): m for m in models}
    entry = by_id.get(model_id) or by_id.get(model_id.split(":")[0]) or {}
    pricing = entry.get("pricing") or {}
    try:
        return float(pricing.get("prompt", 0)), float(pricing.get("completion", 0))
    except (TypeError, ValueError):
        return 0.0, 0.0


def _usage(
    messages: list[dict[str, Any]], reply: StreamReply, prices: tuple[float, float]
) -> dict[str, Any]:
    """The usage object (docs §4.3): tokens estimated as characters // 4."""
    if reply.usage is not None:
        return reply.usage
    reasoning = _reasoning_text(reply)
    prompt = max(1, sum(len(_content_text(m.get("content"))) for m in messages) // 4)
    completion = max(1, (len(reply.text) + len(reasoning)) // 4)
    prompt_cost = round(prompt * prices[0], 10)
    completion_cost = round(completion * prices[1], 10)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": round(prompt * prices[0] + completion * prices[1], 10),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": len(reasoning) // 4},
        "cost_details": {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": prompt_cost,
            "upstream_inference_completions_cost": completion_cost,
        },
    }


# --------------------------------------------------------------------------- SSE frames


@dataclass(frozen=True)
class _Frame:
    """Bytes to write after waiting ``wait`` seconds."""

    data: bytes
    wait: float = 0.0


def _json(obj: Any) -> str:
    # Raw UTF-8 (no \\u escapes) so multi-byte characters can split across writes.
    return json.dumps(obj, ensure_ascii=False, separators=_JSON_SEPARATORS)


def _sse_data(payload: str, eol: str) -> bytes:
    return f"data: {payload}{eol}{eol}".encode()


def _sse_comment(text: str, eol: str) -> bytes:
    return f": {text}{eol}{eol}".encode()


def _choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "index": 0,
        "delta": delta,
        "finish_reason": finish,
        "native_finish_reason": finish,
        "logprobs": None,
    }


def _chunk(
    chat: _Chat,
    choices: list[dict[str, Any]],
    *,
    usage: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` (docs §4.2). Key order follows the documented examples:
    ``error`` before the choices (§6.3), ``usage`` after them (§4.4)."""
    chunk: dict[str, Any] = {
        "id": chat.generation_id,
        "object": "chat.completion.chunk",
        "created": chat.created,
        "model": chat.model,
        "provider": chat.provider,
    }
    if error is not None:
        chunk["error"] = error
    chunk["choices"] = choices
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def _reasoning_deltas(reply: StreamReply) -> Iterator[dict[str, Any]]:
    """Reasoning deltas: ``reasoning`` text plus a parallel ``reasoning.text`` item (§5)."""
    if reply.reasoning_details is not None:
        for item in reply.reasoning_details:
            yield {
                "role": "assistant",
                "content": "",
                "reasoning": _readable(item),
                "reasoning_details": [item],
            }
        return
    for piece in _pieces(reply.reasoning, reply.chunk_chars):
        detail = {"type": "reasoning.text", "text": piece, "format": "unknown", "index": 0}
        yield {
            "role": "assistant",
            "content": "",
            "reasoning": piece,
            "reasoning_details": [detail],
        }


def _usage_choices(reply: StreamReply) -> list[dict[str, Any]]:
    """The three shapes of the usage chunk's ``choices`` seen in the wild (§4.3)."""
    empty = {"role": "assistant", "content": ""}
    if reply.usage_variant == "one_choice":
        return [_choice(empty)]
    if reply.usage_variant == "with_finish":
        return [_choice(empty, reply.finish_reason)]
    return []


def _tail(reply: StreamReply, chat: _Chat, usage: dict[str, Any]) -> list[_Frame]:
    """What follows the text: an error chunk, or finish + usage; then ``[DONE]``."""
    eol = reply.line_ending
    frames: list[_Frame] = []
    if reply.error is not None:
        # Mid-stream error shape of docs §6.3: top-level error, finish_reason "error".
        choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
        frames.append(_Frame(_sse_data(_json(_chunk(chat, [choice], error=reply.error)), eol)))
    else:
        finish = _choice({"role": "assistant", "content": ""}, reply.finish_reason)
        frames.append(_Frame(_sse_data(_json(_chunk(chat, [finish])), eol), reply.delay))
        if reply.keepalives:
            frames.append(_Frame(_sse_comment(_KEEPALIVE, eol)))
        last = _chunk(chat, _usage_choices(reply), usage=usage)
        frames.append(_Frame(_sse_data(_json(last), eol), reply.delay))
    if reply.send_done:
        frames.append(_Frame(_sse_data("[DONE]", eol)))
    return frames


def _plan_stream(reply: StreamReply, chat: _Chat, usage: dict[str, Any]) -> list[_Frame]:
    """Every SSE frame of one answer, in order (the reconstructed stream of docs §4.4)."""
    eol = reply.line_ending
    frames = [_Frame(_sse_comment(_KEEPALIVE, eol))] if reply.keepalives else []
    deltas = list(_reasoning_deltas(reply))
    deltas += [{"role": "assistant", "content": p} for p in _pieces(reply.text, reply.chunk_chars)]
    for delta in deltas:
        data = _sse_data(_json(_chunk(chat, [_choice(delta)])), eol)
        frames.append(_Frame(data, reply.delay))
    if reply.stall:
        frames.append(_Frame(b"", reply.stall))
    if not reply.drop:
        frames += _tail(reply, chat, usage)
    return frames


def _chat_result(reply: StreamReply, chat: _Chat, usage: dict[str, Any]) -> dict[str, Any]:
    """The non-streaming ``ChatResult`` (docs §3)."""
    reasoning = _reasoning_text(reply)
    details = reply.reasoning_details
    if details is None and reasoning:
        details = [{"type": "reasoning.text", "text": reasoning, "format": "unknown", "index": 0}]
    message = {
        "role": "assistant",
        "content": reply.text,
        "refusal": None,
        "reasoning": reasoning or None,
        "reasoning_details": details or [],
    }
    finish = "error" if reply.error is not None else reply.finish_reason
    choice: dict[str, Any] = {
        "index": 0,
        "logprobs": None,
        "finish_reason": finish,
        "native_finish_reason": finish,
        "message": message,
    }
    if reply.error is not None:
        choice["error"] = reply.error  # partial output then an error, HTTP 200 (docs §3)
    return {
        "id": chat.generation_id,
        "object": "chat.completion",
        "created": chat.created,
        "model": chat.model,
        "provider": chat.provider,
        "system_fingerprint": None,
        "choices": [choice],
        "usage": usage,
    }


def _error_body(message: str, code: int | str | None, metadata: Any = None) -> dict[str, Any]:
    """OpenRouter's error body, keys in the order real bodies use (docs §6.1)."""
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error["code"] = code
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error}


# --------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # FakeOpenRouter.stop joins the handler threads itself
    fake: FakeOpenRouter

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS lookup: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Like ThreadingMixIn's, but the thread and its socket are registered before the
        # thread starts, so that stop() can always end and join it.
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.fake._connection_opened(thread, request)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.fake._connection_closed(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away is normal here; only real bugs print a traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked SSE bodies
    server_version = "FakeOpenRouter/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # so byte_at_a_time writes leave one at a time
    _default_headers: dict[str, str]  # set by _dispatch for each request

    @property
    def fake(self) -> FakeOpenRouter:
        return cast(_Server, self.server).fake

    def log_message(self, format: str, *args: Any) -> None:
        if self.fake.log is not None:
            self.fake.log(f"{self.address_string()} {format % args}")

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    # ---- request

    def _dispatch(self) -> None:
        record = self._record()
        # Every chat completions answer names its generation, errors included (docs §1).
        is_chat = record.path == _CHAT_PATH
        self._default_headers = {"X-Generation-Id": _new_generation_id()} if is_chat else {}
        route = _ROUTES.get((self.command, record.path))
        if route is None:
            self._send_json(404, _error_body(f"Not Found: {record.path}", 404))
            return
        needs_auth, handler = route
        if needs_auth and not self._authorized(record):
            return
        handler(self, record)

    def _record(self) -> RecordedRequest:
        raw = self._read_body()
        url = urlsplit(self.path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=self._lower_headers(),
            body=body,
            raw_body=raw,
        )
        self.fake._add_record(record)
        return record

    def _lower_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return headers

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked_body(self) -> bytes:
        parts: list[bytes] = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():  # trailers, then the blank line
            pass
        return b"".join(parts)

    def _authorized(self, record: RecordedRequest) -> bool:
        """Bearer auth with OpenRouter's two 401 bodies (docs §6.1)."""
        scheme, _, token = record.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self._send_json(401, _error_body("No auth credentials found", 401))
            return False
        if token.strip() != self.fake.api_key:
            self._send_json(401, _error_body("User not found.", 401))
            return False
        return True

    # ---- responses

    def _start(self, status: int, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in {**self._default_headers, **headers}.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_bytes(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self._start(status, {**headers, "Content-Length": str(len(body))})
        self.wfile.write(body)

    def _send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        body = _json(obj).encode()
        self._send_bytes(status, body, {"Content-Type": "application/json", **(headers or {})})

    def _write_chunk(self, data: bytes, byte_at_a_time: bool = False) -> None:
        """Chunked transfer encoding: a close before the last chunk is a visible error."""
        pieces = [data[i : i + 1] for i in range(len(data))] if byte_at_a_time else [data]
        for piece in pieces:
            if piece:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))

    def _end_chunks(self) -> None:
        with contextlib.suppress(OSError):  # the client may leave right at the end
            self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Close the connection abruptly: no terminating chunk."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _pause(self, seconds: float) -> bool:
        """Sleep, watching the socket; False when the client left or the server stops."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.fake._stopping.is_set():
                return False
            readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.05))
            if readable and self._peer_closed():
                return False
        return True

    def _peer_closed(self) -> bool:
        sock: socket.socket = self.connection
        try:
            peek = sock.recv(1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0))
        except BlockingIOError:
            return False
        except OSError:
            return True
        if peek:  # the client sent something mid-stream: keep going, but do not spin
            time.sleep(0.01)
        return peek == b""

    def _send_frames(self, frames: list[_Frame], byte_at_a_time: bool) -> bool:
        """Write frames as HTTP chunks; False when the client disconnected."""
        try:
            for frame in frames:
                if frame.wait and not self._pause(frame.wait):
                    return False
                self._write_chunk(frame.data, byte_at_a_time)
        except OSError:  # BrokenPipeError, ConnectionResetError: the client went away
            return False
        return True

    # ---- endpoints

    def _chat(self, record: RecordedRequest) -> None:
        if not isinstance(record.body, dict):
            self._send_json(400, _error_body("Invalid JSON in request body", 400))
            return
        messages = _messages(record.body)
        if not messages:
            message = 'Input required: specify "messages" with at least one message'
            self._send_json(400, _error_body(message, 400))
            return
        model = str(record.body.get("model") or _DEFAULT_MODEL)
        reply = self.fake._next_reply() or _default_reply(messages, model)
        if isinstance(reply, ErrorReply):
            self._error_reply(reply)
        elif isinstance(reply, RawReply):
            self._raw_reply(record, reply)
        elif record.body.get("stream") is True:
            self._stream_reply(record, reply, model)
        else:
            self._json_reply(record, reply, model)

    def _chat_for(self, reply: StreamReply, model: str) -> _Chat:
        return _Chat(
            generation_id=reply.generation_id or _new_generation_id(),
            created=int(time.time()),
            model=reply.model or model,
            provider=reply.provider,
        )

    def _error_reply(self, reply: ErrorReply) -> None:
        headers = dict(reply.headers)
        if reply.retry_after is not None:
            headers["Retry-After"] = reply.retry_after
        if reply.body is not None:
            headers.setdefault("Content-Type", "text/html; charset=utf-8")
            self._send_bytes(reply.status, reply.body, headers)
            return
        code = reply.status if reply.code == "status" else reply.code
        self._send_json(reply.status, _error_body(reply.message, code, reply.metadata), headers)

    def _raw_reply(self, record: RecordedRequest, reply: RawReply) -> None:
        self._start(reply.status, {**reply.headers, "Transfer-Encoding": "chunked"})
        frames = [_Frame(chunk, reply.delay) for chunk in reply.chunks]
        if not self._send_frames(frames, byte_at_a_time=False):
            self._client_left(record)
        elif reply.drop:
            self._drop()
        else:
            self._end_chunks()

    def _stream_reply(self, record: RecordedRequest, reply: StreamReply, model: str) -> None:
        chat = self._chat_for(reply, model)
        usage = self.fake._usage_for(record, reply, chat.model)
        started = time.monotonic()
        self._start(
            200,
            {
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "Transfer-Encoding": "chunked",
                "X-Generation-Id": chat.generation_id,
            },
        )
        completed = self._send_frames(_plan_stream(reply, chat, usage), reply.byte_at_a_time)
        if not completed:
            self._client_left(record)
        elif reply.drop:
            self._drop()
        else:
            self._end_chunks()
        elapsed = time.monotonic() - started
        cancelled = not completed
        self.fake._add_generation(chat, reply, usage, elapsed, streamed=True, cancelled=cancelled)

    def _json_reply(self, record: RecordedRequest, reply: StreamReply, model: str) -> None:
        chat = self._chat_for(reply, model)
        usage = self.fake._usage_for(record, reply, chat.model)
        started = time.monotonic()
        if not self._pause(reply.delay + reply.stall):
            self._client_left(record)
            return
        if reply.drop:
            self._drop()
            return
        result = _chat_result(reply, chat, usage)
        self._send_json(200, result, {"X-Generation-Id": chat.generation_id})
        elapsed = time.monotonic() - started
        self.fake._add_generation(chat, reply, usage, elapsed, streamed=False, cancelled=False)

    def _client_left(self, record: RecordedRequest) -> None:
        self.close_connection = True
        if not self.fake._stopping.is_set():  # stop() ends streams too; that is not the client
            record.client_disconnected = True

    def _models(self, record: RecordedRequest) -> None:
        models = self.fake.models
        body = {"data": models, "total_count": len(models), "links": {"next": None}}
        self._send_json(200, body, {"Cache-Control": "public, max-age=300"})

    def _key(self, record: RecordedRequest) -> None:
        self._send_json(200, {"data": self.fake.key_info})

    def _generation(self, record: RecordedRequest) -> None:
        gen_id = record.query.get("id", "")
        if not gen_id:
            self._send_json(400, _error_body("Missing required parameter: id", 400))
            return
        data = self.fake._poll_generation(gen_id)
        if data is None:
            self._send_json(404, _error_body(f"Generation {gen_id} not found", 404))
        else:
            self._send_json(200, {"data": data})

    def _credits(self, record: RecordedRequest) -> None:
        # /credits needs a management key; an inference key gets 403 (docs §7).
        message = "Only management keys can fetch credits"
        self._send_json(403, _error_body(message, 403))


_Route = tuple[bool, Callable[[_Handler, RecordedRequest], None]]
_ROUTES: dict[tuple[str, str], _Route] = {
    ("POST", _CHAT_PATH): (True, _Handler._chat),
    ("GET", f"{API_PREFIX}/models"): (False, _Handler._models),  # public, like OpenRouter's
    ("GET", f"{API_PREFIX}/key"): (True, _Handler._key),
    ("GET", f"{API_PREFIX}/generation"): (True, _Handler._generation),
    ("GET", f"{API_PREFIX}/credits"): (True, _Handler._credits),
}


# --------------------------------------------------------------------------- server


class FakeOpenRouter:
    """A fake OpenRouter on a loopback port, serving from a daemon thread.

    Attributes a test may change at any time: ``models`` (the ``/models`` catalogue),
    ``key_info`` (the ``/key`` data), ``generation_delay_polls`` (how many 404s
    ``/generation`` answers for a known id before the stats are "ready"), ``log`` (a
    function that receives one line per request; ``None`` is silent).
    """

    def __init__(
        self,
        *,
        api_key: str = FAKE_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        models: list[dict[str, Any]] | None = None,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        self.models: list[dict[str, Any]] = list(models) if models is not None else default_models()
        self.key_info: dict[str, Any] = _default_key_info(api_key)
        self.generation_delay_polls = 0
        self.log: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._generations: dict[str, dict[str, Any]] = {}
        self._polls: dict[str, int] = {}
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> FakeOpenRouter:
        """Bind (port 0 picks a free one) and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the fake OpenRouter is already running")
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        self.port = server.server_port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"fake-openrouter-{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and wait for their threads."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections = dict(self._connections)
        for sock in connections.values():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for handler_thread in connections:
            handler_thread.join(timeout=5)
        server.server_close()
        thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenRouter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/api/v1``: what OPENROUTER_BASE_URL should be."""
        if self.port == 0:
            raise RuntimeError("start() the fake OpenRouter before asking for its URL")
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    # ---- scripting and records

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (a snapshot; the records themselves are live)."""
        with self._lock:
            return list(self._requests)

    def chat_requests(self) -> list[RecordedRequest]:
        """Only the ``POST /chat/completions`` requests."""
        return [r for r in self.requests if r.method == "POST" and r.path == _CHAT_PATH]

    def enqueue(self, *replies: Reply) -> None:
        """Script the replies to the next chat requests, first in first out."""
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        """Forget scripted replies, recorded requests and generations."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._generations.clear()
            self._polls.clear()

    # ---- called by the handler threads

    def _connection_opened(self, thread: threading.Thread, sock: socket.socket) -> None:
        with self._lock:
            self._connections[thread] = sock

    def _connection_closed(self, thread: threading.Thread) -> None:
        with self._lock:
            self._connections.pop(thread, None)

    def _add_record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def _usage_for(self, record: RecordedRequest, reply: StreamReply, model: str) -> dict[str, Any]:
        return _usage(_messages(record.body), reply, _prices(self.models, model))

    def _add_generation(
        self,
        chat: _Chat,
        reply: StreamReply,
        usage: dict[str, Any],
        elapsed: float,
        *,
        streamed: bool,
        cancelled: bool,
    ) -> None:
        """Keep the stats ``GET /generation`` reports (docs §7); times are in ms."""
        finish: str | None = reply.finish_reason
        if cancelled:
            finish = None
        elif reply.error is not None or reply.drop:
            finish = "error"
        details = usage.get("completion_tokens_details") or {}
        data = {
            "id": chat.generation_id,
            "upstream_id": f"up-{chat.generation_id}",
            "created_at": datetime.fromtimestamp(chat.created, timezone.utc).isoformat(),
            "model": chat.model,
            "provider_name": chat.provider,
            "streamed": streamed,
            "cancelled": cancelled,
            "latency": round(elapsed * 1000),
            "generation_time": round(elapsed * 1000),
            "moderation_latency": None,
            "tokens_prompt": usage.get("prompt_tokens"),
            "tokens_completion": usage.get("completion_tokens"),
            "native_tokens_prompt": usage.get("prompt_tokens"),
            "native_tokens_completion": usage.get("completion_tokens"),
            "native_tokens_reasoning": details.get("reasoning_tokens", 0),
            "native_tokens_cached": 0,
            "total_cost": usage.get("cost"),
            "usage": usage.get("cost"),
            "upstream_inference_cost": None,
            "cache_discount": None,
            "is_byok": False,
            "finish_reason": finish,
            "native_finish_reason": finish,
            "origin": "",
            "api_type": "completions",
        }
        with self._lock:
            self._generations[chat.generation_id] = data

    def _poll_generation(self, gen_id: str) -> dict[str, Any] | None:
        """The stats of a generation, or None (404) while unknown or not "ready" yet."""
        with self._lock:
            data = self._generations.get(gen_id)
            if data is None:
                return None
            polls = self._polls.get(gen_id, 0)
            if polls < self.generation_delay_polls:
                self._polls[gen_id] = polls + 1
                return None
            return dict(data)


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """Serve in the foreground until Ctrl-C, printing the environment to point ormagic at it."""
    parser = argparse.ArgumentParser(
        prog="python -m ormagic.testing.fake_openrouter",
        description="A fake OpenRouter API on 127.0.0.1, for trying ormagic offline.",
    )
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument("--key", default=FAKE_API_KEY, help="the API key it accepts")
    args = parser.parse_args(argv)
    fake = FakeOpenRouter(api_key=args.key, port=args.port)
    fake.log = lambda line: print(line, file=sys.stderr, flush=True)
    with fake:
        print(f"export OPENROUTER_BASE_URL={fake.base_url}")
        print(f"export OPENROUTER_API_KEY={fake.api_key}", flush=True)
        print("Fake OpenRouter running; press Ctrl-C to stop.", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
