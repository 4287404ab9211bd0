"""The fake server's side-by-side helpers: replies per model, request times, in-flight gates."""

from __future__ import annotations

import threading
from typing import Any

import httpx
from waiting import eventually

from ormagic.testing.fake_openrouter import (
    FAKE_API_KEY,
    ErrorReply,
    FakeOpenRouter,
    RecordedRequest,
    StreamReply,
)

AUTH = {"Authorization": f"Bearer {FAKE_API_KEY}"}
A, B = "deepseek/deepseek-v4-flash", "openai/gpt-5-nano"


def ask(fake: FakeOpenRouter, model: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": False}
    response = httpx.post(f"{fake.base_url}/chat/completions", json=body, headers=AUTH, timeout=30)
    data: dict[str, Any] = response.json()
    return str(data["choices"][0]["message"]["content"]) if response.is_success else "error"


def stream(fake: FakeOpenRouter, model: str, out: list[str]) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    url = f"{fake.base_url}/chat/completions"
    with httpx.stream("POST", url, json=body, headers=AUTH, timeout=30) as response:
        out.append(b"".join(response.iter_raw()).decode())


def test_replies_per_model_come_before_the_shared_queue(fake_openrouter: FakeOpenRouter) -> None:
    fake_openrouter.enqueue(StreamReply(text="shared"))
    fake_openrouter.enqueue_for(B, StreamReply(text="for B"), ErrorReply(402, "No credits"))
    assert ask(fake_openrouter, A) == "shared"
    assert ask(fake_openrouter, B) == "for B"
    assert ask(fake_openrouter, B) == "error"
    assert ask(fake_openrouter, B).startswith("You asked:")  # then the default answer
    fake_openrouter.reset()
    fake_openrouter.enqueue_for(A, StreamReply(text="forgotten"))
    fake_openrouter.reset()
    assert ask(fake_openrouter, A).startswith("You asked:")


def test_request_start_and_end_are_recorded(fake_openrouter: FakeOpenRouter) -> None:
    assert RecordedRequest("GET", "/x", {}, {}, None).ended is None
    ask(fake_openrouter, A)
    ask(fake_openrouter, A)
    first, second = fake_openrouter.chat_requests()
    assert first.ended is not None and second.ended is not None
    assert first.started <= first.ended <= second.started <= second.ended
    # the handler counts itself out just after its last byte
    eventually(lambda: fake_openrouter.in_flight() == 0, "no chat request left in flight")


def test_a_reply_can_wait_for_company(fake_openrouter: FakeOpenRouter) -> None:
    """Held until two chat requests are being answered: only then do both stream."""
    fake_openrouter.enqueue_for(A, StreamReply(text="alpha", wait_for_in_flight=2))
    fake_openrouter.enqueue_for(B, StreamReply(text="bravo", wait_for_in_flight=2))
    out: list[str] = []
    first = threading.Thread(target=stream, args=(fake_openrouter, A, out))
    first.start()
    stream(fake_openrouter, B, out)
    first.join(timeout=30)
    assert sorted('"content":"alpha"' in o for o in out) == [False, True]
    a, b = fake_openrouter.chat_requests()
    assert a.ended is not None and b.ended is not None
    assert a.started < b.ended and b.started < a.ended  # in flight together


def test_waiting_for_company_gives_up_when_alone(fake_openrouter: FakeOpenRouter) -> None:
    """A client that asks one model after the other still gets its answer (later): the
    timings then show the requests did not overlap."""
    fake_openrouter.in_flight_wait = 0.2
    fake_openrouter.enqueue_for(A, StreamReply(text="alpha", wait_for_in_flight=2))
    fake_openrouter.enqueue_for(B, StreamReply(text="bravo"))
    out: list[str] = []
    stream(fake_openrouter, A, out)
    stream(fake_openrouter, B, out)
    a, b = fake_openrouter.chat_requests()
    assert a.ended is not None and a.ended <= b.started
    assert '"content":"alpha"' in out[0]
