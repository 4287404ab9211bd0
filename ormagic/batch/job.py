"""One batch from start to end: rows -> requests -> cache -> estimate -> run -> results.

:func:`run_batch` is what ``ormagic.map``, ``%%chat --each`` and each Dask partition call.
Everything a row's request depends on is in a :class:`BatchSpec`, which can be pickled
and holds no API key (a worker reads its own from its environment). Before anything is
sent every row's prompt is filled (a missing field is an error), the cache is read, and
one line says what the rest will cost; above the budget nothing is sent. While rows run
the cost is counted from usage, and the batch stops cleanly when the budget is reached.
An interrupt cancels the requests in flight and keeps every finished row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..client.aio import AsyncChatClient
from ..client.http import ChatRequest
from ..client.settings import ClientSettings, Secret
from ..errors import BudgetExceededError, MissingKeyError
from .cache import AnswerCache, CachedAnswer, cache_dir, cache_key
from .loop import run_in_loop_thread
from .pricing import Estimate, Prices, request_tokens
from .report import BatchStats, RowResult, summary_line
from .rows import Rows, shape_records, shape_values
from .runner import Budget, Policy, RowRunner, RowTask
from .schema import Schema, SchemaMismatch
from .template import check_fields, fill

__all__ = [
    "SAMPLE_ROWS",
    "BatchOutcome",
    "BatchSpec",
    "Display",
    "SilentDisplay",
    "build_tasks",
    "per_row_results",
    "run_batch",
]

# Without max_tokens, the output of the other rows is estimated from this many answers.
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class BatchSpec:
    """Everything that shapes a batch's requests; picklable, and without the API key."""

    template: str
    model: str
    settings: ClientSettings  # api_key is None: the process that runs it supplies its own
    max_tokens: int
    max_tokens_given: bool = False  # False: estimate the output from a sample of rows
    system: str | None = None
    reasoning: str | None = None
    temperature: float | None = None
    schema: Schema | None = None
    context: str | None = None  # notebook context sent ahead of each row's prompt
    concurrency: int = 8
    max_cost: float | None = None
    budget_note: str = ""
    cache: bool = True
    cache_dir: str | None = None  # None: ORMAGIC_CACHE_DIR, else the user's cache directory
    prices: Prices = field(default_factory=Prices)

    def body(self, prompt: str) -> dict[str, Any]:
        """The request body for one row: whole answers (``stream: false``) with usage."""
        content = f"{self.context}\n\n{prompt}" if self.context else prompt
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        extra: dict[str, Any] = {"stream": False}
        if self.schema is not None:
            extra["response_format"] = self.schema.response_format()
        request = ChatRequest(
            messages=messages,
            model=self.model,
            max_tokens=self.max_tokens,
            reasoning={"effort": self.reasoning} if self.reasoning else None,
            temperature=self.temperature,
            # only providers that honour the schema may answer (openrouter-tools.md §2)
            provider={"require_parameters": True} if self.schema is not None else None,
            extra=extra,
        )
        return request.to_json()

    def client_settings(self, key: Secret | None) -> ClientSettings:
        if key is None or not key:
            raise MissingKeyError()
        return dataclasses.replace(self.settings, api_key=key)

    def open_cache(self) -> AnswerCache | None:
        if not self.cache:
            return None
        return AnswerCache(Path(self.cache_dir) if self.cache_dir else cache_dir())

    def policy(self) -> Policy:
        return Policy(concurrency=self.concurrency, max_retries=max(self.settings.max_retries, 0))


class Display(Protocol):
    """Where a batch says things: the cost line, the progress, the summary."""

    def say(self, line: str) -> None: ...

    def update(self, stats: BatchStats) -> None: ...

    def finish(self, stats: BatchStats, summary: str) -> None: ...

    def close(self) -> None:
        """The batch ended without a summary (an error before or while sending)."""


class SilentDisplay:
    """Says nothing: for Dask workers and tests."""

    def say(self, line: str) -> None:
        """Nothing to show."""

    def update(self, stats: BatchStats) -> None:
        """Nothing to show."""

    def finish(self, stats: BatchStats, summary: str) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to show."""


@dataclass
class BatchOutcome:
    """How a batch ended: one :class:`RowResult` per input row, and the totals."""

    rows: Rows
    spec: BatchSpec
    results: list[RowResult]
    stats: BatchStats
    estimate: Estimate | None = None
    interrupted: bool = False
    stop_reason: str | None = None
    refusal: str | None = None
    """Set when the estimate was over budget: the rest was not sent (this line says why)."""

    @property
    def values(self) -> list[Any]:
        return [r.value if r.status in ("ok", "cached") else None for r in self.results]

    @property
    def summary(self) -> str:
        return summary_line(self.stats)

    def result(self) -> Any:
        """The answers in the input's shape (None / missing where there is none)."""
        schema = self.spec.schema
        return shape_values(self.rows, self.values, schema.dtypes() if schema else None)

    def report(self) -> Any:
        """One record per input row: status, error, tokens, cost, seconds."""
        return shape_records(self.rows, [r.record() for r in self.results])


def build_tasks(spec: BatchSpec, rows: Rows) -> tuple[list[RowTask], list[str]]:
    """The distinct requests, in row order, and each input row's cache key.

    Every prompt is filled here, before anything is sent: a field the rows do not have,
    or one that cannot be read, is a :class:`~ormagic.errors.ConfigError`.
    """
    check_fields(spec.template, rows.fields)
    tasks: dict[str, RowTask] = {}
    keys: list[str] = []
    for record, label in zip(rows.records, rows.labels, strict=True):
        body = spec.body(fill(spec.template, record, label))
        key = cache_key(spec.settings.base_url, body)
        keys.append(key)
        if key in tasks:
            tasks[key].rows += 1
        else:
            tasks[key] = RowTask(key, body, label, prompt_tokens=request_tokens(body))
    return list(tasks.values()), keys


def cached_result(spec: BatchSpec, answer: CachedAnswer) -> RowResult | None:
    """A cached answer as this run's result (free now); None if it no longer parses."""
    value: Any = answer.text
    if spec.schema is not None:
        try:
            value = spec.schema.parse(answer.text)
        except SchemaMismatch:
            return None
    return RowResult("cached", value, model=answer.model, cost=0.0)


def run_batch(
    spec: BatchSpec,
    rows: Rows,
    *,
    key: Secret | None,
    display: Display | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BatchOutcome:
    """Run ``spec`` over ``rows``; see the module's docstring.

    Raises :class:`~ormagic.errors.ConfigError` (a bad template, no key) before sending.
    Over budget, the outcome's ``refusal`` says what the rest would cost (nothing more was
    sent); an interrupt returns the outcome so far, ``interrupted`` set.
    """
    run = _Run(spec, rows, spec.client_settings(key), display or SilentDisplay(), clock)
    return run.execute()


class _Run:
    """The state of one :func:`run_batch`."""

    def __init__(
        self,
        spec: BatchSpec,
        rows: Rows,
        settings: ClientSettings,
        display: Display,
        clock: Callable[[], float],
    ) -> None:
        self.spec, self.rows, self.settings = spec, rows, settings
        self.display, self.clock = display, clock
        self.tasks, self.keys = build_tasks(spec, rows)
        self.results: dict[str, RowResult] = {}
        self.stats = BatchStats(total=len(rows))
        self.budget = Budget(spec.max_cost)
        self.cache = spec.open_cache()
        self.started = clock()
        self.stop_reason: str | None = None
        self.estimate: Estimate | None = None
        self.refusal: str | None = None

    def execute(self) -> BatchOutcome:
        interrupted = False
        try:
            pending = self._read_cache()
            try:
                self._send(pending)
            except KeyboardInterrupt:
                interrupted = True
            except BudgetExceededError as error:
                self.display.close()
                self.refusal = str(error)
            except BaseException:
                self.display.close()
                raise
        finally:
            if self.cache is not None:
                self.cache.close()
        return self._outcome(interrupted)

    def _read_cache(self) -> list[RowTask]:
        if self.cache is not None:
            try:
                found = self.cache.get_many(self.keys)
            except (sqlite3.Error, OSError) as error:
                self._drop_cache(f"The answer cache could not be read ({error}): every row is sent")
                found = {}
            for key, answer in found.items():
                result = cached_result(self.spec, answer)
                if result is not None:
                    self.results[key] = result
        pending = [task for task in self.tasks if task.key not in self.results]
        self.stats.cached = len(self.rows) - sum(task.rows for task in pending)
        self.stats.to_send = len(self.rows) - self.stats.cached
        return pending

    def _send(self, unsent: list[RowTask]) -> None:
        """Sample (when the output must be estimated), price, then run the rest.

        The estimate covers every row not in the cache, the sample's included, so that it
        reads as the cost of the whole batch; the sample is sent only if even its worst
        case (``max_tokens`` of output) fits the budget.
        """
        spec = self.spec
        per_row, basis = float(spec.max_tokens), "max_tokens"
        rest = unsent
        if unsent and not spec.max_tokens_given and len(unsent) > SAMPLE_ROWS:
            worst = self._estimate(unsent, per_row, basis)
            if worst.over_budget_for(SAMPLE_ROWS):
                raise BudgetExceededError(worst.refusal())
            sample, rest = _spread_sample(unsent)
            self._run_tasks(sample, per_row)
            per_row, basis = self._sampled_output(sample, per_row)
        self.estimate = estimate = self._estimate(unsent, per_row, basis)
        self.display.say(estimate.line())
        if estimate.over_budget:
            sent = self.stats.done + self.stats.failed
            note = f" ({sent} sample rows answered and kept)" if sent else ""
            raise BudgetExceededError(estimate.refusal(note))
        if rest:
            self._run_tasks(rest, per_row)

    def _estimate(self, tasks: Sequence[RowTask], per_row: float, basis: str) -> Estimate:
        return Estimate(
            rows=len(self.rows),
            to_send=len(tasks),
            cached=self.stats.cached,
            input_tokens=sum(task.prompt_tokens for task in tasks),
            output_per_row=per_row,
            output_basis=basis,
            prices=self.spec.prices,
            model=self.spec.model,
            budget=self.spec.max_cost,
            budget_note=self.spec.budget_note,
        )

    def _sampled_output(self, sample: Sequence[RowTask], fallback: float) -> tuple[float, str]:
        answered = [self.results[t.key] for t in sample if t.key in self.results]
        counts = [r.completion_tokens for r in answered if r.status == "ok"]
        if not counts:
            return fallback, "max_tokens"
        return sum(counts) / len(counts), f"a sample of {len(counts)} rows"

    def _run_tasks(self, tasks: list[RowTask], per_row: float) -> None:
        prices = self.spec.prices
        for task in tasks:
            task.estimate = prices.cost(task.prompt_tokens, per_row) or 0.0

        async def main() -> None:
            client = AsyncChatClient(self.settings, connections=self.spec.concurrency)
            runner = RowRunner(
                client,
                self.stats,
                self.budget,
                prices=prices,
                schema=self.spec.schema,
                policy=self.spec.policy(),
                on_answer=self._keep,
                clock=self.clock,
            )
            try:
                await runner.run(tasks, self.results)
            finally:
                self.stop_reason = self.stop_reason or runner.stop_reason
                await client.aclose()

        run_in_loop_thread(main, on_tick=self._tick)

    def _tick(self) -> None:
        self.stats.elapsed = self.clock() - self.started
        self.display.update(self.stats)

    def _keep(self, task: RowTask, result: RowResult) -> None:
        """A good answer goes into the cache, committed at once.

        A cache that cannot keep it (locked by another process for longer than its busy
        timeout, a full disk) costs only the cache: the answer is in the result all the
        same, one line says so, and the rest of the batch does not try the cache again.
        """
        if self.cache is None:
            return
        text = result.value if isinstance(result.value, str) else _json_text(result.value)
        answer = CachedAnswer(
            text, result.model, result.prompt_tokens, result.completion_tokens, result.cost
        )
        try:
            self.cache.put(task.key, answer)
        except (sqlite3.Error, OSError) as error:
            self._drop_cache(
                f"The answer cache could not keep an answer ({error}): the answers are in "
                "the result, but a re-run sends the rows answered from here on again"
            )

    def _drop_cache(self, line: str) -> None:
        """Go on without the cache, after one line saying why."""
        self.display.say(line + ".")
        cache, self.cache = self.cache, None
        if cache is not None:
            with contextlib.suppress(sqlite3.Error, OSError):
                cache.close()

    def _outcome(self, interrupted: bool) -> BatchOutcome:
        reason = self.stop_reason
        if interrupted:
            reason = "interrupted"
        elif self.refusal is not None:
            reason = "over budget"
        skipped_error = f"not sent: {reason}" if reason else "not sent"
        per_row = per_row_results(self.keys, self.results, skipped_error)
        stats = BatchStats.of(per_row, self.clock() - self.started)
        if interrupted:
            stats.notes.append("interrupted")
        elif self.stop_reason:
            stats.notes.append(f"stopped: {self.stop_reason}")
        if self.refusal is None:
            self.display.finish(stats, summary_line(stats))
        return BatchOutcome(
            self.rows,
            self.spec,
            per_row,
            stats,
            self.estimate,
            interrupted,
            self.stop_reason,
            self.refusal,
        )


def _spread_sample(tasks: list[RowTask]) -> tuple[list[RowTask], list[RowTask]]:
    """:data:`SAMPLE_ROWS` rows spread evenly through ``tasks``, and the others in order:
    the first rows of a table are often not like the rest (sorted by length, by date)."""
    step = len(tasks) / SAMPLE_ROWS
    picked = {int(i * step) for i in range(SAMPLE_ROWS)}
    sample = [task for i, task in enumerate(tasks) if i in picked]
    return sample, [task for i, task in enumerate(tasks) if i not in picked]


def _json_text(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def per_row_results(
    keys: Sequence[str], results: Mapping[str, RowResult], skipped_error: str
) -> list[RowResult]:
    """One result per input row; a repeated prompt is served from the first one.

    The repeats are ``cached`` and cost nothing, so that what a prompt cost is counted
    once (in the summary and in the session's ledger) however many rows share it.
    """
    seen: set[str] = set()
    per_row = []
    for key in keys:
        result = results.get(key) or RowResult("skipped", error=skipped_error)
        if key in seen:
            status = "cached" if result.status in ("ok", "cached") else result.status
            result = RowResult(status, result.value, result.error, model=result.model)
            result.cost = 0.0 if status == "cached" else None
        seen.add(key)
        per_row.append(result)
    return per_row
