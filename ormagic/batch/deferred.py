"""Half price when it can wait: rows through OpenRouter's batch endpoint.

docs/openrouter-tools.md §4 (D-BATCH): ``POST /api/beta/batches`` with ``endpoint`` and
``model`` serialised before ``requests`` (``[{custom_id, body}]``), answered ``202`` with
``status: "validating"``; ``GET /api/beta/batches/:id`` goes ``validating -> in_progress
-> finalizing -> completed`` (or ``failed``, ``expired``, ``cancelled``), and a completed
batch carries its ``results`` inline, each with exactly one of ``response`` (a chat
completion) or ``error``. Typically half the listed price; text only; within 24 hours.

Results come back through the answer cache: a job's rows are remembered there with their
cache keys, and whoever polls a finished job (re-running the cell, a new session, or
``ormagic.batch_results``) puts its answers into the cache. Rows that failed in the job
are forgotten, so the next run submits them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client.aio import AsyncChatClient, batches_url, completion_from_body
from ..client.settings import ClientSettings, Secret
from ..errors import (
    APIError,
    BudgetExceededError,
    ConfigError,
    NotFoundError,
    ProtocolError,
    TransportError,
)
from ..formatting import counted
from .cache import AnswerCache, CachedAnswer
from .job import (
    BatchSpec,
    Display,
    SilentDisplay,
    build_tasks,
    cached_result,
    per_row_results,
)
from .loop import run_in_loop_thread
from .pricing import DEFERRED_SHARE, Estimate, Prices
from .report import BatchStats, RowResult, summary_line
from .rows import Rows, shape_values
from .runner import RowTask, answer_value
from .schema import Schema

__all__ = ["DeferredBatch", "JobStatus", "collect_job", "run_deferred"]

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_ENDPOINT = "/v1/chat/completions"


@dataclass(frozen=True)
class JobStatus:
    """A batch job as the last poll saw it."""

    id: str
    status: str
    total: int = 0
    completed: int = 0
    failed: int = 0

    def line(self) -> str:
        done = f"{self.completed:,} of {self.total:,} done" if self.total else ""
        return f"batch job {self.id}: {self.status}" + (f" ({done})" if done else "")


@dataclass
class DeferredBatch:
    """What ``ormagic.map(..., deferred=True)`` returns at once.

    ``result`` holds, in the input's shape, the answers there already are (from the cache
    or a job that finished); the others are missing until a later call fills them in.
    """

    job_id: str | None  # the job submitted by this call (None: nothing needed sending)
    jobs: tuple[JobStatus, ...]  # every job these rows wait for, as last polled
    result: Any
    ready: int
    rows: int
    estimate: Estimate | None = None
    results: list[RowResult] = field(default_factory=list, repr=False)

    @property
    def done(self) -> bool:
        return self.ready == self.rows

    @property
    def status(self) -> str:
        if self.done:
            return "completed"
        waiting = [job.status for job in self.jobs if job.status not in TERMINAL]
        return waiting[0] if waiting else "incomplete"

    def __repr__(self) -> str:
        return (
            f"DeferredBatch(job_id={self.job_id!r}, status={self.status!r}, "
            f"ready={self.ready:,} of {self.rows:,})"
        )


def run_deferred(
    spec: BatchSpec,
    rows: Rows,
    *,
    key: Secret | None,
    display: Display | None = None,
    submit: bool = True,
) -> tuple[DeferredBatch, BatchStats]:
    """Fill what is ready, poll the jobs rows wait for, submit the rest (if ``submit``)."""
    display = display or SilentDisplay()
    settings = spec.client_settings(key)
    cache = spec.open_cache()
    if cache is None:
        raise ConfigError("The deferred mode brings answers back through the cache: keep it on.")
    try:
        return _Deferred(spec, rows, settings, cache, display).run(submit)
    finally:
        cache.close()


def collect_job(
    job_id: str,
    *,
    settings: ClientSettings,
    cache: AnswerCache,
    prices: Prices,
    schema: Schema | None = None,
) -> tuple[JobStatus, dict[str, RowResult]]:
    """Poll ``job_id``; a finished job's answers go into the cache. Returns its status and
    the results of its rows by custom_id (empty until it finished)."""

    async def poll() -> Mapping[str, Any]:
        async with AsyncChatClient(settings) as client:
            data = await client.get_json(f"{batches_url(settings)}/{job_id}")
        if not isinstance(data, dict):
            raise ProtocolError(f"The batch endpoint answered {job_id} with something else.")
        return data

    data = run_in_loop_thread(poll)
    status = _status(data, job_id)
    if status.status not in TERMINAL:
        return status, {}
    rows = cache.job_rows(job_id)
    found = _job_results(data, rows, prices, schema)
    for custom_id, result in found.items():
        if result.status == "ok" and custom_id in rows:
            cache.put(rows[custom_id], _cached(result))
    cache.forget_job(job_id)
    return status, found


def _status(data: Mapping[str, Any], job_id: str) -> JobStatus:
    counts = data.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}

    def count(name: str) -> int:
        value = counts.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    status = data.get("status")
    return JobStatus(
        id=str(data.get("id") or job_id),
        status=status if isinstance(status, str) else "unknown",
        total=count("total"),
        completed=count("completed"),
        failed=count("failed"),
    )


def _job_results(
    data: Mapping[str, Any], rows: Mapping[str, str], prices: Prices, schema: Schema | None
) -> dict[str, RowResult]:
    """custom_id -> result, for every result item of a finished job."""
    items = data.get("results")
    found: dict[str, RowResult] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("custom_id"), str):
            found[item["custom_id"]] = _item_result(item, prices, schema)
    failure = f"the batch job ended {data.get('status')} without an answer for this row"
    for custom_id in rows:
        found.setdefault(custom_id, RowResult("failed", error=failure))
    return found


def _item_result(item: Mapping[str, Any], prices: Prices, schema: Schema | None) -> RowResult:
    response = item.get("response")
    response = response if isinstance(response, dict) else {}
    body = response.get("body")
    if response.get("status_code", 200) != 200 or not isinstance(body, dict):
        return RowResult("failed", error=_item_error(item.get("error") or body))
    completion = completion_from_body(body)
    result = RowResult("failed", model=completion.model)
    if completion.usage is not None:
        result.prompt_tokens = completion.usage.prompt_tokens
        result.completion_tokens = completion.usage.completion_tokens
        result.cost = prices.charged(completion.usage, DEFERRED_SHARE)
    value, problem = answer_value(completion, schema)
    if problem is not None:
        result.error = problem
        return result
    result.status, result.value = "ok", value
    return result


def _item_error(error: Any) -> str:
    """An item's ``error`` (or an error body) in words: ``message (code)``."""
    if isinstance(error, dict) and isinstance(error.get("error"), dict):
        error = error["error"]
    if isinstance(error, dict) and error.get("message"):
        code = error.get("code")
        return f"{error['message']} ({code})" if code else str(error["message"])
    return "the batch endpoint returned no answer for this row"


def _cached(result: RowResult) -> CachedAnswer:
    import json

    value = result.value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return CachedAnswer(
        text, result.model, result.prompt_tokens, result.completion_tokens, result.cost
    )


class _Deferred:
    def __init__(
        self,
        spec: BatchSpec,
        rows: Rows,
        settings: ClientSettings,
        cache: AnswerCache,
        display: Display,
    ) -> None:
        self.spec, self.rows, self.settings, self.cache = spec, rows, settings, cache
        self.display = display
        self.tasks, self.keys = build_tasks(spec, rows)
        self.results: dict[str, RowResult] = {}
        self.jobs: list[JobStatus] = []
        self.unpolled: list[str] = []  # jobs whose poll failed: their rows still wait

    def run(self, submit: bool) -> tuple[DeferredBatch, BatchStats]:
        self._read_cache()
        waiting = self._poll_jobs(submit)
        self._read_cache()
        unsent = [t for t in self.tasks if t.key not in self.results and t.key not in waiting]
        job_id = None
        estimate = None
        if unsent and submit:
            estimate = self._estimate(unsent)
            self.display.say(estimate.line())
            if estimate.over_budget:
                raise BudgetExceededError(estimate.refusal())
            job_id = self._submit(unsent)
        return self._batch(job_id, estimate)

    def _read_cache(self) -> None:
        missing = [t.key for t in self.tasks if t.key not in self.results]
        for key, answer in self.cache.get_many(missing).items():
            result = cached_result(self.spec, answer)
            if result is not None:
                self.results[key] = result

    def _poll_jobs(self, submit: bool) -> set[str]:
        """Poll every job the rows wait for; return the keys still waiting.

        A job the server no longer knows (404: deleted, or another account's) is forgotten:
        its rows are unsent again. A job that cannot be polled now keeps its rows waiting;
        one line says which, and the other jobs are polled all the same.
        """
        missing = [t.key for t in self.tasks if t.key not in self.results]
        pending = self.cache.pending_jobs(missing)
        still: set[str] = set()
        for job_id in dict.fromkeys(pending.values()):
            rows = self.cache.job_rows(job_id)
            try:
                status, found = collect_job(
                    job_id,
                    settings=self.settings,
                    cache=self.cache,
                    prices=self.spec.prices,
                    schema=self.spec.schema,
                )
            except NotFoundError:
                self.cache.forget_job(job_id)
                then = "are submitted again" if submit else "go to the next run that submits"
                self.display.say(
                    f"batch job {job_id} is unknown to the server (deleted, or another "
                    f"account's): forgotten; its {counted(len(rows), 'row')} {then}."
                )
                continue
            except (APIError, TransportError, ProtocolError) as error:
                self.display.say(f"batch job {job_id} could not be polled: {error}")
                self.unpolled.append(job_id)
                still.update(rows.values())
                continue
            self.jobs.append(status)
            if status.status not in TERMINAL:
                still.update(key for key in rows.values())
            for custom_id, result in found.items():
                if custom_id in rows:
                    self.results[rows[custom_id]] = result
        return still

    def _estimate(self, tasks: Sequence[RowTask]) -> Estimate:
        return Estimate(
            rows=len(self.rows),
            to_send=len(tasks),
            cached=sum(1 for key in self.keys if key in self.results),
            input_tokens=sum(task.prompt_tokens for task in tasks),
            output_per_row=float(self.spec.max_tokens),
            output_basis="max_tokens",
            prices=self.spec.prices,
            model=self.spec.model,
            budget=self.spec.max_cost,
            budget_note=self.spec.budget_note,
            deferred=True,
        )

    def _submit(self, tasks: Sequence[RowTask]) -> str:
        ids = {f"row-{i}": task.key for i, task in enumerate(tasks)}
        requests = [
            {"custom_id": custom_id, "body": _batch_body(task.body)}
            for custom_id, task in zip(ids, tasks, strict=True)
        ]
        # endpoint and model before requests: the endpoint stream-parses (D-BATCH)
        payload = {"endpoint": _ENDPOINT, "model": self.spec.model, "requests": requests}

        async def post() -> Any:
            async with AsyncChatClient(self.settings) as client:
                return await client.post_json(batches_url(self.settings), payload)

        data = run_in_loop_thread(post)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ProtocolError("The batch endpoint did not answer with a batch id.")
        self.cache.add_pending(data["id"], ids.items())
        self.jobs.append(_status(data, data["id"]))
        return str(data["id"])

    def _batch(
        self, job_id: str | None, estimate: Estimate | None
    ) -> tuple[DeferredBatch, BatchStats]:
        live = [job.line() for job in self.jobs if job.status not in TERMINAL]
        live += [f"batch job {job_id} (not polled)" for job_id in self.unpolled]
        waiting = "waiting for " + ", ".join(live) if live else "not sent"
        per_row = per_row_results(self.keys, self.results, waiting)
        values = [r.value if r.status in ("ok", "cached") else None for r in per_row]
        schema = self.spec.schema
        stats = BatchStats.of(per_row)
        batch = DeferredBatch(
            job_id=job_id,
            jobs=tuple(self.jobs),
            result=shape_values(self.rows, values, schema.dtypes() if schema else None),
            ready=sum(1 for v in values if v is not None),
            rows=len(per_row),
            estimate=estimate,
            results=per_row,
        )
        for job in self.jobs:
            self.display.say(job.line())
        if batch.done:
            self.display.say(summary_line(stats))
        return batch, stats


def _batch_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A row's body for the batch endpoint: the batch names the model; no streaming."""
    return {k: v for k, v in body.items() if k not in ("model", "stream")}
