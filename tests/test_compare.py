"""Several models side by side, at the engine's seam (no IPython): the loopback server,
with views that record what the engine drives."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from waiting import eventually

import ormagic
from ormagic.client.http import ChatRequest, OpenRouterClient
from ormagic.client.settings import ClientSettings, Secret
from ormagic.engine.compare import compare, pick
from ormagic.engine.engine import Engine, set_default_engine
from ormagic.engine.options import AskOptions
from ormagic.engine.tools import user_tools
from ormagic.errors import ConfigError, StreamError, TransportError
from ormagic.events import Event, Finished, StreamFailed, TextDelta, Usage
from ormagic.testing.fake_openrouter import ErrorReply, FakeOpenRouter, StreamReply
from ormagic.view import FinalSummary

A, B, C = "deepseek/deepseek-v4-flash", "openai/gpt-5-nano", "anthropic/claude-sonnet-4.6"
CREDITS = (
    "Not enough credits (Insufficient credits). Add credits at "
    "https://openrouter.ai/settings/credits or lower --max-tokens."
)


def usage(prompt: int, completion: int, cost: float) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": cost,
    }


class Columns:
    """A side-by-side view that records what it is told."""

    def __init__(self) -> None:
        self.models: list[str] = []
        self.events: list[tuple[int, Event]] = []
        self.finished: tuple[list[FinalSummary], int | None, Mapping[str, Any]] | None = None
        self.abandoned = False

    def start(self, models: Sequence[str]) -> None:
        self.models = list(models)

    def handle(self, column: int, event: Event) -> None:
        self.events.append((column, event))

    def idle(self) -> None:
        """Nothing to draw."""

    def finish(
        self, summaries: Sequence[FinalSummary], chosen: int | None, metadata: Mapping[str, Any]
    ) -> None:
        self.finished = (list(summaries), chosen, metadata)

    def abandon(self) -> None:
        self.abandoned = True

    def text(self, column: int) -> str:
        return "".join(e.text for c, e in self.events if c == column and isinstance(e, TextDelta))


class StopWhenBothShow(Columns):
    """Raises KeyboardInterrupt, as SIGINT would, once both columns have shown text."""

    def handle(self, column: int, event: Event) -> None:
        super().handle(column, event)
        if self.text(0) and self.text(1):
            raise KeyboardInterrupt


@pytest.fixture
def engine(fake_openrouter: FakeOpenRouter) -> Iterator[Engine]:
    env = {
        "OPENROUTER_API_KEY": fake_openrouter.api_key,
        "OPENROUTER_BASE_URL": fake_openrouter.base_url,
    }
    engine = Engine(env=env)
    yield engine
    engine.close()


def overlap(fake: FakeOpenRouter) -> bool:
    first, second = fake.chat_requests()[:2]
    assert first.ended is not None and second.ended is not None
    return first.started < second.ended and second.started < first.ended


def test_the_same_question_goes_to_each_model_at_once(
    engine: Engine, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue_for(
        A, StreamReply(text="Alpha answer.", usage=usage(10, 4, 0.00001), wait_for_in_flight=2)
    )
    fake_openrouter.enqueue_for(
        B, StreamReply(text="Bravo answer.", usage=usage(10, 5, 0.00002), wait_for_in_flight=2)
    )
    view = Columns()
    result = compare(engine, "Which?", AskOptions(conversation="same"), [A, B], view=view)
    assert overlap(fake_openrouter)
    bodies = [dict(r.body) for r in fake_openrouter.chat_requests()]
    assert sorted(body.pop("model") for body in bodies) == [A, B]
    assert bodies[0] == bodies[1]  # the same prompt, context, history and options
    assert view.models == [A, B]
    assert (view.text(0), view.text(1)) == ("Alpha answer.", "Bravo answer.")
    assert [o.text for o in result.outcomes] == ["Alpha answer.", "Bravo answer."]
    turn = result.turn
    assert turn is not None
    assert [r.model for r in turn.responses] == [A, B]
    assert [r.cost for r in turn.responses] == [0.00001, 0.00002]
    assert turn.chosen == 0
    assert engine.conversation("same").messages == [
        {"role": "user", "content": "Which?"},
        {"role": "assistant", "content": "Alpha answer."},
    ]
    by_model = engine.ledger.by_model()
    assert (by_model[A].cost, by_model[B].cost) == (0.00001, 0.00002)
    assert engine.ledger.session_cost == pytest.approx(0.00003)
    assert view.finished is not None
    summaries, chosen, metadata = view.finished
    assert chosen == 0
    assert summaries[0].footer.startswith(f"{A} via FakeProvider · 10 in / 4 out · $0.00001 · ")
    assert " · first token after " in summaries[0].footer
    answers = metadata["ormagic"]["answers"]
    assert metadata["ormagic"]["conversation"] == "same"
    assert metadata["ormagic"]["chosen"] == 0
    assert [(a["requested_model"], a["cost"], a["error"]) for a in answers] == [
        (A, 0.00001, None),
        (B, 0.00002, None),
    ]
    assert answers[1]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "reasoning_tokens": 0,
        "cached_tokens": 0,
    }
    assert all(a["first_token"] is not None and a["first_token"] >= 0 for a in answers)


def test_a_refused_model_shows_its_error_and_the_others_go_on(
    engine: Engine, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue_for(A, StreamReply(text="Alpha answer.", chunk_chars=2))
    fake_openrouter.enqueue_for(B, ErrorReply(402, "Insufficient credits"))
    fake_openrouter.enqueue_for(C, StreamReply(text="Cut", error={"code": 502, "message": "Boom"}))
    view = Columns()
    result = compare(engine, "Q", AskOptions(conversation="fail"), [A, B, C], view=view)
    assert [o.text for o in result.outcomes] == ["Alpha answer.", "", "Cut"]
    refused = [e for c, e in view.events if c == 1]
    assert len(refused) == 1 and isinstance(refused[0], StreamFailed)
    assert str(refused[0].error) == CREDITS
    assert isinstance(result.outcomes[2].failure, StreamError)
    assert result.outcomes[1].cost == 0.0  # refused before generating: not billed
    turn = result.turn
    assert turn is not None
    assert [r.error for r in turn.responses] == [None, CREDITS, str(result.outcomes[2].failure)]
    assert view.finished is not None
    summaries, chosen, _ = view.finished
    assert chosen == 0
    assert summaries[1].status == f"⚠ {CREDITS}"
    assert summaries[1].footer.startswith(f"{B} · usage unavailable · $0 · ")
    assert summaries[2].status is not None and summaries[2].status.startswith("⚠ ")


def test_when_the_first_model_fails_the_next_answer_continues(
    engine: Engine, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue_for(A, ErrorReply(500, "Internal"))
    fake_openrouter.enqueue_for(B, StreamReply(text="Bravo."))
    result = compare(engine, "Q", AskOptions(conversation="next"), [A, B])
    assert result.turn is not None and result.turn.chosen == 1
    assert engine.conversation("next").messages[-1] == {"role": "assistant", "content": "Bravo."}


def test_nothing_is_recorded_when_no_model_answers(
    engine: Engine, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue_for(A, ErrorReply(402, "Insufficient credits"))
    fake_openrouter.enqueue_for(B, ErrorReply(402, "Insufficient credits"))
    view = Columns()
    result = compare(engine, "Q", AskOptions(conversation="none"), [A, B], view=view)
    assert result.turn is None
    assert engine.store.peek("none") is None
    assert engine.ledger.total.turns == 0
    assert view.finished is not None and view.finished[1] is None


def test_an_interrupt_stops_every_stream_and_keeps_what_arrived(
    engine: Engine, fake_openrouter: FakeOpenRouter
) -> None:
    # A stops after 60 characters, B after its words, sent in one piece (a read blocked
    # on it): both are mid-answer when the interrupt comes, however slow the machine
    held = threading.Event()  # never opened: the interrupt ends both
    fake_openrouter.enqueue_for(
        A, StreamReply(text="alpha " * 200, gates={60: held}, wait_for_in_flight=2)
    )
    fake_openrouter.enqueue_for(
        B, StreamReply(text="bravo " * 3, chunk_chars=18, stall=120, wait_for_in_flight=2)
    )
    view = StopWhenBothShow()
    result = compare(engine, "Q", AskOptions(conversation="stop"), [A, B], view=view)
    assert result.interrupted
    assert [o.interrupted for o in result.outcomes] == [True, True]
    alpha, bravo = (o.text for o in result.outcomes)
    assert alpha and ("alpha " * 200).startswith(alpha) and alpha != "alpha " * 200
    assert bravo == "bravo " * 3
    requests = fake_openrouter.chat_requests()
    eventually(lambda: all(r.client_disconnected for r in requests), "both streams closed")
    turn = engine.conversation("stop").turns[0]
    assert [r.interrupted for r in turn.responses] == [True, True]
    assert [r.text for r in turn.responses] == [alpha, bravo]
    assert view.finished is not None
    assert (
        view.finished[0][1].status
        == "⏹ Interrupted: the partial answer is kept in the conversation."
    )


@pytest.mark.parametrize(
    ("models", "line"),
    [
        (
            [A, B, C, A, B],
            "Side by side takes at most 4 models (5 given): more columns do not fit a notebook.",
        ),
        ([A, " "], "Each -m/--model needs a model id."),
    ],
)
def test_bad_model_lists_are_refused_before_sending(
    engine: Engine, fake_openrouter: FakeOpenRouter, models: list[str], line: str
) -> None:
    view = Columns()
    with pytest.raises(ConfigError) as info:
        compare(engine, "Q", AskOptions(conversation="bad"), models, view=view)
    assert str(info.value) == line
    assert fake_openrouter.requests == []
    assert engine.store.peek("bad") is None


def test_pick_changes_which_answer_continues(
    engine: Engine, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue_for(A, StreamReply(text="Alpha."))
    fake_openrouter.enqueue_for(B, StreamReply(text="Bravo."))
    fake_openrouter.enqueue_for(C, ErrorReply(402, "Insufficient credits"))
    compare(engine, "Q", AskOptions(conversation="p"), [A, B, C])
    number, turn = pick(engine, B, conversation="p")
    assert (number, turn.chosen) == (1, 1)
    assert engine.conversation("p").messages[-1] == {"role": "assistant", "content": "Bravo."}
    assert pick(engine, "1", conversation="p", turn=1)[1].chosen == 0
    fake_openrouter.enqueue(StreamReply(text="Single."))
    engine.answer("Again?", AskOptions(conversation="p"))
    refusals = {
        "4": "Turn 1 of 'p' has answers 1 to 3, not 4.",
        "x/y": f"Turn 1 of 'p' has no answer from 'x/y'; its answers: {A}, {B}, {C}.",
        "3": (
            f"Answer 3 ({C}) of turn 1 is empty (it failed): it cannot continue the conversation."
        ),
    }
    for choice, line in refusals.items():
        with pytest.raises(ConfigError) as info:
            pick(engine, choice, conversation="p", turn=1)
        assert str(info.value) == line
    with pytest.raises(ConfigError) as info:
        pick(engine, "1", conversation="p")  # the last turn had one model
    assert str(info.value) == "Turn 2 of 'p' has one answer: there is nothing to pick."
    with pytest.raises(ConfigError) as info:
        pick(engine, "1", conversation="p", turn=3)
    assert str(info.value) == "Conversation 'p' has turns 1 to 2, not 3."
    with pytest.raises(ConfigError) as info:
        pick(engine, "1", conversation="empty")
    assert str(info.value) == "Conversation 'empty' has no turns yet."
    assert engine.conversation("p").turns[0].chosen == 0  # refusals changed nothing


def test_ask_with_a_list_of_models_returns_an_answer_per_model(
    engine: Engine, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue_for(A, StreamReply(text="Alpha.", usage=usage(3, 2, 0.000001)))
    fake_openrouter.enqueue_for(B, ErrorReply(402, "Insufficient credits"))
    seen: list[tuple[str, str]] = []
    set_default_engine(engine)
    try:
        answers = ormagic.ask(
            "Q",
            model=[A, B],
            conversation="api",
            on_event=lambda m, e: seen.append((m, type(e).__name__)),
        )
    finally:
        set_default_engine(None)
    assert [(a.model, a.text, a.cost) for a in answers] == [(A, "Alpha.", 0.000001), (B, "", 0.0)]
    assert answers[1].error == CREDITS
    assert [a.conversation for a in answers] == ["api", "api"]
    assert (B, "StreamFailed") in seen
    assert [name for model, name in seen if model == A][-2:] == ["Usage", "Finished"]


def test_side_by_side_offers_no_tools_so_no_call_is_left_unanswered(
    engine: Engine, fake_openrouter: FakeOpenRouter
) -> None:
    # the columns answer in one round: a tool offered there would be called and never run,
    # leaving the conversation with a call the API refuses on the next turn
    @ormagic.tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    fake_openrouter.enqueue_for(A, StreamReply(text="Alpha."))
    fake_openrouter.enqueue_for(B, StreamReply(text="Beta."))
    view = Columns()
    try:
        compare(engine, "Q", AskOptions(conversation="sbs"), [A, B], view=view)
        set_default_engine(engine)
        with pytest.raises(ConfigError, match="Side by side answers have no tools"):
            ormagic.ask("Q", model=[A, B], tools=True)
    finally:
        set_default_engine(None)
        user_tools().clear()
    assert ["tools" in r.body for r in fake_openrouter.chat_requests()] == [False, False]
    assert (view.text(0), view.text(1)) == ("Alpha.", "Beta.")
    assert engine.conversation("sbs").messages[-1] == {"role": "assistant", "content": "Alpha."}


def test_abort_wakes_a_read_blocked_in_another_thread(fake_openrouter: FakeOpenRouter) -> None:
    """What an interrupt relies on: a stream stopped from the main thread while a worker
    thread waits on a silent connection (closing a socket would not wake it)."""
    fake_openrouter.enqueue(StreamReply(text="Hi", stall=120))
    settings = ClientSettings(
        api_key=Secret(fake_openrouter.api_key), base_url=fake_openrouter.base_url
    )
    events: list[Event] = []
    opened = threading.Event()
    streams: list[Any] = []

    def read() -> None:
        with (
            OpenRouterClient(settings) as client,
            client.stream_chat(ChatRequest([{"role": "user", "content": "Q"}])) as stream,
        ):
            streams.append(stream)
            opened.set()
            events.extend(stream)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(30)
    eventually(lambda: any(isinstance(e, TextDelta) for e in events), "the first words")
    streams[0].abort()
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert isinstance(events[-1], StreamFailed)
    assert isinstance(events[-1].error, TransportError)
    assert not any(isinstance(e, Finished | Usage) for e in events)
    record = fake_openrouter.chat_requests()[0]
    eventually(lambda: record.client_disconnected, "the server seeing the client leave")


def test_a_comparison_kept_for_a_later_pick_holds_no_request_but_the_same_records(
    engine: Engine, fake_openrouter: FakeOpenRouter
) -> None:
    # %chat pick repaints the last outputs from their comparisons: each request holds the
    # whole history and the notebook context, per model, which must not pile up
    fake_openrouter.enqueue_for(A, StreamReply(text="Alpha."))
    fake_openrouter.enqueue_for(B, StreamReply(text="Bravo."))
    result = compare(engine, "Q " + "context " * 1000, AskOptions(conversation="light"), [A, B])
    kept = result.without_requests()
    assert [list(p.request.messages) for p in kept.prepared] == [[], []]
    assert [p.context for p in kept.prepared] == [None, None]
    assert kept.metadata() == result.metadata()
    assert [len(p.request.messages) for p in result.prepared] == [1, 1]  # the original stays
