"""The HTTP client against ``httpx.MockTransport`` (docs/openrouter-api.md §1, §2, §4, §6)."""

from __future__ import annotations

import email.utils
import gzip
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ormagic import __version__
from ormagic.client.http import ChatRequest, OpenRouterClient
from ormagic.client.settings import DEFAULT_MAX_TOKENS, DEFAULT_MODEL, ClientSettings, Secret
from ormagic.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    MissingKeyError,
    NotFoundError,
    OrmagicError,
    PayloadTooLargeError,
    PaymentRequiredError,
    PermissionDeniedError,
    ProtocolError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TimeoutError_,
    TransportError,
)
from ormagic.events import Event, Finished, KeepAlive, StreamFailed, TextDelta, Usage

KEY = "sk-or-v1-unit-0123456789abcdef0123456789abcdef"
BASE = "https://or.test/api/v1"
MESSAGES = [{"role": "user", "content": "What is 2+2?"}]
SSE_OK = (
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"id":"gen-7","model":"m/x","provider":"P","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"4"},"finish_reason":null}]}\n\n'
    b'data: {"id":"gen-7","choices":[{"index":0,"delta":{"content":""},'
    b'"finish_reason":"stop","native_finish_reason":"end_turn"}]}\n\n'
    b'data: {"id":"gen-7","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":1,'
    b'"cost":0.000002}}\n\n'
    b"data: [DONE]\n\n"
)
EVENTS_OK: list[Event] = [
    KeepAlive("OPENROUTER PROCESSING"),
    TextDelta("4"),
    Usage(12, 1, cost=0.000002),
    Finished("stop", "end_turn", "gen-7", "m/x", "P"),
]
DROPPED = "The connection dropped before the answer finished; what arrived is kept."


def make_settings(**changes: Any) -> ClientSettings:
    fields: dict[str, Any] = {"api_key": Secret(KEY), "base_url": BASE, **changes}
    return ClientSettings(**fields)


def sse(body: bytes = SSE_OK, **headers: str) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream", **headers}, content=body
    )


def error_response(status: int, body: Any, **headers: str) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.Response(
            status, headers={"content-type": "text/html", **headers}, content=body
        )
    return httpx.Response(status, headers=headers, json=body)


class RecordingStream(httpx.SyncByteStream):
    """A response body that remembers being closed and can fail partway."""

    def __init__(self, chunks: list[bytes], fail: Exception | None = None) -> None:
        self.chunks = chunks
        self.fail = fail
        self.closed = False
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk
        if self.fail is not None:
            raise self.fail

    def close(self) -> None:
        self.closed = True


Reply = httpx.Response | Exception


class Server:
    """Replays scripted replies in order and records each request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_for(server: Server, sleeps: Sleeps | None = None, **changes: Any) -> OpenRouterClient:
    return OpenRouterClient(
        make_settings(**changes),
        transport=httpx.MockTransport(server),
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


def run_chat(client: OpenRouterClient, request: ChatRequest | None = None) -> list[Event]:
    with client.stream_chat(request or ChatRequest(MESSAGES)) as events:
        return list(events)


def raised(action: Callable[[], object]) -> OrmagicError:
    with pytest.raises(OrmagicError) as info:
        action()
    return info.value


# -- the request --------------------------------------------------------------------------


def test_chat_request_url_headers_and_body() -> None:
    server = Server(sse())
    settings = make_settings(extra_headers={"X-Extra": "yes"})
    client = OpenRouterClient(settings, transport=httpx.MockTransport(server))
    request = ChatRequest(
        MESSAGES,
        model="deepseek/deepseek-v4-flash",
        max_tokens=500,
        reasoning={"effort": "high"},
        temperature=0.2,
        provider={"order": ["deepseek"], "allow_fallbacks": False},
        models=("openai/gpt-5-nano",),
        session_id="ormagic-abc",
        extra={"top_p": 0.9},
    )
    assert run_chat(client, request) == EVENTS_OK
    (sent,) = server.requests
    assert sent.method == "POST"
    assert str(sent.url) == "https://or.test/api/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.headers["user-agent"] == f"ormagic/{__version__}"
    assert sent.headers["http-referer"] == "https://github.com/ormagic/ormagic"
    assert sent.headers["x-openrouter-title"] == "ormagic"
    assert sent.headers["x-extra"] == "yes"
    assert json.loads(sent.content) == {
        "model": "deepseek/deepseek-v4-flash",
        "messages": MESSAGES,
        "stream": True,
        "max_tokens": 500,
        "reasoning": {"effort": "high"},
        "temperature": 0.2,
        "provider": {"order": ["deepseek"], "allow_fallbacks": False},
        "models": ["openai/gpt-5-nano"],
        "session_id": "ormagic-abc",
        "top_p": 0.9,
    }
    assert sent.extensions["timeout"] == {
        "connect": 10.0,
        "read": 300.0,
        "write": 60.0,
        "pool": 10.0,
    }


def test_request_body_omits_unset_fields_and_extra_goes_last() -> None:
    assert ChatRequest(MESSAGES).to_json() == {
        "model": DEFAULT_MODEL,
        "messages": MESSAGES,
        "stream": True,
        "max_tokens": DEFAULT_MAX_TOKENS,
    }
    empty = ChatRequest(MESSAGES, reasoning={}, provider={}, models=(), session_id="")
    assert set(empty.to_json()) == {"model", "messages", "stream", "max_tokens"}
    extra = ChatRequest(MESSAGES, temperature=0.0, extra={"max_tokens": 7, "usage": {}})
    assert extra.to_json()["temperature"] == 0.0
    assert extra.to_json()["max_tokens"] == 7
    assert extra.to_json()["usage"] == {}


def test_non_ascii_text_is_sent_as_utf8_json() -> None:
    server = Server(sse())
    run_chat(client_for(server), ChatRequest([{"role": "user", "content": "héllo ✓"}]))
    assert "héllo ✓".encode() in server.requests[0].content


def test_extra_headers_cannot_replace_the_key() -> None:
    server = Server(sse())
    client = client_for(server, extra_headers={"Authorization": "Bearer other"})
    run_chat(client)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_trailing_slash_in_base_url() -> None:
    server = Server(sse())
    run_chat(client_for(server, base_url=BASE + "/"))
    assert str(server.requests[0].url) == "https://or.test/api/v1/chat/completions"


# -- errors before the stream -------------------------------------------------------------

CREDITS = (
    "This request requires more credits, or fewer max_tokens. You requested up to 32000 "
    "tokens, but can only afford 27342. To increase, visit https://openrouter.ai/settings/"
    "credits and upgrade to a paid account"
)
STATUS_CASES: list[tuple[int, Any, dict[str, str], type[APIError], str]] = [
    (
        400,
        {"error": {"code": 400, "message": "foo/bar is not a valid model ID"}},
        {},
        BadRequestError,
        "Bad request: foo/bar is not a valid model ID. Check the model id and options.",
    ),
    (
        401,
        {"error": {"message": "User not found.", "code": 401}},
        {},
        AuthenticationError,
        "OpenRouter rejected the API key (User not found.). Check OPENROUTER_API_KEY.",
    ),
    (
        402,
        {"error": {"message": CREDITS, "code": 402, "metadata": {"provider_name": None}}},
        {},
        PaymentRequiredError,
        f"Not enough credits ({CREDITS}). Add credits at "
        "https://openrouter.ai/settings/credits or lower --max-tokens.",
    ),
    (
        403,
        {
            "error": {
                "code": 403,
                "message": "Input flagged by moderation",
                "metadata": {
                    "reasons": ["violence", "hate"],
                    "flagged_input": "I will...them",
                    "provider_name": "OpenAI",
                    "model_slug": "openai/gpt-5",
                },
            }
        },
        {},
        PermissionDeniedError,
        'Blocked by moderation: violence, hate (flagged: "I will...them")',
    ),
    (
        403,
        {
            "error": {
                "code": 403,
                "message": "Request blocked: prompt injection patterns detected",
                "metadata": {"patterns": ["ignore previous"]},
            }
        },
        {},
        PermissionDeniedError,
        "OpenRouter refused the request (Request blocked: prompt injection patterns "
        "detected). Check the key's permissions.",
    ),
    (
        404,
        {"error": {"code": 404, "message": "No endpoints found for foo/bar."}},
        {},
        NotFoundError,
        "Not found: No endpoints found for foo/bar. Check the model id (%chat models lists them).",
    ),
    (
        408,
        {"error": {"code": 408, "message": "Request timed out"}},
        {},
        RequestTimeoutError,
        "OpenRouter timed out the request. Try again.",
    ),
    (
        413,
        {"error": {"code": 413, "message": "Payload too large"}},
        {},
        PayloadTooLargeError,
        "The request is too large. Send less context (--context N) or a shorter prompt.",
    ),
    (
        429,
        {"error": {"code": 429, "message": "Rate limit exceeded"}},
        {"Retry-After": "30"},
        RateLimitError,
        "Rate limited (Rate limit exceeded). Try again in 30 s.",
    ),
    (
        429,
        {"error": {"code": 429, "message": "Rate limit exceeded"}},
        {},
        RateLimitError,
        "Rate limited (Rate limit exceeded). Try again shortly.",
    ),
    (
        500,
        {"error": {"code": 500, "message": "Internal Server Error"}},
        {},
        ServerError,
        "OpenRouter error 500: Internal Server Error. Try again or choose another model.",
    ),
    (
        502,
        {
            "error": {
                "code": 502,
                "message": "Provider returned error",
                "metadata": {"provider_name": "DeepSeek"},
            }
        },
        {},
        ServerError,
        "OpenRouter error 502: Provider returned error (provider: DeepSeek). "
        "Try again or choose another model.",
    ),
    (
        502,
        {
            "error": {
                "code": 502,
                "message": "Provider returned error",
                "metadata": {
                    "provider_name": "DeepSeek",
                    "raw": '{"error":{"message":"Upstream overloaded.","type":"busy"}}',
                },
            }
        },
        {},
        ServerError,
        "OpenRouter error 502: Provider returned error: Upstream overloaded "
        "(provider: DeepSeek). Try again or choose another model.",
    ),
    (
        503,
        b"<html><body><h1>503 Service Unavailable</h1></body></html>",
        {},
        ServerError,
        "OpenRouter error 503: Service Unavailable. Try again or choose another model.",
    ),
    (
        422,
        {"error": {"message": "Unprocessable entity", "error_type": "unprocessable"}},
        {},
        APIError,
        "OpenRouter error 422: Unprocessable entity.",
    ),
    (
        529,
        {"error": {"code": "provider_overloaded", "message": "Overloaded", "metadata": None}},
        {},
        ServerError,
        "OpenRouter error 529: Overloaded. Try again or choose another model.",
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "message"),
    STATUS_CASES,
    ids=[f"{case[0]}-{i}" for i, case in enumerate(STATUS_CASES)],
)
def test_each_status_maps_to_its_error(
    status: int, body: Any, headers: dict[str, str], cls: type[APIError], message: str
) -> None:
    stream = RecordingStream([body if isinstance(body, bytes) else json.dumps(body).encode()])
    response = httpx.Response(
        status, headers={"x-generation-id": "gen-err", **headers}, stream=stream
    )
    server = Server(response)
    error = raised(lambda: run_chat(client_for(server, max_retries=0)))
    assert type(error) is cls
    assert str(error) == message
    assert isinstance(error, APIError)
    assert error.status_code == status
    assert error.generation_id == "gen-err"
    error_body = body.get("error", {}) if isinstance(body, dict) else {}
    assert error.code == error_body.get("code")
    assert dict(error.metadata) == (error_body.get("metadata") or {})
    assert error.retry_after == (30.0 if headers else None)
    assert KEY not in str(error) and KEY not in repr(error)
    assert stream.closed
    assert len(server.requests) == 1


def test_error_body_without_error_object_uses_the_status_reason() -> None:
    server = Server(error_response(400, {"detail": "nope"}))
    error = raised(lambda: run_chat(client_for(server)))
    assert str(error) == "Bad request: Bad Request. Check the model id and options."


def test_json_error_inside_a_200_is_raised() -> None:
    body = {"error": {"code": 402, "message": "Insufficient credits"}, "user_id": "user_1"}
    server = Server(httpx.Response(200, json=body))
    error = raised(lambda: run_chat(client_for(server)))
    assert type(error) is PaymentRequiredError
    assert error.status_code == 402
    assert str(error).startswith("Not enough credits (Insufficient credits). Add credits")


def test_json_error_inside_a_200_without_a_code() -> None:
    server = Server(httpx.Response(200, json={"error": {"message": "Something broke"}}))
    error = raised(lambda: run_chat(client_for(server)))
    assert type(error) is APIError
    assert str(error) == "The server reported an error: Something broke."


def test_a_web_page_with_status_200_is_a_protocol_error() -> None:
    page = httpx.Response(200, headers={"content-type": "text/html"}, content=b"<html>login</html>")
    error = raised(lambda: run_chat(client_for(Server(page))))
    assert type(error) is ProtocolError
    assert str(error) == (
        "https://or.test/api/v1 answered with a web page, not an event stream. "
        "Check OPENROUTER_BASE_URL."
    )


def test_non_streaming_json_completion_is_turned_into_events() -> None:
    body = {
        "id": "gen-j",
        "model": "m/x",
        "provider": "P",
        "choices": [{"message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    server = Server(httpx.Response(200, json=body, headers={"x-generation-id": "gen-h"}))
    assert run_chat(client_for(server)) == [
        TextDelta("4"),
        Usage(3, 1),
        Finished("stop", None, "gen-j", "m/x", "P"),
    ]


# -- retries ------------------------------------------------------------------------------


def rate_limited(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return error_response(429, {"error": {"code": 429, "message": "Slow down"}}, **headers)


def unavailable() -> httpx.Response:
    return error_response(503, {"error": {"code": 503, "message": "No provider available"}})


def test_429_with_retry_after_waits_that_long() -> None:
    server, sleeps = Server(rate_limited("2"), sse()), Sleeps()
    assert run_chat(client_for(server, sleeps)) == EVENTS_OK
    assert sleeps == [2.0]
    assert len(server.requests) == 2


def test_503_without_retry_after_backs_off_exponentially() -> None:
    server, sleeps = Server(unavailable(), unavailable(), sse()), Sleeps()
    assert run_chat(client_for(server, sleeps)) == EVENTS_OK
    assert sleeps == [0.5, 1.0]
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [408, 502])
def test_408_and_502_are_retried(status: int) -> None:
    failing = error_response(status, {"error": {"code": status, "message": "x"}})
    server, sleeps = Server(failing, sse()), Sleeps()
    assert run_chat(client_for(server, sleeps)) == EVENTS_OK
    assert sleeps == [0.5]


def test_exhausted_retries_raise_the_last_error() -> None:
    server, sleeps = Server(unavailable(), unavailable(), unavailable()), Sleeps()
    error = raised(lambda: run_chat(client_for(server, sleeps)))
    assert type(error) is ServerError
    assert str(error) == (
        "OpenRouter error 503: No provider available. Try again or choose another model."
    )
    assert sleeps == [0.5, 1.0]
    assert len(server.requests) == 3


def test_backoff_is_capped() -> None:
    server = Server(*[unavailable() for _ in range(6)])
    sleeps = Sleeps()
    client = client_for(server, sleeps, max_retries=5, backoff_initial=1.0, backoff_max=3.0)
    raised(lambda: run_chat(client))
    assert sleeps == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    server, sleeps = Server(rate_limited(when), sse()), Sleeps()
    run_chat(client_for(server, sleeps))
    assert len(sleeps) == 1
    assert 8.0 < sleeps[0] <= 10.0


def test_retry_after_beyond_a_minute_raises_at_once() -> None:
    server, sleeps = Server(rate_limited("120"), sse()), Sleeps()
    error = raised(lambda: run_chat(client_for(server, sleeps)))
    assert type(error) is RateLimitError
    assert error.retry_after == 120.0
    assert str(error) == "Rate limited (Slow down). Try again in 120 s."
    assert sleeps == []
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 413, 500])
def test_other_statuses_are_not_retried(status: int) -> None:
    server, sleeps = Server(error_response(status, {"error": {"message": "no"}}), sse()), Sleeps()
    raised(lambda: run_chat(client_for(server, sleeps)))
    assert sleeps == []
    assert len(server.requests) == 1


def test_connection_failures_are_retried_then_succeed() -> None:
    refused = httpx.ConnectError("Connection refused")
    server, sleeps = Server(refused, httpx.ConnectTimeout("slow"), sse()), Sleeps()
    assert run_chat(client_for(server, sleeps)) == EVENTS_OK
    assert sleeps == [0.5, 1.0]


def test_connection_failure_after_retries() -> None:
    refused = [httpx.ConnectError("[Errno 111] Connection refused") for _ in range(3)]
    server, sleeps = Server(*refused), Sleeps()
    error = raised(lambda: run_chat(client_for(server, sleeps)))
    assert type(error) is TransportError
    assert str(error) == (
        "Could not reach https://or.test/api/v1: [Errno 111] Connection refused. "
        "Check your network or OPENROUTER_BASE_URL."
    )
    assert sleeps == [0.5, 1.0]


def test_connect_timeout_after_retries() -> None:
    server = Server(httpx.ConnectTimeout("timed out"))
    error = raised(lambda: run_chat(client_for(server, max_retries=0)))
    assert type(error) is TimeoutError_
    assert str(error) == (
        "Could not reach https://or.test/api/v1: no answer within 10 s. "
        "Check your network or OPENROUTER_BASE_URL."
    )


def test_read_timeout_before_the_headers_is_not_retried() -> None:
    server, sleeps = Server(httpx.ReadTimeout("timed out"), sse()), Sleeps()
    error = raised(lambda: run_chat(client_for(server, sleeps, read_timeout=30.0)))
    assert type(error) is TimeoutError_
    assert str(error) == "https://or.test/api/v1 did not answer within 30 s. Try again."
    assert sleeps == []


def test_base_url_without_a_scheme_is_a_config_error() -> None:
    # No transport: httpx's own transport rejects the URL before any network I/O.
    client = OpenRouterClient(make_settings(base_url="openrouter.ai/api/v1"))
    error = raised(lambda: run_chat(client))
    assert type(error) is ConfigError
    assert str(error) == (
        "'openrouter.ai/api/v1' is not a usable http(s) URL. Check OPENROUTER_BASE_URL."
    )


# -- the key ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, Secret("")])
@pytest.mark.parametrize("call", ["chat", "models", "key", "generation"])
def test_missing_key_raises_before_any_request(key: Secret | None, call: str) -> None:
    server = Server(sse())
    client = OpenRouterClient(
        ClientSettings(api_key=key, base_url=BASE), transport=httpx.MockTransport(server)
    )
    actions: dict[str, Callable[[], object]] = {
        "chat": lambda: client.stream_chat(ChatRequest(MESSAGES)).__enter__(),
        "models": client.get_models,
        "key": client.get_key,
        "generation": lambda: client.get_generation("gen-1"),
    }
    error = raised(actions[call])
    assert type(error) is MissingKeyError
    assert str(error) == (
        "No OpenRouter API key: set OPENROUTER_API_KEY or `%config ChatMagics.api_key`."
    )
    assert server.requests == []


def test_key_that_cannot_go_in_a_header_is_refused_without_quoting_it() -> None:
    bad = "sk-or-v1-abc “quoted”"
    server = Server(sse())
    client = OpenRouterClient(
        ClientSettings(api_key=Secret(bad), base_url=BASE), transport=httpx.MockTransport(server)
    )
    error = raised(lambda: run_chat(client))
    assert type(error) is ConfigError
    assert "abc" not in str(error)
    assert server.requests == []


def test_key_never_appears_in_reprs_or_errors() -> None:
    settings = make_settings()
    client = OpenRouterClient(settings)
    assert KEY not in repr(client)
    assert KEY not in repr(settings)
    assert KEY not in str(settings)
    failures: list[Reply] = [
        error_response(401, {"error": {"message": "User not found.", "code": 401}}),
        httpx.ConnectError("Connection refused"),
        httpx.ReadError("boom"),
    ]
    for failure in failures:
        server = Server(failure)
        error = raised(lambda: run_chat(client_for(server, max_retries=0)))  # noqa: B023
        assert KEY not in str(error)
        assert KEY not in repr(error)


# -- the stream ---------------------------------------------------------------------------


def test_transport_error_mid_stream_becomes_stream_failed() -> None:
    first = b'data: {"id":"gen-8","model":"m/x","choices":[{"delta":{"content":"Hal"}}]}\n\n'
    stream = RecordingStream([first, b"data: {"], fail=httpx.RemoteProtocolError("peer closed"))
    server = Server(
        httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)
    )
    events = run_chat(client_for(server))
    assert events[0] == TextDelta("Hal")
    assert len(events) == 2
    failed = events[1]
    assert isinstance(failed, StreamFailed)
    assert type(failed.error) is TransportError
    assert str(failed.error) == DROPPED
    assert (failed.generation_id, failed.model) == ("gen-8", "m/x")
    assert stream.closed


def test_read_timeout_mid_stream_becomes_a_timeout_failure() -> None:
    stream = RecordingStream([b": OPENROUTER PROCESSING\n\n"], fail=httpx.ReadTimeout("idle"))
    response = httpx.Response(
        200,
        headers={"content-type": "text/event-stream", "x-generation-id": "gen-h"},
        stream=stream,
    )
    events = run_chat(client_for(Server(response), read_timeout=45.0))
    assert events[0] == KeepAlive("OPENROUTER PROCESSING")
    failed = events[1]
    assert isinstance(failed, StreamFailed)
    assert type(failed.error) is TimeoutError_
    assert str(failed.error) == (
        "Nothing arrived for 45 s, so the answer was cut short; what arrived is kept."
    )
    assert failed.generation_id == "gen-h"


def streaming(stream: RecordingStream) -> Server:
    return Server(httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream))


def many_chunks() -> RecordingStream:
    return RecordingStream(
        [f'data: {{"choices":[{{"delta":{{"content":"{i}"}}}}]}}\n\n'.encode() for i in range(50)]
    )


def test_breaking_out_early_closes_the_response() -> None:
    stream = many_chunks()
    with client_for(streaming(stream)).stream_chat(ChatRequest(MESSAGES)) as events:
        for event in events:
            assert event == TextDelta("0")
            break
        assert not stream.closed
    assert stream.closed
    assert stream.sent < 50


@pytest.mark.parametrize("exc", [RuntimeError("bug"), KeyboardInterrupt()])
def test_an_exception_in_the_block_closes_the_response(exc: BaseException) -> None:
    stream = many_chunks()
    with (
        pytest.raises(type(exc)),
        client_for(streaming(stream)).stream_chat(ChatRequest(MESSAGES)) as events,
    ):
        next(events)
        raise exc
    assert stream.closed


def test_normal_end_closes_the_response() -> None:
    stream = many_chunks()
    events = run_chat(client_for(streaming(stream)))
    assert len(events) == 51
    assert stream.closed


def test_done_closes_without_reading_further() -> None:
    stream = RecordingStream(
        [b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n', b"data: [DONE]\n\n", b"data: x\n\n"]
    )
    assert run_chat(client_for(streaming(stream))) == [TextDelta("a"), Finished()]
    assert stream.sent == 2
    assert stream.closed


def test_gzip_encoded_stream_is_decoded() -> None:
    response = httpx.Response(
        200,
        headers={"content-type": "text/event-stream", "content-encoding": "gzip"},
        content=gzip.compress(SSE_OK),
    )
    assert run_chat(client_for(Server(response))) == EVENTS_OK


def test_missing_content_type_is_read_as_an_event_stream() -> None:
    assert run_chat(client_for(Server(httpx.Response(200, content=SSE_OK)))) == EVENTS_OK


# -- GET endpoints ------------------------------------------------------------------------


def test_get_models() -> None:
    models = [{"id": "deepseek/deepseek-v4-flash", "pricing": {"prompt": "0.00000014"}}]
    body = {"data": models, "total_count": 1, "links": {"next": None}}
    server = Server(httpx.Response(200, json=body))
    assert client_for(server).get_models() == models
    (sent,) = server.requests
    assert (sent.method, str(sent.url)) == ("GET", "https://or.test/api/v1/models")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["accept"] == "application/json"
    assert "content-type" not in sent.headers


def test_get_key() -> None:
    data = {"label": "sk-or-v1-fak...000", "limit": 10.0, "limit_remaining": 7.25}
    server = Server(httpx.Response(200, json={"data": data}))
    assert client_for(server).get_key() == data
    assert str(server.requests[0].url) == "https://or.test/api/v1/key"


def test_get_generation() -> None:
    data = {"id": "gen-1 2", "total_cost": 0.0000042}
    server = Server(httpx.Response(200, json={"data": data}))
    assert client_for(server).get_generation("gen-1 2") == data
    assert str(server.requests[0].url) == "https://or.test/api/v1/generation?id=gen-1+2"


def test_get_generation_not_found_yet() -> None:
    server = Server(error_response(404, {"error": {"code": 404, "message": "Not found"}}))
    error = raised(lambda: client_for(server).get_generation("gen-9"))
    assert type(error) is NotFoundError
    assert error.status_code == 404
    assert str(error) == (
        "No stats for generation gen-9 (yet): they appear a few seconds after the answer "
        "ends. Try again shortly."
    )


def test_get_uses_the_same_errors_and_retries() -> None:
    server = Server(rate_limited("1"), error_response(401, {"error": {"message": "No"}}))
    sleeps = Sleeps()
    error = raised(lambda: client_for(server, sleeps).get_key())
    assert type(error) is AuthenticationError
    assert sleeps == [1.0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", 'https://or.test/api/v1/key answered without a "data" field.'),
        (
            b'{"data": [1]}',
            'https://or.test/api/v1/key answered with a "data" that is not an object.',
        ),
        (b"<html>", "https://or.test/api/v1 answered with something that is not JSON: b'<html>'"),
    ],
)
def test_get_with_an_unexpected_body(body: bytes, message: str) -> None:
    error = raised(lambda: client_for(Server(httpx.Response(200, content=body))).get_key())
    assert type(error) is ProtocolError
    assert str(error) == message


def test_get_models_skips_entries_that_are_not_objects() -> None:
    server = Server(httpx.Response(200, json={"data": [{"id": "a"}, "junk", None]}))
    assert client_for(server).get_models() == [{"id": "a"}]


# -- lifecycle ----------------------------------------------------------------------------


def test_client_can_be_used_again_after_close() -> None:
    server = Server(sse(), sse())
    with client_for(server) as client:
        run_chat(client)
    run_chat(client)
    assert len(server.requests) == 2
    client.close()
    client.close()
