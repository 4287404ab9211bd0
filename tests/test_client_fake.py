"""The real client, end to end, against the loopback fake OpenRouter server."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from waiting import eventually

from ormagic.client.http import ChatRequest, OpenRouterClient
from ormagic.client.message import MessageBuilder
from ormagic.client.settings import DEFAULT_MAX_TOKENS, DEFAULT_MODEL, ClientSettings, Secret
from ormagic.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    MissingKeyError,
    NotFoundError,
    PayloadTooLargeError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    StreamError,
    TimeoutError_,
    TransportError,
)
from ormagic.events import (
    Event,
    Finished,
    KeepAlive,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    Usage,
)
from ormagic.testing.fake_openrouter import (
    FAKE_API_KEY,
    ErrorReply,
    FakeOpenRouter,
    RawReply,
    StreamReply,
)

QUESTION = [{"role": "user", "content": "What is 2+2?"}]  # 12 characters: 3 prompt tokens
PROCESSING = KeepAlive("OPENROUTER PROCESSING")


class SleepRecorder:
    """Stands in for time.sleep: the client's backoff is observed, not waited for."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_client(
    fake: FakeOpenRouter, *, key: str | None = FAKE_API_KEY, max_retries: int = 2
) -> tuple[OpenRouterClient, SleepRecorder]:
    sleeps = SleepRecorder()
    settings = ClientSettings(
        api_key=Secret(key) if key is not None else None,
        base_url=fake.base_url,
        max_retries=max_retries,
    )
    return OpenRouterClient(settings, sleep=sleeps), sleeps


@pytest.fixture
def client(fake_openrouter: FakeOpenRouter) -> Iterator[OpenRouterClient]:
    chat_client, _ = make_client(fake_openrouter)
    with chat_client:
        yield chat_client


def collect(client: OpenRouterClient, request: ChatRequest | None = None) -> list[Event]:
    with client.stream_chat(request or ChatRequest(QUESTION)) as events:
        return list(events)


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# ----------------------------------------------------------------------------- the request


def test_request_as_the_server_recorded_it(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    request = ChatRequest(
        QUESTION,
        model="anthropic/claude-sonnet-4.6",
        max_tokens=512,
        reasoning={"effort": "high"},
        temperature=0.3,
        provider={"order": ["anthropic"], "allow_fallbacks": False},
        models=("openai/gpt-5-nano",),
        session_id="ormagic-session-1",
    )
    collect(client, request)
    (record,) = fake_openrouter.chat_requests()
    assert (record.method, record.path) == ("POST", "/api/v1/chat/completions")
    assert record.headers["authorization"] == f"Bearer {FAKE_API_KEY}"
    assert record.headers["http-referer"] == "https://github.com/ormagic/ormagic"
    assert record.headers["x-openrouter-title"] == "ormagic"
    assert record.headers["content-type"] == "application/json"
    assert record.headers["accept"] == "text/event-stream"
    assert record.body == {
        "model": "anthropic/claude-sonnet-4.6",
        "messages": QUESTION,
        "stream": True,
        "max_tokens": 512,
        "reasoning": {"effort": "high"},
        "temperature": 0.3,
        "provider": {"order": ["anthropic"], "allow_fallbacks": False},
        "models": ["openai/gpt-5-nano"],
        "session_id": "ormagic-session-1",
    }


def test_minimal_request_omits_unset_options(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    collect(client)
    assert fake_openrouter.chat_requests()[0].body == {
        "model": DEFAULT_MODEL,
        "messages": QUESTION,
        "stream": True,
        "max_tokens": DEFAULT_MAX_TOKENS,
    }


# ----------------------------------------------------------------------------- event sequences


def test_reasoning_then_answer_exact_events(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake_openrouter.enqueue(
        StreamReply(
            text="The answer is 4.",
            reasoning="Two plus two.",
            chunk_chars=8,
            provider="DeepSeek",
            generation_id="gen-1-xyz",
        )
    )

    def detail(text: str) -> dict[str, Any]:
        return {"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}

    # 3 prompt tokens; (16 + 13) // 4 = 7 completion tokens, 13 // 4 = 3 of them reasoning;
    # 3 x $0.14/M + 7 x $0.28/M.
    assert collect(client) == [
        PROCESSING,
        ReasoningDelta("Two plus", (detail("Two plus"),)),
        ReasoningDelta(" two.", (detail(" two."),)),
        TextDelta("The answ"),
        TextDelta("er is 4."),
        PROCESSING,
        Usage(
            prompt_tokens=3, completion_tokens=7, reasoning_tokens=3, cached_tokens=0, cost=2.38e-06
        ),
        Finished("stop", "stop", "gen-1-xyz", "deepseek/deepseek-v4-flash", "DeepSeek"),
    ]


TRICKY_TEXT = "Ünïcödé ✓ — line\u2028separator, emoji 🙂, CJK 漢字 and a\r\nCRLF inside"


@pytest.mark.parametrize(
    "framing",
    [
        {"byte_at_a_time": True},
        {"line_ending": "\r\n"},
        {"line_ending": "\r"},
        {"line_ending": "\r", "byte_at_a_time": True},
        {"line_ending": "\r\n", "byte_at_a_time": True},
    ],
    ids=["bytes", "crlf", "cr", "cr-bytes", "crlf-bytes"],
)
def test_framing_does_not_change_the_events(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient, framing: dict[str, Any]
) -> None:
    def reply(**extra: Any) -> StreamReply:
        return StreamReply(
            text=TRICKY_TEXT, reasoning="Hmm… ✓", chunk_chars=5, generation_id="gen-2-f", **extra
        )

    fake_openrouter.enqueue(reply(), reply(**framing))
    plain, framed = collect(client), collect(client)
    assert framed == plain
    assert text_of(framed) == TRICKY_TEXT
    assert isinstance(framed[-1], Finished)


@pytest.mark.parametrize("variant", ["one_choice", "with_finish"])
def test_usage_chunk_variants_give_the_same_events(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient, variant: str
) -> None:
    fake_openrouter.enqueue(
        StreamReply(text="4", generation_id="gen-3-u"),
        StreamReply(text="4", generation_id="gen-3-u", usage_variant=variant),
    )
    assert collect(client) == collect(client)


def test_default_reply_streams_the_offline_answer(client: OpenRouterClient) -> None:
    events = collect(client)
    assert text_of(events).startswith("You asked:\n\n> What is 2+2?\n\n")
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert reasoning == "The user asks: What is 2+2?. I'll answer briefly."


# ----------------------------------------------------------------------------- pre-stream errors

ERROR_CASES = [
    pytest.param(
        ErrorReply(400, "nope/model is not a valid model ID"),
        BadRequestError,
        "Bad request: nope/model is not a valid model ID. Check the model id and options.",
        id="400",
    ),
    pytest.param(
        ErrorReply(401, "No auth credentials found"),
        AuthenticationError,
        "OpenRouter rejected the API key (No auth credentials found). Check OPENROUTER_API_KEY.",
        id="401-no-key-header",
    ),
    pytest.param(
        ErrorReply(
            402,
            "This request requires more credits, or fewer max_tokens. You requested up to "
            "16384 tokens, but can only afford 1200.",
            metadata={"provider_name": None},
        ),
        PaymentRequiredError,
        "Not enough credits (This request requires more credits, or fewer max_tokens. You "
        "requested up to 16384 tokens, but can only afford 1200.). Add credits at "
        "https://openrouter.ai/settings/credits or lower --max-tokens.",
        id="402",
    ),
    pytest.param(
        ErrorReply(
            403,
            "Input flagged by moderation",
            metadata={
                "reasons": ["violence", "hate"],
                "flagged_input": "how do I...",
                "provider_name": "OpenAI",
                "model_slug": "openai/gpt-5-nano",
            },
        ),
        PermissionDeniedError,
        'Blocked by moderation: violence, hate (flagged: "how do I...")',
        id="403-moderation",
    ),
    pytest.param(
        ErrorReply(404, "No endpoints found for deepseek/deepseek-v9."),
        NotFoundError,
        "Not found: No endpoints found for deepseek/deepseek-v9. "
        "Check the model id (%chat models lists them).",
        id="404",
    ),
    pytest.param(
        ErrorReply(408, "Request timed out"),
        RequestTimeoutError,
        "OpenRouter timed out the request. Try again.",
        id="408",
    ),
    pytest.param(
        ErrorReply(413, "Request payload too large"),
        PayloadTooLargeError,
        "The request is too large. Send less context (--context N) or a shorter prompt.",
        id="413",
    ),
    pytest.param(
        ErrorReply(429, "Rate limit exceeded", retry_after="30"),
        RateLimitError,
        "Rate limited (Rate limit exceeded). Try again in 30 s.",
        id="429-retry-after",
    ),
    pytest.param(
        ErrorReply(500, "Internal Server Error"),
        ServerError,
        "OpenRouter error 500: Internal Server Error. Try again or choose another model.",
        id="500",
    ),
    pytest.param(
        ErrorReply(502, "Provider returned error", metadata={"provider_name": "DeepSeek"}),
        ServerError,
        "OpenRouter error 502: Provider returned error (provider: DeepSeek). "
        "Try again or choose another model.",
        id="502",
    ),
    pytest.param(
        ErrorReply(
            502,
            "Provider returned error",
            metadata={"provider_name": "DeepSeek", "raw": '{"error":{"message":"Overloaded"}}'},
        ),
        ServerError,
        "OpenRouter error 502: Provider returned error: Overloaded (provider: DeepSeek). "
        "Try again or choose another model.",
        id="502-raw",
    ),
    pytest.param(
        ErrorReply(503, "No available provider meets your routing requirements"),
        ServerError,
        "OpenRouter error 503: No available provider meets your routing requirements. "
        "Try again or choose another model.",
        id="503",
    ),
    pytest.param(
        ErrorReply(502, "", body=b"<html><body>502 Bad Gateway</body></html>"),
        ServerError,
        "OpenRouter error 502: Bad Gateway. Try again or choose another model.",
        id="502-html-proxy-page",
    ),
]


@pytest.mark.parametrize(("reply", "error_class", "message"), ERROR_CASES)
def test_pre_stream_error_maps_to_class_and_message(
    fake_openrouter: FakeOpenRouter, reply: ErrorReply, error_class: type[APIError], message: str
) -> None:
    reply = dataclasses.replace(reply, headers={"X-Generation-Id": "gen-err-1"})
    fake_openrouter.enqueue(reply)
    client, sleeps = make_client(fake_openrouter, max_retries=0)
    with client, pytest.raises(error_class) as caught:
        collect(client)
    error = caught.value
    assert type(error) is error_class
    assert str(error) == message
    assert (error.status_code, error.generation_id) == (reply.status, "gen-err-1")
    if reply.body is None:
        assert (error.code, dict(error.metadata)) == (reply.status, reply.metadata or {})
    assert len(fake_openrouter.chat_requests()) == 1
    assert sleeps.calls == []


def test_wrong_key_is_rejected_by_the_server(fake_openrouter: FakeOpenRouter) -> None:
    client, _ = make_client(fake_openrouter, key="sk-or-v1-wrong")
    with client, pytest.raises(AuthenticationError) as caught:
        collect(client)
    assert (
        str(caught.value)
        == "OpenRouter rejected the API key (User not found.). Check OPENROUTER_API_KEY."
    )
    assert "sk-or-v1-wrong" not in str(caught.value)
    assert fake_openrouter.chat_requests()[0].headers["authorization"] == "Bearer sk-or-v1-wrong"


@pytest.mark.parametrize("key", [None, ""])
def test_missing_key_sends_nothing(fake_openrouter: FakeOpenRouter, key: str | None) -> None:
    client, _ = make_client(fake_openrouter, key=key)
    with client, pytest.raises(MissingKeyError) as caught:
        collect(client)
    assert str(caught.value) == (
        "No OpenRouter API key: set OPENROUTER_API_KEY or `%config ChatMagics.api_key`."
    )
    assert fake_openrouter.requests == []


def test_200_json_body_with_error_is_raised(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    body = b'{"error":{"message":"Provider returned error","code":502},"user_id":"user_1"}'
    fake_openrouter.enqueue(RawReply([body], headers={"Content-Type": "application/json"}))
    with pytest.raises(ServerError) as caught:
        collect(client)
    assert str(caught.value) == (
        "OpenRouter error 502: Provider returned error. Try again or choose another model."
    )


def test_unreachable_server_is_a_transport_error() -> None:
    fake = FakeOpenRouter().start()
    fake.stop()  # nothing listens on that port any more
    client, sleeps = make_client(fake, max_retries=1)
    with client, pytest.raises(TransportError) as caught:
        collect(client)
    message = str(caught.value)
    assert message.startswith(f"Could not reach {fake.base_url}: ")
    assert message.endswith(". Check your network or OPENROUTER_BASE_URL.")
    assert not isinstance(caught.value, TimeoutError_)
    assert sleeps.calls == [0.5]


# ----------------------------------------------------------------------------- retries


def test_two_503s_then_success(fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.enqueue(
        ErrorReply(503, "Service unavailable"),
        ErrorReply(503, "Service unavailable"),
        StreamReply(text="Finally."),
    )
    client, sleeps = make_client(fake_openrouter)
    with client:
        events = collect(client)
    assert text_of(events) == "Finally."
    assert isinstance(events[-1], Finished)
    assert len(fake_openrouter.chat_requests()) == 3
    assert sleeps.calls == [0.5, 1.0]


def test_retries_exhausted_raise_the_last_error(fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.enqueue(
        *[ErrorReply(502, "Provider returned error")] * 3, StreamReply("unused")
    )
    client, sleeps = make_client(fake_openrouter)
    with client, pytest.raises(ServerError):
        collect(client)
    assert len(fake_openrouter.chat_requests()) == 3
    assert sleeps.calls == [0.5, 1.0]


def test_429_retry_after_is_honoured(fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.enqueue(
        ErrorReply(429, "Rate limit exceeded", retry_after="1"), StreamReply("ok")
    )
    client, sleeps = make_client(fake_openrouter)
    with client:
        assert text_of(collect(client)) == "ok"
    assert sleeps.calls == [1.0]
    assert len(fake_openrouter.chat_requests()) == 2


def test_429_retry_after_beyond_a_minute_is_not_waited_for(fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.enqueue(ErrorReply(429, "Rate limit exceeded", retry_after="120"))
    client, sleeps = make_client(fake_openrouter)
    with client, pytest.raises(RateLimitError) as caught:
        collect(client)
    assert caught.value.retry_after == 120.0
    assert str(caught.value) == "Rate limited (Rate limit exceeded). Try again in 120 s."
    assert sleeps.calls == []
    assert len(fake_openrouter.chat_requests()) == 1


@pytest.mark.parametrize("status", [400, 401, 402])
def test_client_errors_are_not_retried(fake_openrouter: FakeOpenRouter, status: int) -> None:
    fake_openrouter.enqueue(ErrorReply(status, "no"), StreamReply("unused"))
    client, sleeps = make_client(fake_openrouter)
    with client, pytest.raises(APIError):
        collect(client)
    assert (len(fake_openrouter.chat_requests()), sleeps.calls) == (1, [])


# ----------------------------------------------------------------------------- after the start


@pytest.mark.parametrize("send_done", [True, False])
def test_mid_stream_error_keeps_the_text(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient, send_done: bool
) -> None:
    error = {
        "code": 502,
        "message": "Provider disconnected unexpectedly",
        "metadata": {"error_type": "provider_unavailable"},
    }
    fake_openrouter.enqueue(
        StreamReply(
            text="Partial answer",
            chunk_chars=7,
            error=error,
            send_done=send_done,
            provider="DeepSeek",
            generation_id="gen-4-e",
        )
    )
    events = collect(client)
    assert events[:3] == [PROCESSING, TextDelta("Partial"), TextDelta(" answer")]
    assert len(events) == 4
    failed = events[3]
    assert isinstance(failed, StreamFailed)
    assert (failed.generation_id, failed.model, failed.provider) == (
        "gen-4-e",
        "deepseek/deepseek-v4-flash",
        "DeepSeek",
    )
    assert isinstance(failed.error, StreamError)
    assert str(failed.error) == "Provider disconnected unexpectedly"
    assert (failed.error.code, dict(failed.error.metadata)) == (502, error["metadata"])


def test_dropped_connection_ends_with_transport_error(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake_openrouter.enqueue(StreamReply(text="Half an ans", chunk_chars=4, drop=True))
    events = collect(client)
    assert text_of(events) == "Half an ans"
    assert not any(isinstance(e, Usage | Finished) for e in events)
    failed = events[-1]
    assert isinstance(failed, StreamFailed)
    assert type(failed.error) is TransportError
    assert str(failed.error) == (
        "The connection dropped before the answer finished; what arrived is kept."
    )


def test_leaving_the_loop_early_disconnects(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    # after its words the answer goes silent for an hour: only the client's leaving ends it
    fake_openrouter.enqueue(StreamReply(text="word " * 100, chunk_chars=5, stall=3600))
    with client.stream_chat(ChatRequest(QUESTION)) as events:
        for event in events:
            if isinstance(event, TextDelta):
                break
    record = fake_openrouter.chat_requests()[0]
    eventually(lambda: record.client_disconnected, "the server noticing the client left")


# ----------------------------------------------------------------------------- sending back


def built_message(client: OpenRouterClient, request: ChatRequest | None = None) -> dict[str, Any]:
    builder = MessageBuilder()
    for event in collect(client, request):
        builder.add(event)
    return builder.message()


def test_message_after_a_reasoning_reply(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake_openrouter.enqueue(
        StreamReply(text="4", reasoning="The user asks for 2+2.", chunk_chars=5)
    )
    # The accumulated message of docs §4.4.
    assert built_message(client) == {
        "role": "assistant",
        "content": "4",
        "reasoning": "The user asks for 2+2.",
        "reasoning_details": [
            {
                "type": "reasoning.text",
                "text": "The user asks for 2+2.",
                "format": "unknown",
                "index": 0,
            }
        ],
    }


SENT_DETAILS: list[dict[str, Any]] = [
    {"type": "reasoning.text", "text": "Let me ", "format": "anthropic-claude-v1", "index": 0},
    {"type": "reasoning.text", "text": "think.", "format": "anthropic-claude-v1", "index": 0},
    {"type": "reasoning.text", "signature": "sig-abc", "index": 0},  # a late signature (§5)
    {"type": "reasoning.summary", "summary": "Adds numbers.", "format": "anthropic-claude-v1"},
    {"type": "reasoning.encrypted", "data": "gAAAAB-opaque==", "format": "anthropic-claude-v1"},
    {"type": "reasoning.text", "text": "More.", "format": "anthropic-claude-v1", "index": 1},
]
MERGED_DETAILS = [
    {
        "type": "reasoning.text",
        "text": "Let me think.",
        "format": "anthropic-claude-v1",
        "index": 0,
        "signature": "sig-abc",
    },
    SENT_DETAILS[3],
    SENT_DETAILS[4],
    SENT_DETAILS[5],
]


def test_message_merges_reasoning_details_per_spec(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake_openrouter.enqueue(StreamReply(text="4", reasoning_details=SENT_DETAILS))
    message = built_message(client)
    assert message["reasoning_details"] == MERGED_DETAILS
    assert message["reasoning"] == "Let me think.Adds numbers.More."


def test_previous_assistant_message_is_sent_back_unchanged(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake_openrouter.enqueue(StreamReply(text=TRICKY_TEXT, reasoning_details=SENT_DETAILS))
    first = built_message(client)
    follow_up = [*QUESTION, first, {"role": "user", "content": "And times 3?"}]
    collect(client, ChatRequest(follow_up))
    sent = fake_openrouter.chat_requests()[1].body["messages"]
    assert sent == follow_up
    assert list(sent[1]) == list(first)  # same keys, same order
    assert [list(d) for d in sent[1]["reasoning_details"]] == [
        list(d) for d in first["reasoning_details"]
    ]
    assert sent[1]["content"] == TRICKY_TEXT


# ----------------------------------------------------------------------------- other endpoints


def test_get_models_and_key(fake_openrouter: FakeOpenRouter, client: OpenRouterClient) -> None:
    models = client.get_models()
    assert models == fake_openrouter.models
    assert models[0]["pricing"] == {"prompt": "0.00000014", "completion": "0.00000028"}
    assert client.get_key() == fake_openrouter.key_info
    assert [(r.method, r.path) for r in fake_openrouter.requests] == [
        ("GET", "/api/v1/models"),
        ("GET", "/api/v1/key"),
    ]


def test_get_generation_not_ready_then_ready(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    fake_openrouter.generation_delay_polls = 1
    fake_openrouter.enqueue(StreamReply(text="4", generation_id="gen-5-g"))
    finished = collect(client)[-1]
    assert isinstance(finished, Finished) and finished.generation_id == "gen-5-g"
    with pytest.raises(NotFoundError) as caught:
        client.get_generation("gen-5-g")
    assert str(caught.value) == (
        "No stats for generation gen-5-g (yet): they appear a few seconds after the answer "
        "ends. Try again shortly."
    )
    stats = client.get_generation("gen-5-g")
    assert (stats["id"], stats["tokens_prompt"], stats["tokens_completion"]) == ("gen-5-g", 3, 1)
    assert (stats["cancelled"], stats["finish_reason"]) == (False, "stop")
    assert fake_openrouter.requests[-1].query == {"id": "gen-5-g"}


def test_the_generation_id_is_known_before_any_event(fake_openrouter: FakeOpenRouter) -> None:
    # the answer stops after 10 characters until the test ends: the client surely leaves
    # in the middle of it, however slow the machine
    fake_openrouter.hold(lambda body: True, at=10)
    fake_openrouter.enqueue(StreamReply(text="x" * 50, chunk_chars=1))
    settings = ClientSettings(
        api_key=Secret(fake_openrouter.api_key), base_url=fake_openrouter.base_url
    )
    with OpenRouterClient(settings) as client:
        with client.stream_chat(ChatRequest([{"role": "user", "content": "hi"}])) as events:
            announced = events.generation_id
            next(events)  # leave after the first event, as an interrupt would
        assert announced is not None and announced.startswith("gen-")

        # the server records a cancelled generation once it notices the disconnect
        def stats() -> dict[str, Any] | None:
            try:
                return client.get_generation(announced)
            except NotFoundError:
                return None

        found = eventually(stats, "the cancelled generation's stats")
        assert (found["id"], found["cancelled"], found["finish_reason"]) == (
            announced,
            True,
            None,
        )
