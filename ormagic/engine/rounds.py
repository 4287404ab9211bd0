"""The tool loop: stream a round, run the calls it asked for, send the results, repeat.

docs/openrouter-tools.md §1.5-§1.6. Each round is one streamed request
(:func:`~ormagic.engine.turn.iter_answer`). When the answer asks for tool calls (decided by
whether calls are there, not only by ``finish_reason``), each call is run through the
question's :class:`~ormagic.engine.tools.ToolBox`; the assistant message (content or null,
``tool_calls``, ``reasoning`` and ``reasoning_details`` exactly as received) and one
``role: "tool"`` message per call go back, in order, with the same ``tools``, and the next
round streams. Every message is kept in :attr:`Outcome.messages`, exactly as sent: that is
what the conversation sends on later turns.

Bounds:

- at most ``max_rounds`` rounds run tools; then one last request with
  ``tool_choice: "none"`` asks the model to answer with what it has;
- the same call with the same arguments a third time in a row is answered with an error
  result; a fourth time stops the exchange;
- a round cut by ``max_tokens`` (``finish_reason: "length"``) may hold truncated
  arguments: its calls are not run.

Whatever ends the exchange (an interrupt while streaming or while a tool runs, an error,
a limit), every call already in the conversation gets a tool message, so the history
stays one that the API accepts; the results already computed are kept.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from ..client.http import ChatRequest, OpenRouterClient
from ..errors import OrmagicError
from ..events import Event, ToolResult, ToolRound
from ..formatting import tool_call_text
from .conversation import RoundRecord, sum_usage
from .tools import ToolBox
from .turn import Clock, Outcome, iter_answer

__all__ = ["ToolPlan", "iter_exchange"]

_REPEAT_WARN = 3  # the same call this many times in a row gets an error result
_NOT_RUN_INTERRUPTED = "not run: the user interrupted the answer."
_NOT_RUN_FAILED = "not run: the answer failed before it was complete."


@dataclass(frozen=True)
class ToolPlan:
    """What a question may call, and how many rounds of calls it may run."""

    box: ToolBox
    max_rounds: int = 8


@dataclass(frozen=True)
class _Call:
    id: str
    name: str
    arguments: str


def _calls(message: dict[str, Any]) -> list[_Call]:
    """The calls of an assistant message (as ``MessageBuilder`` wrote them)."""
    calls = []
    for item in message.get("tool_calls") or ():
        function = item.get("function") or {}
        calls.append(_Call(item["id"], function.get("name", ""), function.get("arguments", "")))
    return calls


def _has_content(message: dict[str, Any]) -> bool:
    return bool(
        message.get("content")
        or message.get("reasoning")
        or message.get("reasoning_details")
        or message.get("tool_calls")
    )


def _same_call_key(call: _Call) -> tuple[str, str]:
    try:
        canonical = json.dumps(json.loads(call.arguments), sort_keys=True)
    except ValueError:
        canonical = call.arguments
    return call.name, canonical


class _Exchange:
    """The state of one tool-calling exchange, filled into ``outcome`` as it goes."""

    def __init__(
        self, client: OpenRouterClient, outcome: Outcome, clock: Clock, plan: ToolPlan | None
    ) -> None:
        self._client = client
        self._outcome = outcome
        self._clock = clock
        self._plan = plan
        self._box = plan.box if plan is not None else ToolBox([])
        self._number = 1
        self._last_key: tuple[str, str] | None = None
        self._repeats = 0
        self._stopped = False  # the model repeated a call once too often
        self._stop_reason = _NOT_RUN_INTERRUPTED

    # -- the loop ----------------------------------------------------------------------

    def run(self, request: ChatRequest) -> Iterator[Event]:
        outcome = self._outcome
        start = self._clock()
        try:
            while True:
                sent = len(outcome.messages)
                yield from self._stream(request)
                if outcome.interrupted or outcome.failure is not None:
                    self._stop_reason = (
                        _NOT_RUN_INTERRUPTED if outcome.interrupted else _NOT_RUN_FAILED
                    )
                    return
                calls = _calls(outcome.messages[-1]) if len(outcome.messages) > sent else []
                if not calls:
                    return  # the answer
                if not (yield from self._run_calls(calls, request)):
                    return
                request = self._next_request(request, sent)
                final = request.tool_choice == "none"
                yield ToolRound(self._number, final=final, note=self._round_note(request))
        except KeyboardInterrupt:  # the stop button between two steps: keep what arrived
            outcome.interrupted = True
        except GeneratorExit:  # the consumer stopped reading (an interrupt while showing)
            outcome.interrupted = True
            raise
        finally:
            self._close_open_calls(self._stop_reason)
            outcome.elapsed = self._clock() - start

    def _stream(self, request: ChatRequest) -> Iterator[Event]:
        """One round, folded into the outcome however it ends."""
        current = Outcome(self._outcome.requested_model, {})
        generated = True
        try:
            yield from iter_answer(
                self._client, request, current, self._clock, keep_reasoning=self._number > 1
            )
        except OrmagicError as error:
            if self._number == 1:
                raise  # nothing arrived: the question failed before its answer began
            current.failure = error  # a later round: what came before is kept
            generated = False  # refused before it began: nothing generated, nothing billed
        finally:
            self._fold(current, generated)

    def _fold(self, current: Outcome, generated: bool) -> None:
        outcome = self._outcome
        usage = current.usage
        if generated:
            cost = usage.cost if usage is not None else None
            outcome.rounds.append(RoundRecord(current.generation_id, usage, cost, current.elapsed))
        outcome.usage = sum_usage([r.usage for r in outcome.rounds])
        if self._number == 1 or _has_content(current.message):
            outcome.messages.append(current.message)
            outcome.message = current.message
        outcome.finished = current.finished
        outcome.failure = current.failure or outcome.failure
        outcome.interrupted = outcome.interrupted or current.interrupted
        outcome.model = current.model or outcome.model
        outcome.provider = current.provider or outcome.provider
        outcome.generation_id = current.generation_id or outcome.generation_id

    # -- calls -------------------------------------------------------------------------

    def _run_calls(self, calls: list[_Call], request: ChatRequest) -> Generator[Event, None, bool]:
        """Answer every call of the round, yielding each result; False when the exchange
        ends here (the generator's return value: ``go_on = yield from ...``)."""
        outcome = self._outcome
        refusal = self._refusal(request)
        if refusal is not None:
            status, reason = refusal
            outcome.tool_status = status
            for call in calls:
                yield self._answer(call, self._box.error(reason), error=True)
            return False
        try:
            for call in calls:
                result, error = self._execute(call)
                yield self._answer(call, result, error)
        except KeyboardInterrupt:  # the stop button while a tool ran: keep what was computed
            outcome.interrupted = True
            return False
        except GeneratorExit:  # the consumer stopped (an interrupt while showing a result)
            outcome.interrupted = True
            raise
        return not self._stopped

    def _refusal(self, request: ChatRequest) -> tuple[str, str] | None:
        """Why this round's calls are not run at all: (status line, result for the model)."""
        outcome = self._outcome
        if outcome.finish_reason == "length":
            return (
                "⚠ The answer hit the --max-tokens cap while writing a tool call, so the call "
                "was not run; raise --max-tokens.",
                "not run: the answer hit max_tokens while writing this call, so its "
                "arguments may be cut short.",
            )
        if self._plan is None:
            return (
                "⚠ The model asked for tools, but tools are off for this question.",
                "not run: no tools are available for this question.",
            )
        if request.tool_choice == "none":
            return (
                f"⚠ The model asked for more tools after the round limit "
                f"({self._plan.max_rounds}); they were not run.",
                "not run: the tool round limit was reached; answer with what you have.",
            )
        return None

    def _execute(self, call: _Call) -> tuple[str, bool]:
        key = _same_call_key(call)
        self._repeats = self._repeats + 1 if key == self._last_key else 1
        self._last_key = key
        shown = tool_call_text(call.name, call.arguments)
        if self._stopped:
            return self._box.error("not run: the exchange was stopped."), True
        if self._repeats > _REPEAT_WARN:
            self._stopped = True
            self._outcome.tool_status = (
                f"⚠ Stopped: the model kept repeating {shown} with the same arguments."
            )
            return self._box.error("not run: the same call was repeated again; stopped."), True
        if self._repeats == _REPEAT_WARN:
            return (
                self._box.error(
                    f"this is the {_REPEAT_WARN}rd identical call to {call.name} in a row and "
                    "its result has not changed; use the results you have or try something "
                    "else."
                ),
                True,
            )
        return self._box.run(call.name, call.arguments)

    def _answer(self, call: _Call, result: str, error: bool) -> ToolResult:
        """Record the tool message for ``call`` (before it is shown: nothing is lost)."""
        record = ToolResult(call.id, call.name, call.arguments, result, error, self._number)
        self._outcome.messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        self._outcome.calls.append(record)
        return record

    def _close_open_calls(self, reason: str) -> None:
        """Give every call still without a tool message one saying it was not run."""
        messages = self._outcome.messages
        answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
        last = next((m for m in reversed(messages) if m.get("role") == "assistant"), None)
        if last is None:
            return
        for call in _calls(last):
            if call.id not in answered:
                self._answer(call, self._box.error(reason), error=True)

    # -- the next request --------------------------------------------------------------

    def _next_request(self, request: ChatRequest, sent: int) -> ChatRequest:
        """The request of the next round: this round's messages added, maybe the last."""
        assert self._plan is not None  # calls are only run with a plan
        new = self._outcome.messages[sent:]
        self._number += 1
        final = self._number > self._plan.max_rounds
        if final and new and new[-1].get("role") == "tool":
            # Said to the model where it reads results; the stored message is the sent one.
            new[-1]["content"] += (
                f"\n\n[ormagic: that was the last tool round ({self._plan.max_rounds}); "
                "answer now with what you have, without calling tools.]"
            )
        return dataclasses.replace(
            request,
            messages=[*request.messages, *new],
            tool_choice="none" if final else None,
        )

    def _round_note(self, request: ChatRequest) -> str | None:
        if request.tool_choice != "none" or self._plan is None:
            return None
        note = (
            f"Tool round limit ({self._plan.max_rounds}) reached: "
            "the model was asked to answer with what it has."
        )
        self._outcome.tool_status = self._outcome.tool_status or f"ⓘ {note}"
        return note


def iter_exchange(
    client: OpenRouterClient,
    request: ChatRequest,
    outcome: Outcome,
    clock: Clock,
    plan: ToolPlan | None,
) -> Iterator[Event]:
    """Answer ``request`` in as many rounds as the tool calls take, filling ``outcome``.

    Without a plan the request carries no tools and this is one round. Errors before the
    first round's answer begins propagate (nothing is recorded); after that they end the
    exchange with what arrived.
    """
    yield from _Exchange(client, outcome, clock, plan).run(request)
