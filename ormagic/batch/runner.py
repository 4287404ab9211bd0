"""Rows in flight: send each distinct prompt, retry what is worth retrying, record the rest.

Runs on the batch's asyncio loop. A pool of ``concurrency`` workers takes rows in order;
each request waits for a slot of the :class:`~ormagic.batch.limiter.AdaptiveLimit`. What
happens to a failed request:

- 429: the whole batch slows down (the limit halves, everyone waits for ``Retry-After``,
  else ``X-RateLimit-Reset``), and the row tries again, up to ``max_rate_limited`` times;
  a wait longer than ``max_pause`` (a daily quota) stops the batch, saying when it resets;
- 5xx, 408, timeouts, dropped connections, an error inside a 200 answer: the row tries
  again after a backoff, up to ``max_retries`` times;
- 401, 402, 404 (bad key, no credits, no such model or no provider for the parameters):
  every row would fail the same way, so the batch stops;
- anything else (400, 403 moderation, 413): the row is recorded as failed, the batch goes on.

Whatever the error, ``Policy.breaker`` requests in a row that failed alike (the same
message; any 429), with no answer in between, stop the batch: a persistent 429, a server
that cannot be reached, a 400 every row gets. Requests sent together count once (the
failures of one burst say one thing), so a burst at high concurrency does not stop it.

An answer that does not match the schema gets one more try, with the validation error;
then the row fails with the reason. Every row ends as a :class:`RowResult`, never as an
exception.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client.aio import AsyncChatClient, Completion
from ..errors import (
    APIError,
    AuthenticationError,
    NotFoundError,
    OrmagicError,
    PaymentRequiredError,
    ProtocolError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    TransportError,
)
from ..formatting import format_cost
from .limiter import AdaptiveLimit, LimitClosed
from .pricing import Prices
from .report import BatchStats, RowResult
from .schema import Schema, SchemaMismatch

__all__ = ["Budget", "FailureStreak", "Policy", "RowRunner", "RowTask", "answer_value"]

_RETRYABLE = (ServerError, RequestTimeoutError, TransportError, ProtocolError)
_FATAL = (AuthenticationError, PaymentRequiredError, NotFoundError)
_CUT = " (cut at max_tokens: raise it)"
_CORRECTION = (
    "That answer does not match the JSON schema: {problem}. Answer again with only a JSON "
    "object that matches the schema."
)


@dataclass
class RowTask:
    """One distinct request of the batch (rows with the same prompt share one)."""

    key: str
    body: dict[str, Any]
    label: Any
    prompt_tokens: int = 0  # estimated
    rows: int = 1  # input rows that share this prompt
    estimate: float = 0.0  # dollars held against the budget while it is in flight


@dataclass(frozen=True)
class Policy:
    concurrency: int = 8
    max_retries: int = 2
    max_rate_limited: int = 10
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    max_pause: float = 600.0  # a 429 asking to wait longer stops the batch
    pause_initial: float = 1.0  # the pause after a 429 without Retry-After, doubling
    pause_max: float = 30.0
    breaker: int = 5  # requests in a row that failed alike stop the batch


@dataclass
class FailureStreak:
    """Requests in a row that failed alike, with no answer in between.

    A failure counts only if its request was sent after the last one counted: requests in
    flight together that fail together are one failure, not ``concurrency`` of them.
    """

    kind: str | None = None
    count: int = 0
    counted_at: float = float("-inf")

    def failed(self, kind: str, sent_at: float, now: float) -> int:
        """Count a failure; return the streak's length."""
        if kind != self.kind:
            self.kind, self.count, self.counted_at = kind, 0, float("-inf")
        if sent_at >= self.counted_at:
            self.count += 1
            self.counted_at = now
        return self.count

    def answered(self) -> None:
        self.kind, self.count, self.counted_at = None, 0, float("-inf")


@dataclass
class Budget:
    """Dollars the batch may spend: what was spent, plus what is held for rows in flight.

    A row in flight holds its estimate, or what the dearest row so far actually cost if
    that is more: an estimate from a few sample rows can be far too low for the rows
    after them (longer documents further down a table), and every row in flight could
    overrun the cap by the difference.
    """

    cap: float | None
    spent: float = 0.0
    reserved: float = 0.0
    dearest: float = 0.0  # the most one row has cost so far

    def admit(self, estimate: float) -> float | None:
        """The amount held for a row about to be sent, or None when it would not fit."""
        held = max(estimate, self.dearest)
        if self.cap is not None and self.spent + self.reserved + held > self.cap:
            return None
        self.reserved += held
        return held

    def settle(self, held: float, cost: float | None) -> None:
        self.reserved -= held
        self.spent += cost or 0.0
        self.dearest = max(self.dearest, cost or 0.0)


@dataclass
class RowRunner:
    """Sends rows on one loop; ``stop_reason`` says why it stopped early, if it did."""

    client: AsyncChatClient
    stats: BatchStats
    budget: Budget
    prices: Prices = field(default_factory=Prices)
    schema: Schema | None = None
    policy: Policy = field(default_factory=Policy)
    on_answer: Callable[[RowTask, RowResult], None] | None = None
    clock: Callable[[], float] = time.monotonic
    stop_reason: str | None = None

    def __post_init__(self) -> None:
        p = self.policy
        self.limiter = AdaptiveLimit(
            p.concurrency,
            backoff_initial=p.pause_initial,
            backoff_max=p.pause_max,
            max_pause=p.max_pause,
            clock=self.clock,
        )
        self.streak = FailureStreak()

    async def run(self, tasks: Sequence[RowTask], results: dict[str, RowResult]) -> None:
        """Run ``tasks`` (in order, ``concurrency`` at a time) into ``results`` by key."""
        queue = iter(tasks)
        workers = [
            asyncio.ensure_future(self._worker(queue, results))
            for _ in range(min(self.policy.concurrency, len(tasks)))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def stop(self, reason: str) -> None:
        """Send nothing more: the requests in flight finish, the waiting ones are not sent."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.limiter.close()

    async def _worker(self, queue: Iterator[RowTask], results: dict[str, RowResult]) -> None:
        for task in queue:
            if self.stop_reason is not None:
                return
            held = self.budget.admit(task.estimate)
            if held is None:
                self.stop(f"max_cost reached ({format_cost(self.budget.cap)})")
                return
            result = await self._row(task)
            self.budget.settle(held, result.cost)
            if result.status == "skipped":  # the batch stopped before it was sent
                return
            results[task.key] = result
            self.stats.add(result, task.rows)
            if result.status == "ok" and self.on_answer is not None:
                self.on_answer(task, result)

    async def _row(self, task: RowTask) -> RowResult:
        result = RowResult(status="failed")
        started = self.clock()
        try:
            await self._attempts(task, result)
        finally:
            result.seconds = self.clock() - started
        return result

    async def _attempts(self, task: RowTask, result: RowResult) -> None:
        body, corrected, errors, limited = task.body, False, 0, 0
        while True:
            try:
                completion = await self._send(body)
            except LimitClosed:  # the batch stopped: a first try is not sent at all
                if result.error is None:
                    result.status = "skipped"
                return
            except RateLimitError as error:
                limited += 1
                result.error = str(error)
                if limited > self.policy.max_rate_limited or self.stop_reason is not None:
                    return
                continue
            except _RETRYABLE as error:
                errors += 1
                if not await self._may_retry(errors, error, result):
                    return
                continue
            except _FATAL as error:
                self.stop(str(error))
                result.error = str(error)
                return
            except APIError as error:
                result.error = str(error)
                return
            self._account(result, completion)
            if completion.failure is not None:
                errors += 1
                if not await self._may_retry(errors, completion.failure, result):
                    return
                continue
            value, problem = self._value(completion)
            if problem is None:
                result.status, result.value, result.error = "ok", value, None
                return
            cut = completion.finish_reason == "length"  # asking again would be cut again
            if self.schema is not None and not corrected and not cut and completion.text.strip():
                body, corrected = _corrected(body, completion.text, problem), True
                continue
            result.error = problem
            return

    async def _send(self, body: Mapping[str, Any]) -> Completion:
        """One request in a slot of the limiter; a 429 slows the whole batch down.

        Every failure counts toward the streak that stops the batch; a 429 asking to wait
        longer than ``max_pause`` stops it at once.
        """
        sent_at = await self.limiter.acquire()
        self.stats.in_flight = self.limiter.in_flight
        try:
            completion = await self.client.complete(body)
        except RateLimitError as error:
            wait = _rate_limit_wait(error)
            if wait is not None and wait > self.policy.max_pause:
                self.stop(str(error))
            else:
                self.limiter.rate_limited(wait, sent_at)
                self._failed("429", error, sent_at)
            raise
        except OrmagicError as error:
            self._failed(str(error), error, sent_at)
            raise
        finally:
            self.limiter.release()
            self.stats.in_flight = self.limiter.in_flight
        self.limiter.succeeded()
        if completion.failure is not None:
            self._failed(str(completion.failure), completion.failure, sent_at)
        else:
            self.streak.answered()
        return completion

    def _failed(self, kind: str, error: Exception, sent_at: float) -> None:
        """One more failure alike; enough of them in a row stop the batch."""
        count = self.streak.failed(kind, sent_at, self.clock())
        if count >= self.policy.breaker:
            self.stop(f"{count} requests in a row failed alike: {error}")

    async def _may_retry(self, errors: int, error: Exception, result: RowResult) -> bool:
        """Wait before another try, or record the error when the tries are used up (or the
        batch stopped)."""
        result.error = str(error)
        if errors > self.policy.max_retries or self.stop_reason is not None:
            return False
        p = self.policy
        delay = min(p.backoff_initial * 2 ** (errors - 1), p.backoff_max)
        await asyncio.sleep(delay * (1 + random.random() * 0.25))
        return self.stop_reason is None

    def _account(self, result: RowResult, completion: Completion) -> None:
        """Add one answer's tokens and cost (OpenRouter's, else at listed prices)."""
        result.model = completion.model or result.model
        usage = completion.usage
        if usage is None:
            return
        result.prompt_tokens += usage.prompt_tokens
        result.completion_tokens += usage.completion_tokens
        cost = self.prices.charged(usage)
        if cost is not None:
            result.cost = (result.cost or 0.0) + cost

    def _value(self, completion: Completion) -> tuple[Any, str | None]:
        return answer_value(completion, self.schema)


def answer_value(completion: Completion, schema: Schema | None) -> tuple[Any, str | None]:
    """A row's value from its answer, or why there is none (live and deferred rows alike)."""
    if completion.failure is not None:
        return None, str(completion.failure)
    text = completion.text
    cut = completion.finish_reason == "length"
    if not text.strip():
        return None, "empty answer" + (_CUT if cut else "")
    if schema is None:
        return text, None
    try:
        return schema.parse(text), None
    except SchemaMismatch as mismatch:
        if cut:
            return None, "unfinished JSON" + _CUT
        return None, f"does not match the schema: {mismatch}"


def _rate_limit_wait(error: RateLimitError) -> float | None:
    """Seconds a 429 asks to wait: ``Retry-After``, else until ``X-RateLimit-Reset``."""
    if error.retry_after is not None:
        return error.retry_after
    if error.reset_at is not None:
        return max(0.0, error.reset_at - time.time())
    return None


def _corrected(body: Mapping[str, Any], answer: str, problem: str) -> dict[str, Any]:
    """The request again, with the bad answer and what is wrong with it."""
    messages = [
        *body["messages"],
        {"role": "assistant", "content": answer},
        {"role": "user", "content": _CORRECTION.format(problem=problem)},
    ]
    return {**body, "messages": messages}
