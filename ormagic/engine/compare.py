"""Several models answer one question side by side, at the same time.

::

    result = compare(engine, "Explain a p-value.", AskOptions(), ["a/x", "b/y"])
    [o.text for o in result.outcomes]

The question is checked and prepared once: every model gets the same prompt, the same
notebook context and the same history. Then one request per model goes out on a worker
thread that runs the client's synchronous stream (``client.stream_chat``) and puts its
events on a queue, and the calling thread shows them from the queue. Why threads: IPython
calls magics synchronously and ``asyncio.run()`` fails inside ipykernel (a loop already
runs); the kernel's stop button is SIGINT, which Python raises as ``KeyboardInterrupt`` in
the main thread only. So the main thread waits on the queue with a short timeout (the
interrupt arrives within it, and paced redraws get their trailing edge), and on an
interrupt it aborts every stream (shutting the connection down is how OpenRouter learns
to stop generating and billing, docs §4.1) and keeps what each model had streamed.

A model that fails (an error before its answer began, such as a 402 or a 5xx, or an error
chunk mid-stream) ends its own column; the others go on.

The turn keeps every model's answer, in the order asked (``Turn.responses``); the first
that produced something continues the conversation (``Turn.chosen``), and :func:`pick`
makes another one continue it. Each answer is priced on its own and the ledger counts
them all: they were all paid for. A request refused before its answer began costs
nothing (OpenRouter bills generated tokens), so it is recorded at $0.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..client.message import MessageBuilder
from ..errors import ConfigError
from ..events import Event, ReasoningDelta, StreamFailed, TextDelta
from ..formatting import format_seconds
from ..view import FinalSummary, NullSideBySideView, SideBySideView
from .conversation import Response, Turn
from .engine import Engine, Prepared, TurnResult
from .fanout import Board, Crashed, Ended, Item, Opened, Refused, pump
from .notebook import Notebook
from .options import AskOptions, Checked
from .turn import Clock, Outcome, _note

__all__ = ["MAX_MODELS", "Comparison", "compare", "pick", "prepare_all"]

MAX_MODELS = 4
"""More columns than this do not fit a notebook's width."""
_POLL = 0.05  # seconds: how often the main thread looks up from the queue


@dataclass
class Comparison:
    """How a side-by-side question ended: one outcome per model, the turn recorded."""

    prepared: list[Prepared]
    outcomes: list[Outcome]
    first_token: list[float | None]
    """Seconds from sending to the first answer or reasoning text, per model."""
    turn: Turn | None = None  # None when no model produced anything (nothing recorded)
    interrupted: bool = False
    pricing_interrupted: bool = False
    secrets: Sequence[str] = ()  # redacted from the saved records (the API key)

    @property
    def models(self) -> list[str]:
        return [p.checked.model for p in self.prepared]

    @property
    def conversation(self) -> str:
        return self.prepared[0].conversation

    @property
    def chosen(self) -> int | None:
        """The column whose answer continues the conversation."""
        return None if self.turn is None else self.turn.chosen

    @property
    def results(self) -> list[TurnResult]:
        """One :class:`TurnResult` per model (what ``ormagic.ask`` makes answers of)."""
        return [
            TurnResult(prepared, outcome, self.turn, self.pricing_interrupted)
            for prepared, outcome in zip(self.prepared, self.outcomes, strict=True)
        ]

    def without_requests(self) -> Comparison:
        """This comparison without the requests sent (the whole history and the notebook
        context, per model): what a later :meth:`metadata` still needs, and no more, for
        keeping a while (``%chat pick`` repaints recent outputs)."""
        light = [
            dataclasses.replace(
                p, request=dataclasses.replace(p.request, messages=(), tools=()), context=None
            )
            for p in self.prepared
        ]
        return dataclasses.replace(self, prepared=light)

    def summaries(self) -> list[FinalSummary]:
        """What each column shows under its answer: status, then footer with time to
        first token (tokens, cost, time, tokens per second come from the usage)."""
        found = []
        for outcome, first in zip(self.outcomes, self.first_token, strict=True):
            summary = outcome.summary({})  # the cell's metadata is the whole comparison's
            footer = summary.footer
            if first is not None:
                footer += f" · first token after {format_seconds(first)}"
            status = summary.status
            if outcome.interrupted and not outcome.produced:
                status = "⏹ Interrupted before any answer arrived."
            found.append(dataclasses.replace(summary, footer=footer, status=status))
        return found

    def metadata(self) -> dict[str, Any]:
        """The cell's output metadata: each model's resume record (``engine/resume.py``)
        with its time to first token, and which answer continues the conversation
        (``chosen``: an index into ``answers``, and each record's ``chosen`` flag; both
        follow :func:`pick`)."""
        answers = []
        for column, (prepared, outcome, first) in enumerate(
            zip(self.prepared, self.outcomes, self.first_token, strict=True)
        ):
            turn = self.turn
            response = turn.responses[column] if turn is not None else outcome.to_response()
            entry = prepared.record(response, secrets=self.secrets, chosen=self.chosen == column)
            entry["first_token"] = None if first is None else round(first, 3)
            answers.append(entry)
        return {
            "ormagic": {
                "conversation": self.conversation,
                "chosen": self.chosen,
                "answers": answers,
            }
        }


# -- preparing --------------------------------------------------------------------------


def check_models(models: Sequence[str]) -> list[str]:
    """The model ids, stripped; refuse an empty one or more than :data:`MAX_MODELS`."""
    found = [m.strip() for m in models]
    if not found or any(not m for m in found):
        raise ConfigError("Each -m/--model needs a model id.")
    if len(found) > MAX_MODELS:
        raise ConfigError(
            f"Side by side takes at most {MAX_MODELS} models ({len(found)} given): "
            "more columns do not fit a notebook."
        )
    return found


def prepare_all(
    engine: Engine,
    text: str,
    options: AskOptions,
    models: Sequence[str],
    notebook: Notebook | None = None,
    *,
    on_checked: Callable[[Checked], None] | None = None,
) -> list[Prepared]:
    """Check the question once and build one request per model, identical but the model.

    The notebook context is gathered once, within the tightest of the models' context
    budgets, so the same context fits every one of them. No tools are offered: the
    columns answer in one round each (a call nobody runs would leave the conversation
    with an unanswered tool call, which the API refuses on the next turn).
    """
    found = check_models(models)
    tightest = min(found, key=engine.context_budget)
    once = dataclasses.replace(options, model=tightest, tools=False)
    base = engine.prepare(text, once, notebook, on_checked=on_checked)
    return [_for_model(base, model) for model in found]


def _for_model(base: Prepared, model: str) -> Prepared:
    options = dataclasses.replace(base.checked.options, model=model)
    checked = dataclasses.replace(base.checked, model=model, options=options)
    request = dataclasses.replace(base.request, model=model)
    return dataclasses.replace(base, checked=checked, request=request)


# -- the main thread --------------------------------------------------------------------


@dataclass
class _Column:
    outcome: Outcome
    builder: MessageBuilder = dataclasses.field(default_factory=MessageBuilder)
    first_token: float | None = None
    ended: bool = False


class _Run:
    """The main thread's side: takes items off the board, keeps each model's outcome,
    drives the view."""

    def __init__(
        self, prepared: list[Prepared], view: SideBySideView, clock: Clock, board: Board
    ) -> None:
        self.columns = [_Column(Outcome(p.request.model, {})) for p in prepared]
        self.view = view
        self.clock = clock
        self.board = board
        self.started = clock()

    def drain(self) -> None:
        """Until every worker ended; a ``KeyboardInterrupt`` propagates to the caller."""
        while not all(c.ended for c in self.columns):
            try:
                column, item = self.board.queue.get(timeout=_POLL)
            except queue.Empty:
                self.view.idle()
                continue
            self.take(column, item)

    def take(self, index: int, item: Item) -> None:
        column = self.columns[index]
        outcome = column.outcome
        now = self.clock() - self.started
        outcome.elapsed = now
        if isinstance(item, Ended):
            column.ended = True
        elif isinstance(item, Opened):
            outcome.generation_id = item.generation_id
        elif isinstance(item, Refused):
            outcome.failure = item.error
            outcome.cost = 0.0  # refused before generating: not billed
            self.view.handle(index, StreamFailed(item.error))
        elif isinstance(item, Crashed):
            raise item.error
        else:
            column.builder.add(item)
            _note(outcome, item)
            if column.first_token is None and _has_text(item):
                column.first_token = now
            self.view.handle(index, item)

    def interrupt(self) -> None:
        """Every stream still going is stopped; its outcome is marked interrupted."""
        self.board.stop()
        now = self.clock() - self.started
        for column in self.columns:
            if not column.ended:
                column.outcome.interrupted = True
                column.outcome.elapsed = now

    def outcomes(self) -> list[Outcome]:
        for column in self.columns:
            column.outcome.message = column.builder.message()
        return [c.outcome for c in self.columns]


def _has_text(event: Event) -> bool:
    """The first token: answer text or reasoning (encrypted reasoning counts too)."""
    if isinstance(event, ReasoningDelta):
        return bool(event.text or event.details)
    return isinstance(event, TextDelta) and bool(event.text)


# -- asking -----------------------------------------------------------------------------


def compare(
    engine: Engine,
    text: str,
    options: AskOptions,
    models: Sequence[str],
    *,
    notebook: Notebook | None = None,
    view: SideBySideView | None = None,
    clock: Clock = time.monotonic,
) -> Comparison:
    """Ask every model in ``models`` the same question at once; stream into ``view``.

    Bad options, a missing key or the budget raise (an ``OrmagicError``) before anything
    is sent and change nothing. Afterwards nothing raises for one model: its column shows
    what happened. An interrupt stops every stream and returns what arrived, marked
    ``interrupted``. The turn is recorded when any model produced something.
    """
    view = view or NullSideBySideView()
    started = False

    def start(checked: Checked) -> None:
        nonlocal started
        view.start(check_models(models))
        started = True

    try:
        prepared = prepare_all(engine, text, options, models, notebook, on_checked=start)
    except BaseException:
        if started:
            view.abandon()
        raise
    return _run(engine, prepared, view, clock)


def _run(
    engine: Engine, prepared: list[Prepared], view: SideBySideView, clock: Clock
) -> Comparison:
    board = Board()
    run = _Run(prepared, view, clock, board)
    settings = engine.client_settings()
    for column, item in enumerate(prepared):
        threading.Thread(
            target=pump,
            args=(settings, item.request, column, board),
            name=f"ormagic-side-by-side-{column}",
            daemon=True,
        ).start()
    result = Comparison(prepared, [c.outcome for c in run.columns], [], secrets=engine.secrets())
    try:
        try:
            run.drain()
        except KeyboardInterrupt:
            run.interrupt()
            result.interrupted = True
    finally:
        board.stop()  # however this ends, no stream is left open
        result.outcomes = run.outcomes()
        result.first_token = [c.first_token for c in run.columns]
    result.turn = engine._commit(prepared[0], *result.outcomes)
    try:
        _price(engine, result)
    except KeyboardInterrupt:  # the answers are recorded; only some costs are unknown
        result.pricing_interrupted = True
    view.finish(result.summaries(), result.chosen, result.metadata())
    return result


def _price(engine: Engine, result: Comparison) -> None:
    """Each answer's cost: OpenRouter's ``usage.cost``, else tokens times listed prices."""
    if result.turn is None:
        return
    for outcome, response in zip(result.outcomes, result.turn.responses, strict=True):
        if outcome.usage is not None and outcome.cost is None:
            outcome.cost = response.cost = engine.cost(outcome.usage, outcome.answered_by)


# -- choosing the answer that continues -------------------------------------------------


def _produced(response: Response) -> bool:
    return any(
        m.get("content") or m.get("reasoning") or m.get("reasoning_details")
        for m in response.messages
    )


def _column_of(turn: Turn, choice: str, where: str) -> int:
    """The answer ``choice`` names: its number (1-based) or its model's id."""
    count = len(turn.responses)
    if choice.strip().isdigit():
        number = int(choice)
        if not 1 <= number <= count:
            raise ConfigError(f"{where} has answers 1 to {count}, not {number}.")
        return number - 1
    named = [i for i, r in enumerate(turn.responses) if choice in (r.requested_model, r.model)]
    if len(named) == 1:
        return named[0]
    models = ", ".join(r.requested_model or r.model or "?" for r in turn.responses)
    if not named:
        raise ConfigError(f"{where} has no answer from {choice!r}; its answers: {models}.")
    raise ConfigError(f"{where} has {len(named)} answers from {choice!r}: pick one by number.")


def pick(
    engine: Engine, choice: str, *, conversation: str = "default", turn: int | None = None
) -> tuple[int, Turn]:
    """Make answer ``choice`` (a number from 1, or a model id) of a side-by-side turn
    the one that continues the conversation; ``turn`` counts from 1 (default: the last).

    Returns the turn's number and the turn. Every refusal is one :class:`ConfigError`
    line; nothing changes then.
    """
    found = engine.store.peek(conversation)
    if found is None or not found.turns:
        raise ConfigError(f"Conversation {conversation!r} has no turns yet.")
    number = len(found.turns) if turn is None else turn
    if not 1 <= number <= len(found.turns):
        raise ConfigError(
            f"Conversation {conversation!r} has turns 1 to {len(found.turns)}, not {number}."
        )
    chosen = found.turns[number - 1]
    where = f"Turn {number} of {conversation!r}"
    if len(chosen.responses) < 2:
        raise ConfigError(f"{where} has one answer: there is nothing to pick.")
    column = _column_of(chosen, choice, where)
    if not _produced(chosen.responses[column]):
        model = chosen.responses[column].requested_model
        raise ConfigError(
            f"Answer {column + 1} ({model}) of turn {number} is empty (it failed): "
            "it cannot continue the conversation."
        )
    chosen.chosen = column
    return number, chosen
