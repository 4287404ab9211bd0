"""``ormagic.map``, ``ormagic.batch_report`` and ``ormagic.batch_results``: one prompt over
every row, from plain Python (and from ``%%chat --each``, which calls :func:`run_map`).

They use the session's engine for settings (model, key, base URL, ``max_cost``), prices
(``GET /models``) and the usage ledger, so ``%chat usage`` counts a batch's rows under the
conversation name ``batch``. The work itself is the batch layer's (``ormagic.batch``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..batch.cache import AnswerCache, cache_dir
from ..batch.deferred import DeferredBatch, collect_job, run_deferred
from ..batch.job import BatchOutcome, BatchSpec, Display, run_batch
from ..batch.on_dask import map_dask
from ..batch.pricing import Prices
from ..batch.report import RowResult
from ..batch.rows import Rows, is_dask, rows_of
from ..batch.schema import make_schema
from ..batch.template import template_fields
from ..client.settings import DEFAULT_MAX_TOKENS
from ..engine.engine import Engine, default_engine
from ..engine.notebook import Notebook
from ..engine.options import AskOptions
from ..errors import BatchStoppedError, BudgetExceededError, ConfigError, OrmagicError
from ..events import Usage
from ..formatting import format_cost
from ..render.progress import NotebookProgress, TerminalProgress
from .hooks import publisher_factory

__all__ = [
    "LEDGER_NAME",
    "MapOptions",
    "batch_report",
    "batch_results",
    "make_spec",
    "map",
    "run_map",
    "stopped_line",
]

LEDGER_NAME = "batch"  # the "conversation" a batch's rows are counted under in %chat usage

_last: BatchOutcome | None = None
_jobs: dict[str, tuple[BatchSpec, Rows]] = {}


@dataclass(frozen=True)
class MapOptions:
    """One batch's options; ``None`` means the session's setting."""

    model: str | None = None
    system: str | None = None
    reasoning: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    schema: Any = None
    concurrency: int = 8
    max_cost: float | None = None
    cache: bool = True
    deferred: bool = False
    context: str | None = None  # notebook context for every row: auto|none|all|N


def display_for(progress: bool) -> Display:
    """A progress bar in a notebook, lines on stderr elsewhere (no bar if not ``progress``)."""
    factory = publisher_factory()
    if factory is not None:
        return NotebookProgress(factory(), bar=progress)
    return TerminalProgress(bar=progress)


def map(
    template: str,
    data: Any,
    *,
    model: str | None = None,
    system: str | None = None,
    reasoning: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    schema: Any = None,
    concurrency: int = 8,
    max_cost: float | None = None,
    cache: bool = True,
    progress: bool = True,
    deferred: bool = False,
    context: str | None = None,
) -> Any:
    """Ask ``template`` of every row of ``data``; the answers come back in its shape.

    ``data`` is a list, a pandas Series or DataFrame, or a Dask DataFrame or Series.
    ``template`` uses ``{item}`` and ``{index}`` (a list or Series) or the column names (a
    DataFrame). Returns a list, a Series aligned on the index, or with ``schema`` a list
    of dicts / a DataFrame of the schema's fields; a row without an answer is None (a
    missing value). A Dask collection gives a lazy Dask result. ``deferred=True`` submits
    the rows to OpenRouter's batch endpoint (about half price) and returns a
    :class:`~ormagic.batch.deferred.DeferredBatch` at once.

    Raises an :class:`~ormagic.errors.OrmagicError` before anything is sent (a field the
    rows lack, no key, a bad value) and :class:`~ormagic.errors.BudgetExceededError` when
    the estimate is over ``max_cost`` (then nothing more is sent). A batch that stops
    part way (a rejected key, no credits left, an unknown model, ``max_cost`` reached)
    raises :class:`~ormagic.errors.BatchStoppedError`, whose ``result`` holds the rows
    answered. An interrupt keeps the rows answered so far (returned, and cached) and
    returns.
    """
    options = MapOptions(
        model=model,
        system=system,
        reasoning=reasoning,
        max_tokens=max_tokens,
        temperature=temperature,
        schema=schema,
        concurrency=concurrency,
        max_cost=max_cost,
        cache=cache,
        deferred=deferred,
        context=context,
    )
    engine = default_engine()
    display = display_for(progress)
    result = run_map(engine, template, data, options, display, engine.notebook)
    if not isinstance(result, BatchOutcome):
        return result
    if result.interrupted:
        display.say(
            "⏹ Interrupted: the rows answered so far are kept, here and in the cache; "
            "run it again to finish the rest."
        )
    elif result.stop_reason:
        raise BatchStoppedError(
            f"{stopped_line(result)} The answers are in this error's .result and in the "
            "cache: run it again to send the rest.",
            result.result(),
        )
    return result.result()


def stopped_line(outcome: BatchOutcome) -> str:
    """``Stopped after 4 of 10 rows: max_cost reached ($0.0035).``"""
    done = sum(1 for value in outcome.values if value is not None)
    reason = (outcome.stop_reason or "").rstrip()
    end = "" if reason.endswith((".", "!", "?")) else "."
    return f"Stopped after {done:,} of {len(outcome.values):,} rows: {reason}{end}"


def run_map(
    engine: Engine,
    template: str,
    data: Any,
    options: MapOptions,
    display: Display,
    notebook: Notebook | None = None,
) -> BatchOutcome | DeferredBatch | Any:
    """The batch behind ``ormagic.map`` and ``%%chat --each``: its outcome (or a deferred
    batch, or a lazy Dask result). A refusal is raised after its sample rows were counted."""
    global _last
    spec = make_spec(engine, template, options, notebook)
    if is_dask(data):
        if options.deferred:
            raise ConfigError("The deferred mode takes a list or pandas data, not Dask.")
        return map_dask(spec, data)
    rows = rows_of(data, template_fields(spec.template))
    key = engine.client_settings().api_key
    if options.deferred:
        batch, _stats = run_deferred(spec, rows, key=key, display=display)
        _record(engine, batch.results)
        for job in batch.jobs:
            _jobs[job.id] = (spec, rows)
        return batch
    outcome = run_batch(spec, rows, key=key, display=display)
    _record(engine, outcome.results)
    _last = outcome
    if outcome.refusal is not None:
        raise BudgetExceededError(outcome.refusal)
    return outcome


def make_spec(
    engine: Engine, template: str, options: MapOptions, notebook: Notebook | None = None
) -> BatchSpec:
    """Check every option and resolve it against the session; nothing is sent but, for
    the prices, ``GET /models`` (once per five minutes)."""
    if not isinstance(template, str) or not template.strip():
        raise ConfigError("The template is empty: write the prompt to ask of every row.")
    ask = AskOptions(
        model=options.model,
        reasoning=options.reasoning,
        max_tokens=options.max_tokens,
        temperature=options.temperature,
        context=options.context or "none",
    )
    checked = engine.check(ask)  # values, the key, and the session's budget
    concurrency = options.concurrency
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be a positive whole number, not {concurrency!r}.")
    if options.max_cost is not None and not options.max_cost >= 0:
        raise ConfigError(f"max_cost must be a number of dollars, not {options.max_cost!r}.")
    budget, note = _budget(engine, options.max_cost)
    given = options.max_tokens is not None or engine.defaults.max_tokens != DEFAULT_MAX_TOKENS
    return BatchSpec(
        template=template,
        model=checked.model,
        settings=replace(engine.client_settings(), api_key=None),
        max_tokens=checked.max_tokens,
        max_tokens_given=given,
        system=options.system if options.system is not None else engine.defaults.system,
        reasoning=checked.reasoning,
        temperature=checked.temperature,
        schema=make_schema(options.schema) if options.schema is not None else None,
        context=_context(engine, template, ask, notebook),
        concurrency=concurrency,
        max_cost=budget,
        budget_note=note,
        cache=options.cache,
        prices=_prices(engine, checked.model),
    )


def _budget(engine: Engine, max_cost: float | None) -> tuple[float | None, str]:
    """The argument, else what the session's ``max_cost`` has left."""
    if max_cost is not None:
        return float(max_cost), ""
    limit = engine.defaults.max_cost
    if limit is None:
        return None, ""
    spent = engine.ledger.session_cost
    if not spent:
        return float(limit), "max_cost"
    note = f"max_cost {format_cost(limit)} less {format_cost(spent)} spent this session"
    return max(float(limit) - spent, 0.0), note


def _prices(engine: Engine, model: str) -> Prices:
    """The model's listed prices; unknown when the catalogue cannot say."""
    try:
        info = engine.catalog.get(model)
    except OrmagicError:
        return Prices()
    if info is None:
        return Prices()
    return Prices(info.prompt_price, info.completion_price)


def _context(engine: Engine, template: str, ask: AskOptions, notebook: Notebook | None) -> str:
    if notebook is None or ask.context in (None, "none"):
        return ""
    return engine.preview_context(template, ask, notebook).text


def _record(engine: Engine, results: list[RowResult]) -> None:
    """Count what the rows cost in the session's ledger (``%chat usage``, ``max_cost``)."""
    for result in results:
        if result.status in ("cached", "skipped"):
            continue
        if not (result.prompt_tokens or result.completion_tokens or result.cost):
            continue
        usage = Usage(result.prompt_tokens, result.completion_tokens, cost=result.cost)
        engine.ledger.add(
            conversation=LEDGER_NAME,
            model=result.model or "?",
            usage=usage,
            cost=result.cost,
            seconds=result.seconds,
        )


def batch_report() -> Any:
    """The last batch (``ormagic.map`` or ``%%chat --each``), one row per input row.

    Columns: status (ok, cached, failed, skipped), error, prompt_tokens,
    completion_tokens, cost (what this run paid for the row), seconds. A DataFrame on the
    input's index for pandas input, else a list of dicts.
    """
    if _last is None:
        raise ConfigError("No batch has run in this session yet.")
    return _last.report()


def batch_results(job_id: str, *, progress: bool = True) -> Any:
    """Fetch a deferred job's answers: the rows' results in their input's shape.

    Answers not ready yet are missing (one line says how far the job is). For a job
    submitted in another session there are no rows to align with: a list of the text of
    each request the job holds, in the order they were sent (repeated and cached rows
    were never sent); re-running the same ``map`` gives them in the input's shape.
    """
    engine = default_engine()
    display = display_for(progress)
    known = _jobs.get(job_id)
    if known is not None:
        spec, rows = known
        key = engine.client_settings().api_key
        batch, _stats = run_deferred(spec, rows, key=key, display=display, submit=False)
        _record(engine, batch.results)
        return batch.result
    return _foreign_job(engine, job_id, display)


def _foreign_job(engine: Engine, job_id: str, display: Display) -> list[Any]:
    cache = AnswerCache(cache_dir())
    try:
        status, found = collect_job(
            job_id, settings=engine.client_settings(), cache=cache, prices=Prices()
        )
    finally:
        cache.close()
    display.say(status.line())
    _record(engine, list(found.values()))
    order = sorted(found, key=lambda custom_id: _row_number(custom_id))
    return [found[c].value if found[c].status == "ok" else None for c in order]


def _row_number(custom_id: str) -> tuple[int, str]:
    number = custom_id.rpartition("-")[2]
    return (int(number), custom_id) if number.isdigit() else (0, custom_id)
