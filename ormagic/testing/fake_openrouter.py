"""A loopback fake of OpenRouter's API, for the test suite and for offline notebooks.

It speaks the protocol described in ``docs/openrouter-api.md`` (§10 is its checklist),
including the ugly corners a client must survive: keep-alive comments, three shapes of
the usage chunk, CR / CRLF framing, one byte per network write, pre-stream JSON errors,
mid-stream error chunks, abrupt closes and stalls. Tool calls too
(docs/openrouter-tools.md): scripted :class:`ToolCall` s streamed in fragments shaped like
the providers' (repeated ids, shared or missing indexes, arguments cut inside a
character), ``tool_choice: "none"`` honoured, and the 400s a real server answers when the
results sent back are incomplete or, for DeepSeek, the reasoning is not passed back. A
model that never stops calling tools is ``fake.fallback = StreamReply(tool_calls=...)``.
Replies are scripted with
:class:`StreamReply`, :class:`ErrorReply` and :class:`RawReply`; with nothing scripted it
answers every question with the same small Markdown answer, so a notebook works offline.

Standard library only; it listens on 127.0.0.1 and never contacts anything else::

    python -m ormagic.testing.fake_openrouter [--port 8765] [--key KEY]

    with FakeOpenRouter() as fake:
        fake.enqueue(StreamReply(text="Hi", reasoning="Greeting."))
        ...  # point a client at fake.base_url with FAKE_API_KEY
        assert fake.chat_requests()[0].body["stream"] is True

The reply types are in :mod:`._replies`, the bodies the server writes in :mod:`._frames`
and the account data (models, key, usage, generation stats) in :mod:`._catalogue`; this
module re-exports what tests and scripts import and holds the HTTP server itself.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import re
import select
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from ._batches import BATCHES_PATH, FakeBatches, default_answer
from ._catalogue import (
    default_key_info,
    default_models,
    generation_stats,
    model_prices,
    reply_usage,
)
from ._endpoints import default_endpoints, endpoints_body, hide_performance
from ._frames import Chat, Frame, chat_result, error_body, new_generation_id, plan_stream, to_json
from ._replies import (
    ErrorReply,
    RawReply,
    RecordedRequest,
    Reply,
    StreamReply,
    ToolCall,
    request_messages,
)
from ._tools import check_tool_history
from .demo import demo_reply

__all__ = [
    "FAKE_API_KEY",
    "ErrorReply",
    "FakeOpenRouter",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "StreamReply",
    "ToolCall",
    "default_models",
    "main",
]

FAKE_API_KEY = "sk-or-v1-fake-0000000000000000000000000000000000000000000000000000000000000000"
API_PREFIX = "/api/v1"
# The account default that OpenRouter applies when a request names no model (docs §2).
_DEFAULT_MODEL = "deepseek/deepseek-v4-flash"
_CHAT_PATH = f"{API_PREFIX}/chat/completions"
# GET /models/{author}/{slug}/endpoints (docs/openrouter-api.md, appendix)
_ENDPOINTS_PATH = re.compile(rf"{re.escape(API_PREFIX)}/models/([^/]+)/([^/]+)/endpoints")


# --------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # a real server's accept queue: socketserver's default of 5 resets connections when a
    # batch opens dozens at once
    request_queue_size = 128
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
    _company: tuple[int, int] = (0, 0)  # chat requests in flight and arrived, on arrival
    _current: RecordedRequest | None = None  # the request being answered

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
        record = self._current = self._record()
        # Every chat completions answer names its generation, errors included (docs §1).
        is_chat = record.path == _CHAT_PATH
        self._default_headers = {"X-Generation-Id": new_generation_id()} if is_chat else {}
        if is_chat:
            self._company = self.fake._chat_arrived()
        try:
            route = _route_for(self.command, record.path)
            if route is None:
                self._send_json(404, error_body(f"Not Found: {record.path}", 404))
                return
            needs_auth, handler = route
            if needs_auth and not self._authorized(record):
                return
            handler(self, record)
        finally:
            self._mark_end()
            if is_chat:
                self.fake._chat_left()

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
            started=time.monotonic(),
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
            self._send_json(401, error_body("No auth credentials found", 401))
            return False
        if token.strip() != self.fake.api_key:
            self._send_json(401, error_body("User not found.", 401))
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
        self._mark_end()
        self.wfile.write(body)

    def _send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        body = to_json(obj).encode()
        self._send_bytes(status, body, {"Content-Type": "application/json", **(headers or {})})

    def _write_chunk(self, data: bytes, byte_at_a_time: bool = False) -> None:
        """Chunked transfer encoding: a close before the last chunk is a visible error."""
        pieces = [data[i : i + 1] for i in range(len(data))] if byte_at_a_time else [data]
        for piece in pieces:
            if piece:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))

    def _mark_end(self) -> None:
        """Note when the answer ended, before its last bytes leave: a client that sees the
        end and then asks again must never seem to have overlapped with it."""
        record = self._current
        if record is not None and record.ended is None:
            record.ended = time.monotonic()

    def _end_chunks(self) -> None:
        self._mark_end()
        with contextlib.suppress(OSError):  # the client may leave right at the end
            self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Close the connection abruptly: no terminating chunk."""
        self._mark_end()
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

    def _hold(self, gate: threading.Event, keepalive: bytes = b"") -> bool:
        """Wait for a test to open ``gate``, writing ``keepalive`` every second meanwhile
        (as OpenRouter does while a model is silent); False when the client left or the
        server stops first."""
        last = time.monotonic()
        while not gate.is_set():
            if not self._pause(0.05):
                return False
            if keepalive and time.monotonic() - last >= 1.0:
                self._write_chunk(keepalive)
                last = time.monotonic()
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

    def _send_frames(self, frames: list[Frame], byte_at_a_time: bool) -> bool:
        """Write frames as HTTP chunks; False when the client disconnected.

        The answer's end is noted before its last frame leaves: a client stops reading at
        ``[DONE]`` without waiting for the end of the HTTP body.
        """
        try:
            for i, frame in enumerate(frames):
                if frame.wait and not self._pause(frame.wait):
                    return False
                if frame.gate is not None:  # its data: the keep-alive sent while held
                    if not self._hold(frame.gate, frame.data):
                        return False
                    continue
                if i == len(frames) - 1:
                    self._mark_end()
                self._write_chunk(frame.data, byte_at_a_time)
        except OSError:  # BrokenPipeError, ConnectionResetError: the client went away
            return False
        return True

    # ---- endpoints

    def _chat(self, record: RecordedRequest) -> None:
        if not isinstance(record.body, dict):
            self._send_json(400, error_body("Invalid JSON in request body", 400))
            return
        messages = request_messages(record.body)
        if not messages:
            message = 'Input required: specify "messages" with at least one message'
            self._send_json(400, error_body(message, 400))
            return
        model = str(record.body.get("model") or _DEFAULT_MODEL)
        problem = check_tool_history(messages, model)
        if problem is not None:  # what OpenRouter (or DeepSeek behind it) answers
            self._send_json(400, error_body(problem, 400))
            return
        if self.fake.latency and not self._pause(self.fake.latency):
            self._client_left(record)
            return
        holds = self.fake._holds_for(record.body)
        if not all(self._hold(gate) for at, gate in holds if at is None):
            self._client_left(record)
            return
        reply = self.fake._next_reply(model) or self.fake._answer(record.body, model)
        gates = {at: gate for at, gate in holds if at is not None}
        if isinstance(reply, StreamReply) and gates:
            reply = dataclasses.replace(reply, gates={**reply.gates, **gates})
        answer_now = record.body.get("tool_choice") == "none"  # no tool calls allowed
        if isinstance(reply, StreamReply) and reply.tool_calls and answer_now:
            reply = dataclasses.replace(reply, tool_calls=[])
        if isinstance(reply, ErrorReply):
            self._error_reply(reply)
        elif isinstance(reply, RawReply):
            self._raw_reply(record, reply)
        elif record.body.get("stream") is True:
            self._stream_reply(record, reply, model)
        else:
            self._json_reply(record, reply, model)

    def _chat_for(self, reply: StreamReply, model: str) -> Chat:
        return Chat(
            generation_id=reply.generation_id or new_generation_id(),
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
        self._send_json(reply.status, error_body(reply.message, code, reply.metadata), headers)

    def _raw_reply(self, record: RecordedRequest, reply: RawReply) -> None:
        self._start(reply.status, {**reply.headers, "Transfer-Encoding": "chunked"})
        frames = [Frame(chunk, reply.delay) for chunk in reply.chunks]
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
        completed = self._await_in_flight(reply.wait_for_in_flight) and self._send_frames(
            plan_stream(reply, chat, usage), reply.byte_at_a_time
        )
        # stats are kept before the stream ends, so a client that saw the end can look
        # them up at once (a cancelled one: once the server noticed the client left)
        elapsed = time.monotonic() - started
        self.fake._add_generation(
            chat, reply, usage, elapsed, streamed=True, cancelled=not completed
        )
        if not completed:
            self._client_left(record)
        elif reply.drop:
            self._drop()
        else:
            self._end_chunks()

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
        result = chat_result(reply, chat, usage)
        self._send_json(200, result, {"X-Generation-Id": chat.generation_id})
        elapsed = time.monotonic() - started
        self.fake._add_generation(chat, reply, usage, elapsed, streamed=False, cancelled=False)

    def _await_in_flight(self, count: int) -> bool:
        """Hold until ``count`` chat requests (this one included) have been in flight
        together, or a while has passed; False when the client left meanwhile.

        Those in flight when this one arrived, and those that arrived since, overlap with
        it: a short request that came and went while this one waited counts too.
        """
        deadline = time.monotonic() + self.fake.in_flight_wait
        while count and self.fake._company(*self._company) < count:
            if time.monotonic() >= deadline or not self._pause(0.01):
                return time.monotonic() >= deadline
        return True

    def _client_left(self, record: RecordedRequest) -> None:
        self._mark_end()
        self.close_connection = True
        if not self.fake._stopping.is_set():  # stop() ends streams too; that is not the client
            record.client_disconnected = True

    def _models(self, record: RecordedRequest) -> None:
        if self.fake.models_delay and not self._pause(self.fake.models_delay):
            self._client_left(record)
            return
        models = self.fake.models
        body = {"data": models, "total_count": len(models), "links": {"next": None}}
        self._send_json(200, body, {"Cache-Control": "public, max-age=300"})

    def _key(self, record: RecordedRequest) -> None:
        self._send_json(200, {"data": self.fake.key_info})

    def _endpoints(self, record: RecordedRequest) -> None:
        """A model's providers (docs appendix): public, but latency and throughput only
        for a request with a valid key, as OpenRouter's SDK reference describes."""
        match = _ENDPOINTS_PATH.fullmatch(record.path)
        model_id = "/".join(unquote(part) for part in match.groups()) if match else ""
        model = next((m for m in self.fake.models if m.get("id") == model_id), None)
        endpoints = self.fake.endpoints.get(model_id)
        if model is None or endpoints is None:
            self._send_json(404, error_body(f"Model {model_id} not found", 404))
            return
        scheme, _, token = record.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.fake.api_key:
            endpoints = hide_performance(endpoints)
        self._send_json(200, endpoints_body(model, endpoints))

    def _generation(self, record: RecordedRequest) -> None:
        gen_id = record.query.get("id", "")
        if not gen_id:
            self._send_json(400, error_body("Missing required parameter: id", 400))
            return
        data = self.fake._poll_generation(gen_id)
        if data is None:
            self._send_json(404, error_body(f"Generation {gen_id} not found", 404))
        else:
            self._send_json(200, {"data": data})

    def _credits(self, record: RecordedRequest) -> None:
        # /credits needs a management key; an inference key gets 403 (docs §7).
        message = "Only management keys can fetch credits"
        self._send_json(403, error_body(message, 403))

    # ---- the batch endpoint (ormagic/testing/_batches.py)

    def _create_batch(self, record: RecordedRequest) -> None:
        status, body = self.fake.batches.create(record.body, record.raw_body)
        self._send_json(status, body)

    def _poll_batch(self, record: RecordedRequest) -> None:
        batch_id = record.path[len(BATCHES_PATH) + 1 :]
        prices = self.fake._prices
        status, body = self.fake.batches.poll(batch_id, self.fake._answer, prices)
        self._send_json(status, body)


_Route = tuple[bool, Callable[[_Handler, RecordedRequest], None]]
_ROUTES: dict[tuple[str, str], _Route] = {
    ("POST", _CHAT_PATH): (True, _Handler._chat),
    ("GET", f"{API_PREFIX}/models"): (False, _Handler._models),  # public, like OpenRouter's
    ("GET", f"{API_PREFIX}/key"): (True, _Handler._key),
    ("GET", f"{API_PREFIX}/generation"): (True, _Handler._generation),
    ("GET", f"{API_PREFIX}/credits"): (True, _Handler._credits),
    ("POST", BATCHES_PATH): (True, _Handler._create_batch),
}


def _route_for(method: str, path: str) -> _Route | None:
    """The route for a request: an exact path, or a model's endpoints."""
    route = _ROUTES.get((method, path))
    if route is None and method == "GET" and _ENDPOINTS_PATH.fullmatch(path):
        return (False, _Handler._endpoints)  # public, like /models
    return route or _batch_route(method, path)


def _batch_route(method: str, path: str) -> _Route | None:
    """``GET /api/beta/batches/:id`` (the one route with a parameter)."""
    tail = path[len(BATCHES_PATH) + 1 :] if path.startswith(BATCHES_PATH + "/") else ""
    if method == "GET" and tail and "/" not in tail:
        return (True, _Handler._poll_batch)
    return None


# --------------------------------------------------------------------------- server


class FakeOpenRouter:
    """A fake OpenRouter on a loopback port, serving from a daemon thread.

    Attributes a test may change at any time: ``models`` (the ``/models`` catalogue),
    ``models_delay`` (seconds ``/models`` takes to answer), ``endpoints`` (each model's
    providers, by model id: ``GET /models/{id}/endpoints``), ``key_info`` (the ``/key``
    data), ``fallback`` (the reply when nothing is scripted; None: the default answer,
    which echoes the question), ``in_flight_wait`` (seconds a reply with
    ``wait_for_in_flight`` holds at most before it streams anyway),
    ``generation_delay_polls`` (how many 404s
    ``/generation`` answers for a known id before the stats are "ready"), ``log`` (a
    function that receives one line per request; ``None`` is silent). :meth:`hold` stops
    chosen requests at a chosen point until the test lets them go.

    For batches of rows: ``latency`` (seconds every chat request waits before its answer
    begins), ``respond`` (a function of the request body that returns the reply for it, or
    None for the default; consulted after the scripted queue, so a row can be failed by
    its content whatever order rows arrive in) and ``batches`` (the batch endpoint's jobs
    and knobs, :class:`~ormagic.testing._batches.FakeBatches`).

    :meth:`reset` puts all of these back as they were when the server was made, so that
    one server can be shared by many tests in any order.
    """

    def __init__(
        self,
        *,
        api_key: str = FAKE_API_KEY,
        host: str = "127.0.0.1",
        port: int = 0,
        models: list[dict[str, Any]] | None = None,
        demo: bool = False,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.port = port
        # what reset() goes back to: the catalogue given, the demo answers or none
        self._given_models = copy.deepcopy(models) if models is not None else None
        self._demo = demo
        self.log: Callable[[str], None] | None = None  # an observer: reset() keeps it
        self.batches = FakeBatches()
        self._default_settings()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._holds: list[tuple[Callable[[dict[str, Any]], bool], int | None, threading.Event]] = []
        self._model_queues: dict[str, deque[Reply]] = {}
        self._in_flight = 0
        self._arrived = 0
        self._generations: dict[str, dict[str, Any]] = {}
        self._polls: dict[str, int] = {}
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _default_settings(self) -> None:
        """Every setting a test may change, as a new server has it."""
        given = self._given_models
        self.models: list[dict[str, Any]] = (
            copy.deepcopy(given) if given is not None else default_models()
        )
        self.endpoints: dict[str, list[dict[str, Any]]] = default_endpoints(self.models)
        self.key_info: dict[str, Any] = default_key_info(self.api_key)
        self.generation_delay_polls = 0
        self.models_delay = 0.0
        self.fallback: Reply | None = None
        self.latency = 0.0
        # demo: the scripted answers of the shipped notebooks (testing/demo.py)
        self.respond: Callable[[dict[str, Any]], Reply | None] | None = (
            demo_reply if self._demo else None
        )
        self.in_flight_wait = 10.0

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

    def hold(
        self, when: Callable[[dict[str, Any]], bool], *, at: int | None = None
    ) -> threading.Event:
        """Hold every chat request whose body ``when`` accepts until the returned event is
        set: before its answer begins (``at`` None), or once ``at`` characters of its
        text have streamed (see ``StreamReply.gates``). A test sets the event once it has
        seen what a frontend shows at that point, so nothing races the stream. An event
        already set holds nothing; ``hold`` adds to the holds already there."""
        gate = threading.Event()
        with self._lock:
            self._holds.append((when, at, gate))
        return gate

    def _holds_for(self, body: dict[str, Any]) -> list[tuple[int | None, threading.Event]]:
        with self._lock:
            holds = list(self._holds)
        return [(at, gate) for when, at, gate in holds if not gate.is_set() and when(body)]

    def enqueue_for(self, model: str, *replies: Reply) -> None:
        """Script the replies to the next chat requests for ``model``, first in first out.

        They are used before the replies of :meth:`enqueue`; with several models asked at
        once, the order in which their requests arrive is not known, their models are.
        """
        with self._lock:
            self._model_queues.setdefault(model, deque()).extend(replies)

    def in_flight(self) -> int:
        """How many chat requests are being answered right now."""
        with self._lock:
            return self._in_flight

    def reset(self) -> None:
        """Be as new: forget scripted replies, recorded requests and generations, let go
        of every request a :meth:`hold` stops (and drop the holds), and put every setting
        a test may change back to what the server started with (``models``,
        ``endpoints``, ``key_info``, ``fallback``, ``respond``, ``latency``,
        ``models_delay``, ``generation_delay_polls``, ``in_flight_wait`` and the batch
        endpoint's knobs). ``log`` is kept: it watches, it changes no answer."""
        with self._lock:
            holds, self._holds = self._holds, []
            self._default_settings()
            self._queue.clear()
            self._model_queues.clear()
            self._requests.clear()
            self._generations.clear()
            self._polls.clear()
        for _when, _at, gate in holds:
            gate.set()
        self.batches.reset()

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

    def _next_reply(self, model: str) -> Reply | None:
        with self._lock:
            for_model = self._model_queues.get(model)
            if for_model:
                return for_model.popleft()
            return self._queue.popleft() if self._queue else self.fallback

    def _chat_arrived(self) -> tuple[int, int]:
        """Count a chat request in; returns (in flight, arrived so far), itself included."""
        with self._lock:
            self._in_flight += 1
            self._arrived += 1
            return self._in_flight, self._arrived

    def _chat_left(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _company(self, in_flight_then: int, arrived_then: int) -> int:
        """How many chat requests overlapped with one that saw these counts on arrival."""
        with self._lock:
            return in_flight_then + self._arrived - arrived_then

    def _answer(self, body: dict[str, Any], model: str) -> Reply:
        """The reply for a request nobody scripted: ``respond``'s, else the default."""
        reply = self.respond(body) if self.respond is not None else None
        return reply if reply is not None else default_answer(body, model)

    def _prices(self, model: str) -> tuple[float, float]:
        return model_prices(self.models, model)

    def _usage_for(self, record: RecordedRequest, reply: StreamReply, model: str) -> dict[str, Any]:
        return reply_usage(request_messages(record.body), reply, model_prices(self.models, model))

    def _add_generation(
        self,
        chat: Chat,
        reply: StreamReply,
        usage: dict[str, Any],
        elapsed: float,
        *,
        streamed: bool,
        cancelled: bool,
    ) -> None:
        """Keep the stats ``GET /generation`` reports for one answer (docs §7)."""
        data = generation_stats(chat, reply, usage, elapsed, streamed=streamed, cancelled=cancelled)
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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Make Ctrl-C (SIGINT) and SIGTERM stop the server, whatever the parent process set.

    A process started with SIGINT ignored (``cmd &`` in a non-interactive shell) inherits
    that, and Python then installs no handler of its own; one started with them blocked
    (some CI runners) inherits the mask. Either way Ctrl-C and a test's
    ``send_signal(SIGINT)`` would do nothing and the server would never stop.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def main(argv: Sequence[str] | None = None) -> int:
    """Serve in the foreground until Ctrl-C or SIGTERM, printing the environment to use."""
    parser = argparse.ArgumentParser(
        prog="python -m ormagic.testing.fake_openrouter",
        description="A fake OpenRouter API on 127.0.0.1, for trying ormagic offline.",
    )
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument("--key", default=FAKE_API_KEY, help="the API key it accepts")
    parser.add_argument(
        "--echo",
        action="store_true",
        help="answer every question with the same echo (default: the shipped notebooks' "
        "scripted answers, echo for anything else)",
    )
    args = parser.parse_args(argv)
    stop_on_signals()
    fake = FakeOpenRouter(api_key=args.key, port=args.port, demo=not args.echo)
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
