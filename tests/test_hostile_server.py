"""The server misbehaving, against the loopback fake: nothing shown is ever lost.

Each case asks through the engine into a real notebook view (a recording publisher) and
asserts the same thing at the end: the conversation holds exactly what the user was
shown (answer and reasoning), the error line says what happened, and nothing at all is
recorded when nothing was shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import ipywidgets
import pytest

from ormagic.client.http import ChatRequest, OpenRouterClient
from ormagic.client.settings import ClientSettings, Secret
from ormagic.engine.engine import Engine
from ormagic.engine.options import AskOptions
from ormagic.errors import OrmagicError, ServerError
from ormagic.render.views import NotebookView
from ormagic.testing._frames import Chat, plan_stream
from ormagic.testing.fake_openrouter import (
    ErrorReply,
    FakeOpenRouter,
    RawReply,
    Reply,
    StreamReply,
)

ANSWER = "Paris is the capital of France. It lies on the Seine."
REASONING = "The user asks about a capital."
SSE_HEADERS = {"Content-Type": "text/event-stream"}


class Shown:
    """A Publisher that keeps what a notebook would show once the cell is done."""

    def __init__(self) -> None:
        self.outputs: list[Mapping[str, Any]] = []

    def display(self, bundle: Mapping[str, Any], **_: Any) -> None:
        self.outputs.append(dict(bundle))

    def display_widget(self, widget: Any) -> None:
        pass

    def update(self, bundle: Mapping[str, Any], **_: Any) -> None:
        pass

    def clear(self) -> None:
        self.outputs.clear()

    def answer(self) -> str:
        return "".join(o["text/plain"] for o in self.outputs if "text/markdown" in o)

    def lines(self) -> str:
        return "\n".join(o.get("text/plain", "") for o in self.outputs)


@pytest.fixture(scope="module")
def fake() -> Any:
    with FakeOpenRouter() as server:
        yield server


@pytest.fixture
def engine(fake: FakeOpenRouter) -> Any:
    fake.reset()
    env = {"OPENROUTER_API_KEY": fake.api_key, "OPENROUTER_BASE_URL": fake.base_url}
    engine = Engine(env=env)
    engine.defaults.update(read_timeout=2.0, max_retries=0)
    yield engine
    engine.close()


def ask(engine: Engine, fake: FakeOpenRouter, reply: Reply) -> tuple[Shown, NotebookView, str]:
    """Ask once with ``reply`` scripted: (what was shown, the view, the error line the
    magic prints: raised before the answer began, or the stream's failure)."""
    fake.enqueue(reply)
    shown = Shown()
    view = NotebookView(shown, widgets=ipywidgets)
    try:
        result = engine.answer("Capital of France?", AskOptions(conversation="c"), view=view)
    except OrmagicError as error:
        return shown, view, str(error)
    failure = result.outcome.failure
    return shown, view, "" if failure is None else str(failure)


def assert_kept_what_was_shown(engine: Engine, shown: Shown, view: NotebookView) -> None:
    turns = engine.conversation("c").turns
    if not view.started:
        assert turns == [] and shown.outputs == []
        return
    [turn] = turns
    assert turn.answer == shown.answer() == view.answer
    assert turn.assistant_message.get("reasoning", "") == view.reasoning


def stream_body(**reply: Any) -> bytes:
    """The exact bytes the fake would stream for a StreamReply."""
    chat = Chat(generation_id="gen-1-hostile", created=1, model="m/x", provider="P")
    usage = {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14, "cost": 0.0001}
    frames = plan_stream(StreamReply(**reply), chat, usage)
    return b"".join(frame.data for frame in frames)


def test_a_connection_dropped_at_every_byte_loses_nothing_shown(
    engine: Engine, fake: FakeOpenRouter
) -> None:
    body = stream_body(text=ANSWER, reasoning=REASONING, chunk_chars=20)
    outcomes = set()
    for at in range(len(body)):
        engine.reset("c")
        shown, view, error = ask(
            engine, fake, RawReply([body[:at]], headers=SSE_HEADERS, drop=True)
        )
        assert_kept_what_was_shown(engine, shown, view)
        assert ANSWER.startswith(view.answer) and REASONING.startswith(view.reasoning)
        if view.started:
            assert "The connection dropped before the answer finished" in shown.lines()
        else:
            assert "dropped" in error
        outcomes.add((bool(view.reasoning), bool(view.answer)))
    assert outcomes == {(False, False), (True, False), (True, True)}  # all three stages hit


def test_a_server_that_stops_sending_times_out_with_a_clear_message(
    engine: Engine, fake: FakeOpenRouter
) -> None:
    # silent for an hour after the text: only the read timeout (2 s here) can end it
    shown, view, _ = ask(engine, fake, StreamReply(text=ANSWER, stall=3600, keepalives=False))
    assert view.answer == ANSWER
    assert "⚠ Nothing arrived for 2 s, so the answer was cut short; what arrived is kept." in (
        shown.lines()
    )
    assert_kept_what_was_shown(engine, shown, view)


def test_a_5xx_storm_is_retried_a_bounded_number_of_times(fake: FakeOpenRouter) -> None:
    fake.reset()
    fake.enqueue(*[ErrorReply(503, "Service Unavailable") for _ in range(20)])
    slept: list[float] = []
    settings = ClientSettings(api_key=Secret(fake.api_key), base_url=fake.base_url)
    request = ChatRequest([{"role": "user", "content": "q"}])
    with (
        OpenRouterClient(settings, sleep=slept.append) as client,
        pytest.raises(ServerError) as raised,
        client.stream_chat(request),
    ):
        pass
    assert raised.value.status_code == 503
    assert len(fake.chat_requests()) == settings.max_retries + 1 == 3
    assert slept == [0.5, 1.0]  # exponential backoff, bounded by backoff_max per wait
    assert sum(slept) <= settings.max_retries * settings.backoff_max


def test_a_long_retry_after_is_not_waited_for(fake: FakeOpenRouter) -> None:
    fake.reset()
    fake.enqueue(*[ErrorReply(429, "Slow down", retry_after="3600") for _ in range(5)])
    slept: list[float] = []
    settings = ClientSettings(api_key=Secret(fake.api_key), base_url=fake.base_url)
    request = ChatRequest([{"role": "user", "content": "q"}])
    with (
        OpenRouterClient(settings, sleep=slept.append) as client,
        pytest.raises(OrmagicError) as raised,
        client.stream_chat(request),
    ):
        pass
    assert str(raised.value) == "Rate limited (Slow down). Try again in 3600 s."
    assert slept == [] and len(fake.chat_requests()) == 1


def test_a_storm_through_the_engine_changes_nothing(engine: Engine, fake: FakeOpenRouter) -> None:
    engine.defaults.update(max_retries=2)
    fake.enqueue(*[ErrorReply(502, "Bad gateway") for _ in range(2)])
    shown, view, error = ask(engine, fake, ErrorReply(502, "Bad gateway"))
    assert error == "OpenRouter error 502: Bad gateway. Try again or choose another model."
    assert_kept_what_was_shown(engine, shown, view)


def test_a_multi_megabyte_single_chunk_is_kept_whole(engine: Engine, fake: FakeOpenRouter) -> None:
    text = ("All work and no play. " * 150_000)[:3_000_000]
    body = stream_body(text=text, chunk_chars=len(text), keepalives=False)
    shown, view, _ = ask(engine, fake, RawReply([body], headers=SSE_HEADERS))
    assert view.answer == text and shown.answer() == text
    assert_kept_what_was_shown(engine, shown, view)


def test_no_done_after_the_finish_is_a_whole_answer(engine: Engine, fake: FakeOpenRouter) -> None:
    shown, view, _ = ask(engine, fake, StreamReply(text=ANSWER, send_done=False))
    assert view.answer == ANSWER and "⚠" not in shown.lines()
    assert_kept_what_was_shown(engine, shown, view)


def test_invalid_json_in_a_chunk_keeps_what_came_before(
    engine: Engine, fake: FakeOpenRouter
) -> None:
    good = stream_body(text="Hello", keepalives=False, drop=True)
    bad = b'data: {"choices": [{"delta": {"content": "lost\n\n'
    later = stream_body(text=" never shown", keepalives=False)
    shown, view, _ = ask(engine, fake, RawReply([good, bad, later], headers=SSE_HEADERS))
    assert view.answer == "Hello"
    assert "⚠ The server sent a stream chunk that is not a JSON object" in shown.lines()
    assert_kept_what_was_shown(engine, shown, view)


def test_a_200_whose_body_is_an_error_records_nothing(engine: Engine, fake: FakeOpenRouter) -> None:
    body = json.dumps({"error": {"code": 502, "message": "Provider returned error"}}).encode()
    reply = RawReply([body], headers={"Content-Type": "application/json"})
    shown, view, error = ask(engine, fake, reply)
    assert (
        error == "OpenRouter error 502: Provider returned error. Try again or choose another model."
    )
    assert_kept_what_was_shown(engine, shown, view)


def test_an_error_chunk_before_any_text_records_nothing(
    engine: Engine, fake: FakeOpenRouter
) -> None:
    shown, view, error = ask(
        engine, fake, StreamReply(text="", error={"code": 502, "message": "Upstream died"})
    )
    assert view.answer == "" and engine.conversation("c").turns == []
    assert "Upstream died" in error + shown.lines()


def test_a_tool_call_stream_cut_mid_arguments_keeps_the_text(
    engine: Engine, fake: FakeOpenRouter
) -> None:
    # Tool calls are not shown on this branch yet; the text before them must survive.
    head = stream_body(text="Let me check the weather.", keepalives=False, drop=True)
    call = {
        "id": "gen-1-hostile",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Par'},
                        }
                    ]
                },
            }
        ],
    }
    reply = RawReply(
        [head, f"data: {json.dumps(call)}\n\n".encode()], headers=SSE_HEADERS, drop=True
    )
    shown, view, _ = ask(engine, fake, reply)
    assert view.answer == "Let me check the weather."
    assert "The connection dropped before the answer finished" in shown.lines()
    assert_kept_what_was_shown(engine, shown, view)


def test_an_error_quoting_pieces_of_the_key_shows_none_of_them(
    engine: Engine, fake: FakeOpenRouter
) -> None:
    key = fake.api_key
    message = f"bad key {key[:20]}… (ends {key[-15:]}) " + "padding " * 100_000
    shown, view, error = ask(engine, fake, StreamReply(text="Half", error={"message": message}))
    assert view.answer == "Half"
    assert error.startswith("bad key [REDACTED]… (ends [REDACTED]) padding")
    for text in (error, shown.lines(), engine.conversation("c").turns[-1].response.error or ""):
        assert key[:12] not in text and key[-12:] not in text
