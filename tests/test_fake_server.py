"""The fake OpenRouter server, checked with plain httpx against docs/openrouter-api.md."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from processes import STOP_SIGNALS, default_stop_signals
from waiting import eventually

from ormagic.testing.fake_openrouter import (
    FAKE_API_KEY,
    ErrorReply,
    FakeOpenRouter,
    RawReply,
    RecordedRequest,
    StreamReply,
)

AUTH = {"Authorization": f"Bearer {FAKE_API_KEY}"}
QUESTION = [{"role": "user", "content": "What is 2+2?"}]  # 12 characters: 3 prompt tokens
FLASH = "deepseek/deepseek-v4-flash"


@pytest.fixture
def client(fake_openrouter: FakeOpenRouter) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_openrouter.base_url, headers=AUTH, timeout=5) as c:
        yield c


def chat_body(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": FLASH, "messages": QUESTION, "stream": stream, **extra}


def stream_raw(
    client: httpx.Client, body: dict[str, Any] | None = None
) -> tuple[httpx.Response, bytes]:
    with client.stream("POST", "/chat/completions", json=body or chat_body()) as response:
        return response, b"".join(response.iter_raw())


def normalise(raw: bytes) -> bytes:
    """Zero the ``created`` timestamps so two streams can be compared byte for byte."""
    return re.sub(rb'"created":\d+', b'"created":0', raw)


def data_payloads(raw: bytes) -> list[str]:
    return [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]


# ----------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, b'{"error":{"message":"No auth credentials found","code":401}}'),
        (
            {"Authorization": "Basic abc"},
            b'{"error":{"message":"No auth credentials found","code":401}}',
        ),
        (
            {"Authorization": "Bearer"},
            b'{"error":{"message":"No auth credentials found","code":401}}',
        ),
        (
            {"Authorization": "Bearer sk-or-v1-wrong"},
            b'{"error":{"message":"User not found.","code":401}}',
        ),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/chat/completions"),
        ("GET", "/key"),
        ("GET", "/generation?id=x"),
        ("GET", "/credits"),
    ],
)
def test_auth_errors_have_openrouters_exact_bodies(
    fake_openrouter: FakeOpenRouter, headers: dict[str, str], body: bytes, method: str, path: str
) -> None:
    response = httpx.request(
        method, fake_openrouter.base_url + path, headers=headers, json=chat_body(), timeout=5
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.content == body
    assert ("x-generation-id" in response.headers) is (path == "/chat/completions")


def test_auth_failure_does_not_consume_a_scripted_reply(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.enqueue(StreamReply(text="kept"))
    httpx.post(fake_openrouter.base_url + "/chat/completions", json=chat_body(), timeout=5)
    response = client.post("/chat/completions", json=chat_body(stream=False))
    assert response.json()["choices"][0]["message"]["content"] == "kept"


# ----------------------------------------------------------------------------- SSE framing

HEAD = (
    '{"id":"gen-1-abc","object":"chat.completion.chunk","created":0,'
    '"model":"deepseek/deepseek-v4-flash","provider":"FakeProvider",'
)
TINY_STREAM = (
    ": OPENROUTER PROCESSING\n\n"
    f"data: {HEAD}"
    '"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Hmm.",'
    '"reasoning_details":[{"type":"reasoning.text","text":"Hmm.","format":"unknown","index":0}]},'
    '"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n'
    f"data: {HEAD}"
    '"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi!"},'
    '"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n'
    f"data: {HEAD}"
    '"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    '"finish_reason":"stop","native_finish_reason":"stop","logprobs":null}]}\n\n'
    ": OPENROUTER PROCESSING\n\n"
    f"data: {HEAD}"
    '"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,'
    '"cost":7e-07,"is_byok":false,"prompt_tokens_details":{"cached_tokens":0,'
    '"cache_write_tokens":0},"completion_tokens_details":{"reasoning_tokens":1},'
    '"cost_details":{"upstream_inference_cost":null,"upstream_inference_prompt_cost":4.2e-07,'
    '"upstream_inference_completions_cost":2.8e-07}}}\n\n'
    "data: [DONE]\n\n"
).encode()


def tiny(**changes: Any) -> StreamReply:
    fields: dict[str, Any] = {"text": "Hi!", "reasoning": "Hmm.", "generation_id": "gen-1-abc"}
    return StreamReply(**{**fields, **changes})


def test_tiny_stream_exact_bytes_and_headers(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.enqueue(tiny())
    response, raw = stream_raw(client)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["x-generation-id"] == "gen-1-abc"
    assert normalise(raw) == TINY_STREAM


@pytest.mark.parametrize("eol", ["\r", "\r\n"])
def test_line_endings_change_only_the_framing(
    fake_openrouter: FakeOpenRouter, client: httpx.Client, eol: str
) -> None:
    fake_openrouter.enqueue(tiny(line_ending=eol))
    _, raw = stream_raw(client)
    # JSON escapes newlines inside strings, so every raw "\n" in the stream is framing.
    assert normalise(raw) == TINY_STREAM.replace(b"\n", eol.encode())


def test_byte_at_a_time_sends_one_byte_per_chunk(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.enqueue(tiny(text="Hé ✓", byte_at_a_time=True))
    with client.stream("POST", "/chat/completions", json=chat_body()) as response:
        pieces = list(response.iter_raw())
    assert {len(p) for p in pieces} == {1}
    raw = b"".join(pieces)
    assert "✓".encode() in raw  # raw UTF-8, so multi-byte characters really are split
    assert [
        json.loads(p)["choices"][0]["delta"].get("content") for p in data_payloads(raw)[:2]
    ] == [
        "",
        "Hé ✓",
    ]


@pytest.mark.parametrize(
    ("variant", "choices"),
    [
        ("empty_choices", []),
        (
            "one_choice",
            [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "finish_reason": None,
                    "native_finish_reason": None,
                    "logprobs": None,
                }
            ],
        ),
        (
            "with_finish",
            [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "finish_reason": "stop",
                    "native_finish_reason": "stop",
                    "logprobs": None,
                }
            ],
        ),
    ],
)
def test_usage_chunk_variants(
    fake_openrouter: FakeOpenRouter, client: httpx.Client, variant: str, choices: list[Any]
) -> None:
    fake_openrouter.enqueue(tiny(usage_variant=variant))
    _, raw = stream_raw(client)
    payloads = data_payloads(raw)
    assert payloads[-1] == "[DONE]"
    usage_chunk = json.loads(payloads[-2])
    assert usage_chunk["choices"] == choices
    assert usage_chunk["usage"]["total_tokens"] == 4
    assert json.loads(payloads[-3])["choices"][0]["finish_reason"] == "stop"


def test_no_keepalives_no_done_and_explicit_usage(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9, "cost": 0.5}
    fake_openrouter.enqueue(tiny(keepalives=False, send_done=False, usage=usage))
    _, raw = stream_raw(client)
    assert b"OPENROUTER PROCESSING" not in raw
    assert b"[DONE]" not in raw
    assert json.loads(data_payloads(raw)[-1])["usage"] == usage


def test_chunk_chars_splits_text_and_reasoning(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.enqueue(StreamReply(text="abcdefg", reasoning="xyz", chunk_chars=3))
    _, raw = stream_raw(client)
    deltas = [json.loads(p)["choices"][0]["delta"] for p in data_payloads(raw)[:-2]]
    assert [d.get("reasoning") for d in deltas[:2]] == ["xyz", None]
    assert [d["content"] for d in deltas[1:4]] == ["abc", "def", "g"]


def test_explicit_reasoning_details_one_item_per_chunk(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    items: list[dict[str, Any]] = [
        {"type": "reasoning.summary", "summary": "Adds numbers.", "format": "openai-responses-v1"},
        {"type": "reasoning.encrypted", "data": "gAAAAB==", "format": "openai-responses-v1"},
        {"type": "reasoning.future_kind", "blob": 1},
    ]
    fake_openrouter.enqueue(StreamReply(text="4", reasoning_details=items))
    _, raw = stream_raw(client)
    deltas = [json.loads(p)["choices"][0]["delta"] for p in data_payloads(raw)[:3]]
    assert [d["reasoning_details"] for d in deltas] == [[item] for item in items]
    assert [d["reasoning"] for d in deltas] == ["Adds numbers.", None, None]


@pytest.mark.parametrize("send_done", [True, False])
def test_mid_stream_error_chunk(
    fake_openrouter: FakeOpenRouter, client: httpx.Client, send_done: bool
) -> None:
    error = {"code": 502, "message": "Provider disconnected", "metadata": {"error_type": "x"}}
    fake_openrouter.enqueue(tiny(error=error, send_done=send_done, keepalives=False))
    response, raw = stream_raw(client)
    assert response.status_code == 200
    payloads = data_payloads(raw)
    assert (payloads[-1] == "[DONE]") is send_done
    error_chunk = json.loads(payloads[2])
    assert list(error_chunk) == ["id", "object", "created", "model", "provider", "error", "choices"]
    assert error_chunk["error"] == error
    assert error_chunk["choices"] == [
        {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
    ]
    assert len(payloads) == (4 if send_done else 3)  # no finish or usage chunk after an error


def test_a_stall_is_silence_after_the_text(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    # an hour of silence after the text: the client reads up to the text, then leaves
    fake_openrouter.enqueue(tiny(keepalives=False, stall=3600))
    received = b""
    with client.stream("POST", "/chat/completions", json=chat_body()) as response:
        for piece in response.iter_raw():
            received += piece
            if b'"content":"Hi!"' in received:
                break
    payloads = data_payloads(received)
    choices = [json.loads(p)["choices"][0] for p in payloads]  # the text ends what came
    assert [(c["delta"].get("reasoning"), c["delta"]["content"]) for c in choices] == [
        ("Hmm.", ""),
        (None, "Hi!"),
    ]
    assert [c["finish_reason"] for c in choices] == [None, None]
    record = fake_openrouter.chat_requests()[-1]
    # the server was still silent when the client left: it noticed, and never finished
    eventually(lambda: record.client_disconnected, "the server noticing the client left")
    stats = client.get("/generation", params={"id": "gen-1-abc"}).json()["data"]
    assert (stats["cancelled"], stats["finish_reason"]) == (True, None)


def test_gates_hold_the_stream_where_a_test_looks_until_it_opens_them(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    before_text, halfway, after_text = threading.Event(), threading.Event(), threading.Event()
    gates = {0: before_text, 4: halfway, 8: after_text}
    fake_openrouter.enqueue(tiny(text="abcdefgh", chunk_chars=2, gates=gates))
    seen: list[str] = []

    def read() -> None:
        with client.stream("POST", "/chat/completions", json=chat_body()) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    seen.append(line[6:])
                elif line == ": OPENROUTER PROCESSING":
                    seen.append("keep-alive")
            seen.append("closed")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def deltas(key: str) -> list[str]:
        chunks = [json.loads(d)["choices"] for d in seen if d.startswith("{")]
        return [c[0]["delta"][key] for c in chunks if c and c[0].get("delta", {}).get(key)]

    def held_at(expected: list[str], gate: threading.Event) -> None:
        # held, the server sends a keep-alive every second and nothing else: one that
        # came after the text so far shows it waited there
        eventually(
            lambda: (
                "".join(deltas("reasoning")) == "Hmm."
                and deltas("content") == expected
                and seen[-1] == "keep-alive"
            ),
            f"the text reaching {expected} and held there",
        )
        assert deltas("content") == expected and "[DONE]" not in seen
        gate.set()

    try:
        held_at([], before_text)
        held_at(["ab", "cd"], halfway)
        held_at(["ab", "cd", "ef", "gh"], after_text)
    finally:
        for gate in gates.values():
            gate.set()
    eventually(lambda: seen and seen[-1] == "closed", "the stream ending")
    assert seen[-2] == "[DONE]"


def test_hold_stops_the_requests_it_matches_before_or_within_their_answer(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    asks_b = fake_openrouter.hold(lambda body: body["messages"][-1]["content"] == "b")
    within = fake_openrouter.hold(lambda body: body["messages"][-1]["content"] == "c", at=3)
    fake_openrouter.enqueue_for("m-b", tiny(text="bbbbbb", chunk_chars=1))
    fake_openrouter.enqueue_for("m-c", tiny(text="cccccc", chunk_chars=1))
    received: dict[str, str] = {}
    kept_alive_at: dict[str, str] = {}  # the text so far when a keep-alive followed it

    def ask(text: str) -> None:
        body = {"model": f"m-{text}", "messages": [{"role": "user", "content": text}]}
        with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    delta = json.loads(line[6:])["choices"] or [{"delta": {}}]
                    received[text] = received.get(text, "") + (
                        delta[0]["delta"].get("content") or ""
                    )
                elif line == ": OPENROUTER PROCESSING" and text in received:
                    kept_alive_at[text] = received[text]

    def asked(text: str) -> bool:
        return any(r.body["messages"][-1]["content"] == text for r in fake_openrouter.requests)

    threads = [threading.Thread(target=ask, args=(t,), daemon=True) for t in "bc"]
    for thread in threads:
        thread.start()
    try:
        # c is held after 3 characters: the keep-alives the server sends while it waits
        # (one a second) come after them; b, asked meanwhile, has not begun
        eventually(
            lambda: asked("b") and kept_alive_at.get("c") == "ccc", "c held after 3 characters"
        )
        assert received == {"c": "ccc"}
        asks_b.set()
        eventually(lambda: received.get("b") == "bbbbbb", "b answering once let go")
        assert received["c"] == "ccc"
    finally:
        asks_b.set()
        within.set()
    eventually(lambda: received.get("c") == "cccccc", "c finishing once let go")
    for thread in threads:
        thread.join(timeout=30)


def test_drop_closes_mid_body(fake_openrouter: FakeOpenRouter, client: httpx.Client) -> None:
    fake_openrouter.enqueue(tiny(drop=True))
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/chat/completions", json=chat_body()) as response,
    ):
        for piece in response.iter_raw():
            received += piece
    assert b'"content":"Hi!"' in received
    assert b'finish_reason":"stop' not in received
    assert b"[DONE]" not in received


def test_client_disconnect_is_recorded(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    # silent for an hour after its text: the answer cannot end before the client leaves
    fake_openrouter.enqueue(StreamReply(text="x" * 400, chunk_chars=4, stall=3600))
    with client.stream("POST", "/chat/completions", json=chat_body()) as response:
        gen_id = response.headers["x-generation-id"]
        next(response.iter_raw())
    record = fake_openrouter.chat_requests()[-1]
    eventually(lambda: record.client_disconnected, "the server noticing the client left")
    stats = client.get("/generation", params={"id": gen_id}).json()["data"]
    assert (stats["cancelled"], stats["finish_reason"], stats["streamed"]) == (True, None, True)


def test_disconnect_during_a_stall_is_noticed_without_writing(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.enqueue(tiny(keepalives=False, stall=30))
    with client.stream("POST", "/chat/completions", json=chat_body()) as response:
        next(response.iter_raw())
    record = fake_openrouter.chat_requests()[-1]
    eventually(lambda: record.client_disconnected, "the server noticing the client left")


def test_complete_stream_is_not_a_disconnect(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.enqueue(tiny())
    stream_raw(client)
    # the handler counts the request out once it has decided how the answer ended
    eventually(lambda: fake_openrouter.in_flight() == 0, "the answer being over")
    assert fake_openrouter.chat_requests()[0].client_disconnected is False


# ----------------------------------------------------------------------------- other replies


def test_non_streaming_chat_result(fake_openrouter: FakeOpenRouter, client: httpx.Client) -> None:
    fake_openrouter.enqueue(tiny(model="anthropic/claude-sonnet-4.6", provider="Anthropic"))
    response = client.post("/chat/completions", json=chat_body(stream=False))
    assert response.headers["x-generation-id"] == "gen-1-abc"
    result = response.json()
    assert result["object"] == "chat.completion"
    assert (result["model"], result["provider"]) == ("anthropic/claude-sonnet-4.6", "Anthropic")
    assert result["choices"] == [
        {
            "index": 0,
            "logprobs": None,
            "finish_reason": "stop",
            "native_finish_reason": "stop",
            "message": {
                "role": "assistant",
                "content": "Hi!",
                "refusal": None,
                "reasoning": "Hmm.",
                "reasoning_details": [
                    {"type": "reasoning.text", "text": "Hmm.", "format": "unknown", "index": 0}
                ],
            },
        }
    ]
    # priced from the answering model: 3 x $3/M + 1 x $15/M
    assert result["usage"]["cost"] == 0.000024


def test_non_streaming_error_after_partial_output(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    error = {"code": 502, "message": "Provider disconnected"}
    fake_openrouter.enqueue(tiny(error=error))
    choice = client.post("/chat/completions", json=chat_body(stream=False)).json()["choices"][0]
    assert (choice["finish_reason"], choice["error"], choice["message"]["content"]) == (
        "error",
        error,
        "Hi!",
    )


def test_error_reply_body_and_headers(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.enqueue(
        ErrorReply(
            429,
            "Rate limit exceeded",
            metadata={"error_type": "rate_limit_exceeded"},
            retry_after="7",
        ),
        ErrorReply(502, "Provider returned error", code="server_error"),
        ErrorReply(400, "Bad", code=None, headers={"X-Extra": "1"}),
        ErrorReply(503, "", body=b"<html>503 Service Unavailable</html>"),
    )
    first = client.post("/chat/completions", json=chat_body())
    assert first.status_code == 429
    assert first.headers["retry-after"] == "7"
    assert first.headers["x-generation-id"].startswith("gen-")
    assert first.content == (
        b'{"error":{"message":"Rate limit exceeded","code":429,'
        b'"metadata":{"error_type":"rate_limit_exceeded"}}}'
    )
    second = client.post("/chat/completions", json=chat_body())
    assert second.json() == {
        "error": {"message": "Provider returned error", "code": "server_error"}
    }
    third = client.post("/chat/completions", json=chat_body())
    assert (third.json(), third.headers["x-extra"]) == ({"error": {"message": "Bad"}}, "1")
    fourth = client.post("/chat/completions", json=chat_body())
    assert (fourth.status_code, fourth.headers["content-type"]) == (503, "text/html; charset=utf-8")
    assert fourth.content == b"<html>503 Service Unavailable</html>"


def test_raw_reply_exact_bytes(fake_openrouter: FakeOpenRouter, client: httpx.Client) -> None:
    chunks = [b'data: {"a"', b":1}\r\n\r\n", b"data: [DONE]\n\n"]
    fake_openrouter.enqueue(RawReply(chunks), RawReply([b"x"], status=200, drop=True))
    response, raw = stream_raw(client)
    assert (response.headers["content-type"], raw) == ("text/event-stream", b"".join(chunks))
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/chat/completions", json=chat_body()) as dropped,
    ):
        dropped.read()


def test_replies_are_used_in_order_then_the_default(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.enqueue(StreamReply(text="one"), StreamReply(text="two"))
    answers = [
        client.post("/chat/completions", json=chat_body(stream=False)).json()["choices"][0][
            "message"
        ]
        for _ in range(3)
    ]
    assert [a["content"] for a in answers[:2]] == ["one", "two"]
    assert answers[2]["content"].startswith("You asked:\n\n> What is 2+2?\n\n")


def test_default_reply_is_deterministic_markdown(client: httpx.Client) -> None:
    body = chat_body(
        stream=False,
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Plot   this\n\ttable  please\nThanks"}],
            },
        ],
    )
    message = client.post("/chat/completions", json=body).json()["choices"][0]["message"]
    assert (
        message["reasoning"] == "The user asks: Plot this table please Thanks. I'll answer briefly."
    )
    assert message["content"] == (
        "You asked:\n\n> Plot   this\n\n"
        "This is the fake OpenRouter server, so the answer is the same every time.\n\n"
        "| Field | Value |\n|---|---|\n"
        "| Model | `deepseek/deepseek-v4-flash` |\n"
        "| Characters in your message | 33 |\n\n"
        '```python\nprint("Hello from the fake OpenRouter")\n```\n'
    )


def test_default_reasoning_quotes_at_most_100_characters(client: httpx.Client) -> None:
    body = chat_body(stream=False, messages=[{"role": "user", "content": "a" * 300}])
    reasoning = client.post("/chat/completions", json=body).json()["choices"][0]["message"][
        "reasoning"
    ]
    assert reasoning == f"The user asks: {'a' * 100}. I'll answer briefly."


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "Invalid JSON in request body"),
        (b'{"model":"x"}', 'Input required: specify "messages" with at least one message'),
        (b'{"messages":[]}', 'Input required: specify "messages" with at least one message'),
    ],
)
def test_bad_chat_bodies_get_400(
    fake_openrouter: FakeOpenRouter, client: httpx.Client, content: bytes, message: str
) -> None:
    response = client.post("/chat/completions", content=content)
    assert (response.status_code, response.json()) == (
        400,
        {"error": {"message": message, "code": 400}},
    )


# ----------------------------------------------------------------------------- records


def test_request_record(fake_openrouter: FakeOpenRouter, client: httpx.Client) -> None:
    body = chat_body(
        stream=False,
        usage={"include": True},
        stream_options={"include_usage": True},
        transforms=["middle-out"],
        provider={"order": ["deepseek"]},
        models=["openai/gpt-5-nano"],
        plugins=[{"id": "context-compression", "enabled": False}],
        user="u1",
        session_id="s1",
        reasoning={"effort": "high"},
        temperature=0.2,
        max_tokens=100,
    )
    client.get("/models", params={"supported_parameters": "reasoning"}, headers={"X-Title": "T"})
    response = client.post(
        "/chat/completions", json=body, headers={"HTTP-Referer": "https://x.test"}
    )
    assert response.status_code == 200
    models_request, chat_request = fake_openrouter.requests
    assert (models_request.method, models_request.path, models_request.query) == (
        "GET",
        "/api/v1/models",
        {"supported_parameters": "reasoning"},
    )
    assert models_request.headers["x-title"] == "T"
    assert fake_openrouter.chat_requests() == [chat_request]
    assert chat_request.path == "/api/v1/chat/completions"
    assert chat_request.headers["authorization"] == f"Bearer {FAKE_API_KEY}"
    assert chat_request.headers["http-referer"] == "https://x.test"
    assert chat_request.body == body
    assert json.loads(chat_request.raw_body) == body


def test_records_include_rejected_requests_and_reset_clears(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.enqueue(StreamReply(text="never used"))
    httpx.get(fake_openrouter.base_url + "/key", timeout=5)
    client.post("/chat/completions", content=b"{")
    assert [(r.path, r.body) for r in fake_openrouter.requests] == [
        ("/api/v1/key", None),
        ("/api/v1/chat/completions", None),
    ]
    fake_openrouter.reset()
    assert fake_openrouter.requests == []
    answer = client.post("/chat/completions", json=chat_body(stream=False)).json()
    assert answer["choices"][0]["message"]["content"].startswith("You asked:")


SETTINGS = (
    "models",
    "endpoints",
    "key_info",
    "fallback",
    "respond",
    "latency",
    "models_delay",
    "generation_delay_polls",
    "in_flight_wait",
)


def settings(fake: FakeOpenRouter) -> dict[str, Any]:
    knobs = {name: getattr(fake, name) for name in SETTINGS}
    return {**knobs, "batches": (fake.batches.polls_per_status, fake.batches.end_with)}


def test_reset_puts_every_setting_back_and_lets_held_requests_go(
    fake_openrouter: FakeOpenRouter,
) -> None:
    fake = fake_openrouter
    new = settings(FakeOpenRouter())
    assert settings(fake) == new
    held = fake.hold(lambda body: True)
    answers: list[int] = []
    url = fake.base_url + "/chat/completions"
    asking = threading.Thread(
        target=lambda: answers.append(
            httpx.post(url, json=chat_body(stream=False), headers=AUTH, timeout=60).status_code
        )
    )
    asking.start()
    eventually(lambda: fake.chat_requests(), "the held request arriving")
    log = fake.log = lambda line: None
    fake.models[0]["pricing"]["prompt"] = "1"  # changed in place, too
    fake.models.append({"id": "x/y"})
    fake.endpoints = {}
    fake.key_info = {"label": "changed"}
    fake.fallback = StreamReply(text="fallback")
    fake.respond = lambda body: ErrorReply(500, "respond")
    fake.latency = fake.models_delay = 3600
    fake.generation_delay_polls = 5
    fake.in_flight_wait = 0.1
    fake.batches.polls_per_status, fake.batches.end_with = 9, "failed"
    fake.reset()
    asking.join(timeout=60)
    assert answers == [200] and held.is_set()
    assert settings(fake) == new
    assert fake.log is log  # it only watches
    assert fake.requests == []
    fake.hold(lambda body: True)
    fake.reset()
    answer = httpx.post(url, json=chat_body(stream=False), headers=AUTH, timeout=60)
    assert answer.json()["choices"][0]["message"]["content"].startswith("You asked:")


def test_reset_keeps_the_catalogue_and_demo_answers_the_server_was_made_with() -> None:
    catalogue = [{"id": "only/one", "pricing": {"prompt": "0", "completion": "0"}}]
    with FakeOpenRouter(models=catalogue, demo=True) as fake:
        fake.models[0]["id"] = "changed"
        fake.respond = None
        fake.reset()
        assert fake.models == catalogue and fake.models is not catalogue
        assert fake.respond is FakeOpenRouter(demo=True).respond is not None


def test_record_type_defaults() -> None:
    record = RecordedRequest("GET", "/api/v1/models", {}, {}, None)
    assert (record.client_disconnected, record.raw_body) == (False, b"")


# ----------------------------------------------------------------------------- endpoints


def test_models_catalogue(fake_openrouter: FakeOpenRouter) -> None:
    response = httpx.get(fake_openrouter.base_url + "/models", timeout=5)  # no auth needed
    assert response.headers["cache-control"] == "public, max-age=300"
    body = response.json()
    assert list(body) == ["data", "total_count", "links"]
    assert (body["total_count"], body["links"]) == (6, {"next": None})
    by_id = {m["id"]: m for m in body["data"]}
    flash = by_id[FLASH]
    assert flash["name"] == "DeepSeek: DeepSeek V4 Flash"
    assert (flash["context_length"], flash["created"]) == (1048576, 1777000000)
    assert flash["pricing"] == {"prompt": "0.00000014", "completion": "0.00000028"}
    assert {"reasoning", "include_reasoning", "max_tokens", "temperature"} <= set(
        flash["supported_parameters"]
    )
    assert flash["reasoning"] == {"supported_efforts": ["high", "xhigh"], "default_effort": "high"}
    assert by_id["anthropic/claude-sonnet-4.6"]["pricing"] == {
        "prompt": "0.000003",
        "completion": "0.000015",
    }
    assert by_id["meta-llama/llama-3.3-70b-instruct:free"]["pricing"] == {
        "prompt": "0",
        "completion": "0",
    }
    assert by_id["openai/gpt-5-nano"]["reasoning"]["mandatory"] is True
    assert [m["id"] for m in body["data"] if m["context_length"] is None] == ["fakeco/mystery-1"]
    assert [m["id"] for m in body["data"] if "reasoning" not in m] == [
        "meta-llama/llama-3.1-8b-instruct",
        "meta-llama/llama-3.3-70b-instruct:free",
        "fakeco/mystery-1",
    ]
    assert all(isinstance(p, str) for m in body["data"] for p in m["pricing"].values())


def test_custom_catalogue_prices_the_usage() -> None:
    models = [{"id": "me/m", "pricing": {"prompt": "0.001", "completion": "0.002"}}]
    with (
        FakeOpenRouter(models=models) as fake,
        httpx.Client(base_url=fake.base_url, headers=AUTH) as c,
    ):
        assert c.get("/models").json() == {
            "data": models,
            "total_count": 1,
            "links": {"next": None},
        }
        fake.enqueue(StreamReply(text="abcdefgh"))  # 2 completion tokens
        usage = c.post("/chat/completions", json=chat_body(stream=False, model="me/m")).json()[
            "usage"
        ]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cost"]) == (3, 2, 0.007)


def test_key_endpoint(fake_openrouter: FakeOpenRouter, client: httpx.Client) -> None:
    data = client.get("/key").json()["data"]
    assert data["label"] == "sk-or-v1-fak...000"
    assert (data["limit"], data["limit_remaining"], data["usage"]) == (10.0, 7.25, 2.75)
    assert (data["usage_daily"], data["usage_weekly"], data["usage_monthly"]) == (0.5, 1.0, 2.75)
    assert (data["is_free_tier"], data["limit_reset"]) == (False, None)
    fake_openrouter.key_info = {"label": "custom", "limit": None}
    assert client.get("/key").json() == {"data": {"label": "custom", "limit": None}}


def test_generation_stats_after_delay_polls(
    fake_openrouter: FakeOpenRouter, client: httpx.Client
) -> None:
    fake_openrouter.generation_delay_polls = 2
    fake_openrouter.enqueue(tiny())
    stream_raw(client)
    statuses = [client.get("/generation", params={"id": "gen-1-abc"}).status_code for _ in range(3)]
    assert statuses == [404, 404, 200]
    data = client.get("/generation", params={"id": "gen-1-abc"}).json()["data"]
    assert {k: data[k] for k in ("id", "model", "provider_name", "finish_reason")} == {
        "id": "gen-1-abc",
        "model": FLASH,
        "provider_name": "FakeProvider",
        "finish_reason": "stop",
    }
    assert (data["tokens_prompt"], data["tokens_completion"], data["native_tokens_reasoning"]) == (
        3,
        1,
        1,
    )
    assert (data["total_cost"], data["cancelled"], data["streamed"]) == (7e-07, False, True)
    assert isinstance(data["latency"], int) and isinstance(data["generation_time"], int)


def test_generation_unknown_and_missing_id(client: httpx.Client) -> None:
    unknown = client.get("/generation", params={"id": "gen-nope"})
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"error": {"message": "Generation gen-nope not found", "code": 404}},
    )
    assert client.get("/generation").status_code == 400


def test_credits_unknown_paths_and_methods(client: httpx.Client) -> None:
    credits = client.get("/credits")
    assert (credits.status_code, credits.json()["error"]["code"]) == (403, 403)
    for method, path in [("GET", "/nope"), ("GET", "/chat/completions"), ("DELETE", "/models")]:
        response = client.request(method, path)
        assert (response.status_code, response.json()["error"]["code"]) == (404, 404)


# ----------------------------------------------------------------------------- lifecycle


def test_stop_ends_a_stalled_stream_without_waiting_for_it() -> None:
    fake = FakeOpenRouter().start()
    fake.enqueue(tiny(stall=3600))  # an hour: stop() must not wait for it
    with httpx.Client(base_url=fake.base_url, headers=AUTH, timeout=60) as c:
        idle = httpx.Client(base_url=fake.base_url, headers=AUTH, timeout=60)
        idle.get("/models")  # leaves a kept-alive connection open on the server
        with c.stream("POST", "/chat/completions", json=chat_body()) as response:
            pieces = response.iter_raw()
            next(pieces)
            stopper = threading.Thread(target=fake.stop)
            stopper.start()
            stopper.join(timeout=60)
            assert not stopper.is_alive(), "stop() waited for the stalled stream"
            with pytest.raises(httpx.RemoteProtocolError):
                list(pieces)
        idle.close()
    assert fake.chat_requests()[0].client_disconnected is False


@pytest.mark.parametrize(
    "bad", [{"line_ending": "\n\n"}, {"usage_variant": "none"}, {"chunk_chars": 0}]
)
def test_stream_reply_rejects_impossible_settings(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        StreamReply(**bad)


def test_base_url_needs_a_started_server() -> None:
    fake = FakeOpenRouter()
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    assert FakeOpenRouter(port=8123).base_url == "http://127.0.0.1:8123/api/v1"


def _ignore_stop_signals() -> None:
    """What ``cmd &`` in a non-interactive shell leaves a child process with."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _block_stop_signals() -> None:
    """What some CI runners leave a child process with: the signals blocked."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


# how the parent leaves SIGINT and SIGTERM to the server: never this test runner's own
PARENTS = {
    "default": default_stop_signals,
    "ignoring": _ignore_stop_signals,
    "blocking": _block_stop_signals,
}


@pytest.mark.parametrize(
    ("module", "stop", "parent"),
    [
        ("ormagic.testing.fake_openrouter", signal.SIGINT, "default"),
        ("ormagic.testing", signal.SIGINT, "ignoring"),
        ("ormagic.testing", signal.SIGTERM, "ignoring"),
        ("ormagic.testing", signal.SIGINT, "blocking"),
    ],
)
def test_command_line_prints_exports_logs_requests_and_stops(
    module: str, stop: signal.Signals, parent: str
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", "--key", "sk-or-v1-cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=PARENTS[parent],
    )
    try:
        assert process.stdout is not None
        base_line, key_line = process.stdout.readline(), process.stdout.readline()
        assert re.fullmatch(
            r"export OPENROUTER_BASE_URL=http://127\.0\.0\.1:\d+/api/v1\n", base_line
        )
        assert key_line == "export OPENROUTER_API_KEY=sk-or-v1-cli\n"
        base_url = base_line.strip().split("=", 1)[1]
        key = httpx.get(
            base_url + "/key", headers={"Authorization": "Bearer sk-or-v1-cli"}, timeout=30
        )
        assert key.json()["data"]["label"] == "sk-or-v1-cli...cli"
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # it did not stop: do not leak it into later tests
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert '"GET /api/v1/key HTTP/1.1" 200' in stderr
    assert "Traceback" not in stderr


def test_default_reply_quotes_the_last_paragraph(client: httpx.Client) -> None:
    context = "Notebook context:\n\nIn [1]:\n```python\nx = 1\n```"
    body = chat_body(stream=False, messages=[{"role": "user", "content": f"{context}\n\nWhy?"}])
    message = client.post("/chat/completions", json=body).json()["choices"][0]["message"]
    assert message["content"].startswith("You asked:\n\n> Why?\n\n")
    assert message["reasoning"] == "The user asks: Why?. I'll answer briefly."
