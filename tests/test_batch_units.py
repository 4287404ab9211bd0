"""The batch layer's parts at their seams: templates, rows, schemas, the cache, prices, the
AIMD limit, the loop thread, and what the progress displays show."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import ipywidgets
import pandas as pd
import pytest
from pydantic import BaseModel, Field
from waiting import eventually

from ormagic.batch.cache import AnswerCache, CachedAnswer, cache_dir, cache_key
from ormagic.batch.limiter import AdaptiveLimit, LimitClosed
from ormagic.batch.loop import run_in_loop_thread
from ormagic.batch.pricing import Estimate, Prices
from ormagic.batch.report import BatchStats, summary_line
from ormagic.batch.rows import rows_of, shape_values
from ormagic.batch.runner import FailureStreak
from ormagic.batch.schema import SchemaMismatch, make_schema
from ormagic.batch.template import check_fields, fill, template_fields
from ormagic.errors import ConfigError
from ormagic.render.progress import NotebookProgress, TerminalProgress, progress_text

LINE_STYLE = "font-size:0.9em;color:#666;margin:0.2em 0"
WIDGETS = ipywidgets.widgets.widget._instances  # open widgets by model id

# -- templates ---------------------------------------------------------------------------


def test_template_fields_are_the_top_level_names_in_order() -> None:
    template = "Label {item} ({index}): {item[0]} {score:.2f} {{not a field}} {item}"
    assert template_fields(template) == ["item", "index", "score"]


def test_a_field_the_rows_lack_is_named_with_the_fields_they_have() -> None:
    with pytest.raises(ConfigError) as caught:
        check_fields("Rate {review} by {author} ({text})", ("text", "stars", "index"))
    assert str(caught.value) == (
        "The template uses {review}, {author}, which the rows do not have; "
        "they have: text, stars, index."
    )


@pytest.mark.parametrize(
    ("template", "start"),
    [
        ("Label {} please", "The template has a positional field {}"),
        ("A } b", "The template has a stray brace"),
    ],
)
def test_positional_fields_and_stray_braces_are_refused(template: str, start: str) -> None:
    with pytest.raises(ConfigError) as caught:
        template_fields(template)
    assert str(caught.value).startswith(start)


def test_fill_reads_items_formats_numbers_and_keeps_literal_braces() -> None:
    row = {"item": "abc", "score": 2.5}
    assert fill("{item[0]}/{score:.2f} {{x}}", row, 0) == "a/2.50 {x}"


def test_a_field_that_cannot_be_read_names_the_row() -> None:
    with pytest.raises(ConfigError) as caught:
        fill("{item.nope}", {"item": 3}, "r7")
    assert str(caught.value) == (
        "Row 'r7': cannot fill the template (AttributeError: 'int' object has no attribute 'nope')."
    )


# -- rows in, results out ------------------------------------------------------------------


def test_a_list_gives_items_and_positions_and_a_list_back() -> None:
    rows = rows_of(["a", "b"])
    assert rows.records == [{"item": "a", "index": 0}, {"item": "b", "index": 1}]
    assert shape_values(rows, ["x", None], None) == ["x", None]


def test_a_series_result_keeps_the_index_and_missing_rows_are_none() -> None:
    series = pd.Series(["p", "q", "r"], index=[30, 10, 20], name="text")
    rows = rows_of(series)
    assert rows.records[1] == {"item": "q", "index": 10}
    result = shape_values(rows, ["A", None, "C"], None)
    assert result.index.tolist() == [30, 10, 20]
    assert result.tolist() == ["A", None, "C"]
    assert result.dtype == object


def test_a_dataframe_gives_its_columns_as_fields() -> None:
    frame = pd.DataFrame({"text": ["hi", "yo"], 3: [1, 2]}, index=["a", "b"])
    rows = rows_of(frame)
    assert rows.fields == ("text", "3", "index")
    assert rows.records == [
        {"index": "a", "text": "hi", "3": 1},
        {"index": "b", "text": "yo", "3": 2},
    ]


def test_a_wide_dataframe_gives_each_row_only_the_columns_the_template_reads() -> None:
    # 50 columns and a template that reads one: a dict per row of one column, not fifty
    frame = pd.DataFrame({f"c{i}": [i, i + 1] for i in range(50)} | {"text": ["hi", "yo"]})
    rows = rows_of(frame, template_fields("Label {text} ({index})"))
    assert rows.fields == (*(f"c{i}" for i in range(50)), "text", "index")
    assert rows.records == [{"index": 0, "text": "hi"}, {"index": 1, "text": "yo"}]


def test_schema_results_are_columns_with_nullable_dtypes() -> None:
    rows = rows_of(pd.Series(["x", "y", "z"], index=[5, 6, 7]))
    values = [{"label": "pos", "score": 0.5, "n": 2}, None, {"label": "neg", "score": 1.0, "n": 3}]
    frame = shape_values(rows, values, {"label": "object", "score": "float64", "n": "Int64"})
    assert frame.columns.tolist() == ["label", "score", "n"]
    assert frame.index.tolist() == [5, 6, 7]
    assert frame["label"].tolist()[::2] == ["pos", "neg"]
    assert frame.loc[6].isna().all()
    assert str(frame["n"].dtype) == "Int64"
    assert frame["n"].tolist()[::2] == [2, 3]


def test_other_data_is_refused_with_what_is_accepted() -> None:
    with pytest.raises(ConfigError) as caught:
        rows_of({"a": 1})
    assert str(caught.value) == (
        "ormagic.map takes a list, a pandas Series or DataFrame, or a Dask collection, not dict."
    )


# -- schemas ------------------------------------------------------------------------------


def test_a_mapping_of_types_becomes_a_strict_json_schema() -> None:
    schema = make_schema(
        {
            "sentiment": Literal["pos", "neg"],
            "score": float,
            "tags": list[str],
            "note": str | None,
            "who": {"name": str, "age": int},
        }
    )
    assert schema.json_schema == {
        "type": "object",
        "properties": {
            "sentiment": {"enum": ["pos", "neg"]},
            "score": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "who": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name", "age"],
                "additionalProperties": False,
            },
        },
        "required": ["sentiment", "score", "tags", "note", "who"],
        "additionalProperties": False,
    }
    assert schema.response_format() == {
        "type": "json_schema",
        "json_schema": {"name": "row", "strict": True, "schema": schema.json_schema},
    }
    assert schema.dtypes() == {
        "sentiment": "object",
        "score": "float64",
        "tags": "object",
        "note": "object",
        "who": "object",
    }


def test_answers_are_validated_and_the_reason_says_where() -> None:
    schema = make_schema({"sentiment": str, "score": float})
    assert schema.parse('```json\n{"sentiment": "pos", "score": 1}\n```') == {
        "sentiment": "pos",
        "score": 1,
    }
    for answer, reason in [
        ('{"sentiment": "pos", "score": "high"}', "score: 'high' is not of type 'number'"),
        ('{"sentiment": "pos"}', "'score' is a required property"),
        (
            '{"sentiment": "pos", "score": 1, "x": 2}',
            "Additional properties are not allowed ('x' was unexpected)",
        ),
    ]:
        with pytest.raises(SchemaMismatch) as caught:
            schema.parse(answer)
        assert str(caught.value) == reason
    with pytest.raises(SchemaMismatch) as caught:
        schema.parse("Positive!")
    assert str(caught.value).startswith("the answer is not JSON (Expecting value")


def test_a_json_schema_dict_is_sent_as_given_and_checked_first() -> None:
    given = {"title": "Review label", "type": "object", "properties": {"label": {"type": "string"}}}
    schema = make_schema(given)
    assert schema.json_schema == given
    assert schema.name == "Review_label"
    with pytest.raises(ConfigError) as caught:
        make_schema({"type": "object", "properties": {"a": {"type": "strng"}}})
    assert str(caught.value).startswith("The JSON Schema is not valid: 'strng' is not valid")


def test_a_pydantic_model_is_a_schema_and_validates() -> None:
    class Review(BaseModel):
        sentiment: Literal["pos", "neg"]
        score: float

    schema = make_schema(Review)
    assert schema.name == "Review"
    assert schema.fields == ("sentiment", "score")
    assert schema.json_schema["additionalProperties"] is False
    assert schema.parse('{"sentiment": "neg", "score": 2}') == {"sentiment": "neg", "score": 2.0}
    with pytest.raises(SchemaMismatch) as caught:
        schema.parse('{"sentiment": "meh", "score": 2}')
    assert str(caught.value) == "sentiment: Input should be 'pos' or 'neg'"


def test_a_pydantic_field_with_an_alias_comes_back_under_the_name_the_model_was_given() -> None:
    # the JSON Schema sent names it "Score"; the answer, its column and what the cache
    # keeps (parsed again on a re-run) must use the same name
    class Rated(BaseModel):
        score: int = Field(alias="Score")
        label: str

    schema = make_schema(Rated)
    assert schema.fields == ("Score", "label")
    parsed = schema.parse('{"Score": 3, "label": "x"}')
    assert parsed == {"Score": 3, "label": "x"}
    assert schema.parse(json.dumps(parsed)) == parsed


def test_a_type_without_json_schema_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as caught:
        make_schema({"when": datetime})
    assert str(caught.value).startswith(
        "The schema's field 'when' has type <class 'datetime.datetime'>"
    )


# -- the cache ----------------------------------------------------------------------------

BODY: dict[str, Any] = {
    "model": "m/one",
    "messages": [{"role": "user", "content": "Label: tea"}],
    "stream": False,
    "max_tokens": 20,
}


def test_the_cache_key_follows_what_shapes_an_answer() -> None:
    key = cache_key("http://x/api/v1", BODY)
    assert cache_key("http://x/api/v1/", dict(reversed(list(BODY.items())))) == key
    assert cache_key("http://x/api/v1", {**BODY, "stream": True}) == key
    different = [
        cache_key("http://y/api/v1", BODY),
        cache_key("http://x/api/v1", {**BODY, "model": "m/two"}),
        cache_key("http://x/api/v1", {**BODY, "max_tokens": 21}),
        cache_key("http://x/api/v1", {**BODY, "temperature": 0.1}),
        cache_key(
            "http://x/api/v1", {**BODY, "messages": [{"role": "user", "content": "Label: tee"}]}
        ),
    ]
    assert len({key, *different}) == 6


def test_answers_survive_a_reopen_and_the_file_holds_neither_prompt_nor_key(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path)
    key = cache_key("http://x/api/v1", BODY)
    cache.put(key, CachedAnswer("Drink", "m/one", 5, 1, 0.25))
    cache.close()
    again = AnswerCache(tmp_path)
    assert again.get_many([key, "missing"]) == {key: CachedAnswer("Drink", "m/one", 5, 1, 0.25)}
    again.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"Label: tea" not in stored and b"Drink" in stored
    tables = sqlite3.connect(tmp_path / "answers.sqlite3").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    )
    assert [name for (name,) in tables] == ["answers", "pending"]


def test_the_cache_directory_comes_from_the_environment(tmp_path: Path) -> None:
    assert cache_dir({"ORMAGIC_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_dir({"XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/ormagic")


# -- prices ----------------------------------------------------------------------------------

PRICES = Prices(0.00000014, 0.00000028)


def test_the_estimate_line_says_rows_tokens_both_prices_and_the_budget() -> None:
    estimate = Estimate(
        rows=1000,
        to_send=790,
        cached=200,
        input_tokens=412_000,
        output_per_row=48,
        output_basis="a sample of 5 rows",
        prices=PRICES,
        model="deepseek/deepseek-v4-flash",
        budget=0.5,
    )
    assert estimate.line() == (
        "1,000 rows · 790 to send (200 cached, 10 repeated) · ~412k tokens in · "
        "~38k out (~48 a row from a sample of 5 rows) · ~$0.0683 at listed prices, "
        "~$0.0341 deferred · budget $0.50"
    )
    assert not estimate.over_budget


def test_over_the_budget_the_refusal_says_what_it_would_cost_and_what_to_do() -> None:
    estimate = Estimate(
        rows=10,
        to_send=10,
        input_tokens=100_000,
        output_per_row=1000,
        output_basis="max_tokens",
        prices=PRICES,
        model="m",
        budget=0.01,
    )
    assert estimate.over_budget
    assert estimate.refusal() == (
        "Not sent: 10 requests would cost about $0.0168 at listed prices (up to 1,000 output "
        "tokens each), over the budget of $0.01. Raise it with max_cost=… (or %config "
        "ChatMagics.max_cost = …), or lower max_tokens."
    )
    deferred = Estimate(**{**estimate.__dict__, "deferred": True})
    assert not deferred.over_budget  # half of $0.0168 fits in $0.01
    assert "~$0.0084 deferred (~$0.0168 at listed prices)" in deferred.line()


def test_an_unknown_price_is_said_and_never_refuses() -> None:
    estimate = Estimate(3, 3, 30, 10, "max_tokens", Prices(), "local/model", budget=0.0)
    assert "cost unknown (no listed price for local/model)" in estimate.line()
    assert not estimate.over_budget


# -- the AIMD limit -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_429_halves_the_limit_once_per_round_and_success_brings_it_back() -> None:
    clock = Clock()
    limit = AdaptiveLimit(8, clock=clock)
    assert limit.rate_limited(2.0, sent_at=99.0) == 2.0
    assert (limit.limit, limit.paused_until) == (4.0, 102.0)
    limit.rate_limited(None, sent_at=99.5)  # sent before the cut: the same round
    assert limit.limit == 4.0
    clock.now = 103.0
    limit.rate_limited(1.0, sent_at=102.5)  # sent after the cut: a new round
    assert (limit.limit, limit.cuts) == (2.0, 2)
    for _ in range(3):
        limit.succeeded()
    assert limit.limit == pytest.approx(2 + 1 / 2 + 1 / 2.5 + 1 / 2.9)
    for _ in range(200):
        limit.succeeded()
    assert limit.limit == 8.0  # never above the ceiling
    for _ in range(10):
        clock.now += 10
        limit.rate_limited(0.0, sent_at=clock.now)
    assert limit.limit == 1.0  # never below one in flight


def test_failures_alike_in_a_row_count_a_burst_sent_together_once() -> None:
    streak = FailureStreak()
    # eight requests sent at 0 fail together: one failure, whatever the concurrency
    assert [streak.failed("502", sent_at=0.0, now=1.0 + i / 10) for i in range(8)] == [1] * 8
    assert streak.failed("502", sent_at=1.0, now=2.0) == 2  # sent after: a new round
    assert streak.failed("400", sent_at=2.5, now=3.0) == 1  # another kind starts again
    streak.answered()
    assert streak.failed("400", sent_at=3.5, now=4.0) == 1  # an answer in between


def test_closing_the_limit_ends_every_wait_even_a_long_pause() -> None:
    async def scenario() -> list[str]:
        limit = AdaptiveLimit(1)
        limit.rate_limited(600.0, sent_at=0.0)  # everyone waits ten minutes
        waiting = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0)
        limit.close()
        try:
            await waiting
        except LimitClosed:
            return ["closed"]
        return ["sent"]

    assert asyncio.run(scenario()) == ["closed"]


def test_requests_wait_for_a_slot() -> None:
    async def scenario() -> list[str]:
        limit = AdaptiveLimit(1)
        seen = []
        await limit.acquire()
        second = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0.01)
        seen.append(f"waiting={not second.done()}")
        limit.release()
        await second
        seen.append(f"in_flight={limit.in_flight}")
        return seen

    assert asyncio.run(scenario()) == ["waiting=True", "in_flight=1"]


# -- the loop thread ------------------------------------------------------------------------


def test_an_interrupt_while_waiting_cancels_the_loop_and_is_raised() -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_in_loop_thread(forever, on_tick=interrupt, tick=0.01)
    eventually(cancelled.is_set, "the coroutine being cancelled")


def test_the_loop_threads_result_and_errors_come_back() -> None:
    async def answer() -> int:
        return 42

    async def broken() -> None:
        raise ValueError("nope")

    assert run_in_loop_thread(answer) == 42
    with pytest.raises(ValueError, match="nope"):
        run_in_loop_thread(broken)


# -- what the user reads ----------------------------------------------------------------------


def test_the_summary_line() -> None:
    stats = BatchStats(
        total=1000,
        done=888,
        cached=50,
        failed=12,
        skipped=50,
        prompt_tokens=412_345,
        completion_tokens=38_000,
        cost=0.068,
        elapsed=41.0,
    )
    stats.notes.append("stopped: max_cost reached ($0.07)")
    assert summary_line(stats) == (
        "1,000 rows · 50 cached · 12 failed · 50 not sent · 412k in / 38k out · $0.068 · "
        "41.0 s · stopped: max_cost reached ($0.07)"
    )


def running() -> BatchStats:
    stats = BatchStats(total=1000, to_send=950, done=400, cached=50, failed=3, in_flight=8)
    stats.prompt_tokens, stats.completion_tokens, stats.cost = 41_234, 4_100, 0.0068
    stats.elapsed = 25.0
    return stats


def test_the_progress_line() -> None:
    assert progress_text(running()) == (
        "453 / 1,000 rows · 50 cached · 3 failed · 8 in flight · 16.1 rows/s · 41k in / "
        "4.1k out · $0.0068 · ~33.9 s left"
    )


class Recorder:
    """A Publisher that keeps what it was asked to show."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Mapping[str, Any], str | None]] = []

    def display(
        self, bundle: Mapping[str, Any], *, display_id: str | None = None, metadata: Any = None
    ) -> None:
        self.calls.append(("display", bundle, display_id))

    def display_widget(self, widget: Any) -> None:
        raise AssertionError("the bar is displayed as a bundle, with a display id")

    def update(self, bundle: Mapping[str, Any], *, display_id: str) -> None:
        self.calls.append(("update", bundle, display_id))

    def clear(self) -> None:
        raise AssertionError("a batch never clears the cell")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield Recorder()


def test_the_notebook_bar_is_paced_and_leaves_the_summary_in_its_place(recorder: Recorder) -> None:
    clock = Clock()
    progress = NotebookProgress(recorder, clock=clock, min_interval=0.25, widgets=ipywidgets)
    progress.say("3 rows · 3 to send")
    stats = running()
    progress.update(stats)
    stats.done += 1
    clock.now += 0.1
    progress.update(stats)  # too soon: not drawn
    assert progress.redraws == 1
    clock.now += 0.2
    progress.update(stats)
    assert progress.redraws == 2
    kind, bundle, bar_id = recorder.calls[1]
    assert kind == "display" and bar_id is not None
    assert bundle["text/plain"].startswith("453 / 1,000 rows")
    model_id = bundle["application/vnd.jupyter.widget-view+json"]["model_id"]
    box = WIDGETS[model_id]
    bar, label = box.children
    assert (bar.value, bar.max) == (454, 1000)
    assert label.value.startswith("454 / 1,000 rows")
    stats.done = 1000 - stats.cached - stats.failed  # every row finished
    progress.finish(stats, "1,000 rows · $0.0068")
    # the bar shows the final count (however paced), then a static full bar and the
    # summary take its place
    assert (bar.value, bar.max) == (1000, 1000)
    kind, summary, where = recorder.calls[-1]
    assert (kind, where) == ("update", bar_id)
    assert summary["text/plain"] == "1,000 rows · $0.0068"
    assert summary["text/html"].endswith(f'<div style="{LINE_STYLE}">1,000 rows · $0.0068</div>')
    assert 'title="100%"' in summary["text/html"] and "width:100%" in summary["text/html"]
    assert recorder.calls[0][1]["text/plain"] == "3 rows · 3 to send"
    assert model_id not in WIDGETS  # closed: nothing left to go stale


def test_terminal_progress_prints_a_line_every_interval() -> None:
    clock, out = Clock(), io.StringIO()
    progress = TerminalProgress(out, clock=clock, interval=5.0)
    progress.say("estimate")
    progress.update(running())
    clock.now += 5.0
    progress.update(running())
    progress.finish(running(), "summary")
    assert out.getvalue().splitlines() == ["estimate", progress_text(running()), "summary"]


def test_a_stop_that_lands_while_the_bar_is_being_shown_still_leaves_the_summary() -> None:
    class Interrupted(Recorder):
        def display(self, bundle: Mapping[str, Any], **kwargs: Any) -> None:
            super().display(bundle, **kwargs)
            if "application/vnd.jupyter.widget-view+json" in bundle:
                raise KeyboardInterrupt  # after or before the frontend got it: unknown

    publisher = Interrupted()
    progress = NotebookProgress(publisher, clock=Clock(), widgets=ipywidgets)
    with pytest.raises(KeyboardInterrupt):
        progress.update(running())
    progress.finish(running(), "4 rows · interrupted")
    [(_, _, bar_id), replaced, said] = publisher.calls
    assert replaced == ("update", replaced[1], bar_id)  # the bar, if it arrived, is replaced
    assert said[0] == "display" and said[1]["text/plain"] == "4 rows · interrupted"
    assert replaced[1]["text/plain"] == "4 rows · interrupted"


def test_a_line_said_while_the_bar_is_up_reads_above_it_and_stays_there(
    recorder: Recorder,
) -> None:
    # the estimate after a sample comes once the bar is showing: it must not end up under
    # the bar (and under the summary) in the cell
    progress = NotebookProgress(recorder, clock=Clock(), widgets=ipywidgets)
    progress.update(running())
    [(_, bundle, bar_id)] = recorder.calls
    box = WIDGETS[bundle["application/vnd.jupyter.widget-view+json"]["model_id"]]
    progress.say("1,000 rows · 1,000 to send · ~41k tokens in")
    notes, bar, label = box.children
    assert (
        notes.value
        == f'<div style="{LINE_STYLE}">1,000 rows · 1,000 to send · ~41k tokens in</div>'
    )
    assert isinstance(bar, ipywidgets.IntProgress) and label.value.startswith("453 / 1,000")
    progress.finish(running(), "1,000 rows · $0.0068")
    assert len(recorder.calls) == 2  # nothing displayed below the bar: it was replaced
    kind, summary, where = recorder.calls[-1]
    assert (kind, where) == ("update", bar_id)
    assert (
        summary["text/plain"] == "1,000 rows · 1,000 to send · ~41k tokens in\n1,000 rows · $0.0068"
    )
    html = summary["text/html"]
    assert html.index("~41k tokens in") < html.index("ormagic-done-bar") < html.index("$0.0068")
    assert all(w.comm is None for w in (notes, bar, label, box))  # closed: none go stale


def test_a_row_in_flight_holds_at_least_what_the_dearest_row_cost() -> None:
    from ormagic.batch.runner import Budget

    budget = Budget(cap=1.0)
    first = budget.admit(0.01)
    assert first == 0.01
    budget.settle(first, 0.3)  # far dearer than estimated
    held = [budget.admit(0.01), budget.admit(0.01)]
    assert held == [0.3, 0.3]
    assert budget.admit(0.01) is None  # 0.3 spent + 0.6 held + 0.3 > 1.0
    for amount in held:
        budget.settle(amount, 0.2)
    assert (budget.spent, budget.reserved) == (pytest.approx(0.7), pytest.approx(0.0))
