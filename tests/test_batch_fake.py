"""ormagic.map against the loopback fake OpenRouter: shapes, schemas, failures, 429s, the
price and the cap, the cache, the deferred batch endpoint."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from waiting import eventually

import ormagic
from ormagic.batch.report import BatchStats, RowResult
from ormagic.batch.runner import Budget, Policy, RowRunner, RowTask
from ormagic.client.aio import AsyncChatClient
from ormagic.client.settings import ClientSettings, Secret
from ormagic.engine.engine import default_engine, set_default_engine
from ormagic.errors import BatchStoppedError, BudgetExceededError, ConfigError
from ormagic.testing._replies import content_text, request_messages
from ormagic.testing.fake_openrouter import (
    FAKE_API_KEY,
    ErrorReply,
    FakeOpenRouter,
    RecordedRequest,
    Reply,
    StreamReply,
)


@pytest.fixture
def fake(
    fake_env: FakeOpenRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FakeOpenRouter:
    """The fake server and a fresh cache directory (each test starts with no session
    engine: conftest)."""
    monkeypatch.setenv("ORMAGIC_CACHE_DIR", str(tmp_path / "cache"))
    return fake_env


def prompt_of(body: Any) -> str:
    return content_text(request_messages(body)[-1]["content"])


def echo(prefix: str = "re: ") -> Callable[[dict[str, Any]], Reply]:
    """Answer each row with its own prompt (so answers can be matched to rows)."""

    def respond(body: dict[str, Any]) -> Reply:
        return StreamReply(text=prefix + prompt_of(body))

    return respond


def prompts(requests: list[RecordedRequest]) -> list[str]:
    return [prompt_of(r.body) for r in requests]


# -- shapes ----------------------------------------------------------------------------------


def answer_in_order(fake: FakeOpenRouter, prompts: list[str]) -> threading.Thread:
    """Hold every prompt but the first until the one before it was answered: the answers
    then come in this order, however the requests are scheduled."""
    gates = {p: fake.hold(lambda body, p=p: prompt_of(body) == p) for p in prompts[1:]}

    def answered(prompt: str) -> bool:
        return any(
            prompt_of(r.body) == prompt and r.ended is not None for r in fake.chat_requests()
        )

    def release() -> None:
        try:
            for before, then in itertools.pairwise(prompts):
                eventually(lambda before=before: answered(before), f"{before!r} answered")
                gates[then].set()
        finally:
            for gate in gates.values():
                gate.set()

    releasing = threading.Thread(target=release, daemon=True)
    releasing.start()
    return releasing


def test_a_list_comes_back_as_a_list_in_row_order(fake: FakeOpenRouter) -> None:
    # the first row answers last: order comes from the rows, not from the answers
    fake.respond = echo()
    releasing = answer_in_order(fake, ["Label c", "Label a", "Label b"])
    result = ormagic.map("Label {item}", ["b", "a", "c"], max_tokens=30, progress=False)
    releasing.join(timeout=60)
    assert result == ["re: Label b", "re: Label a", "re: Label c"]
    by_end = sorted(fake.chat_requests(), key=lambda r: r.ended or float("inf"))
    assert prompts(by_end) == ["Label c", "Label a", "Label b"]
    body = fake.chat_requests()[0].body
    assert body["stream"] is False
    assert body["max_tokens"] == 30
    assert body["model"] == "deepseek/deepseek-v4-flash"
    assert "session_id" not in body and "response_format" not in body


def test_a_series_comes_back_aligned_on_its_index(fake: FakeOpenRouter) -> None:
    fake.respond = echo()
    series = pd.Series(["tea", "coffee", "water"], index=["z", "x", "y"])
    result = ormagic.map("{index}: {item}", series, max_tokens=30, progress=False)
    assert result.index.tolist() == ["z", "x", "y"]
    assert result.to_dict() == {"z": "re: z: tea", "x": "re: x: coffee", "y": "re: y: water"}


def test_a_dataframe_fills_the_template_from_its_columns(fake: FakeOpenRouter) -> None:
    fake.respond = echo()
    frame = pd.DataFrame({"name": ["Ann", "Bo"], "food": ["figs", "kale"]}, index=[10, 5])
    result = ormagic.map(
        "{name} likes {food}", frame, max_tokens=30, system="Be brief.", progress=False
    )
    assert result.to_dict() == {10: "re: Ann likes figs", 5: "re: Bo likes kale"}
    assert fake.chat_requests()[0].body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_a_missing_field_is_refused_before_anything_is_sent(fake: FakeOpenRouter) -> None:
    frame = pd.DataFrame({"text": ["a"]})
    with pytest.raises(ConfigError) as caught:
        ormagic.map("Label {review}", frame, max_tokens=30, progress=False)
    assert str(caught.value) == (
        "The template uses {review}, which the rows do not have; they have: text, index."
    )
    assert fake.chat_requests() == []


# -- structured output ---------------------------------------------------------------------


def test_schema_answers_become_columns(fake: FakeOpenRouter) -> None:
    answers = {
        "Rate: great": {"label": "pos", "score": 0.9},
        "Rate: awful": {"label": "neg", "score": 0.1},
    }
    fake.respond = lambda body: StreamReply(text=json.dumps(answers[prompt_of(body)]))
    frame = pd.DataFrame({"review": ["great", "awful"]}, index=["r1", "r2"])
    result = ormagic.map(
        "Rate: {review}",
        frame,
        schema={"label": str, "score": float},
        max_tokens=50,
        progress=False,
    )
    assert result.columns.tolist() == ["label", "score"]
    assert result.to_dict("index") == {
        "r1": {"label": "pos", "score": 0.9},
        "r2": {"label": "neg", "score": 0.1},
    }
    assert str(result["score"].dtype) == "float64"
    body = fake.chat_requests()[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["provider"] == {"require_parameters": True}


def test_a_mismatch_is_retried_once_with_the_reason_then_the_row_fails(
    fake: FakeOpenRouter,
) -> None:
    tries: Counter[str] = Counter()

    def respond(body: dict[str, Any]) -> Reply:
        prompt = request_messages(body)[0]["content"]
        tries[prompt] += 1
        if prompt == "Rate: stubborn" or tries[prompt] == 1:
            return StreamReply(text='{"label": 3}')
        return StreamReply(text='{"label": "fixed"}')

    fake.respond = respond
    result = ormagic.map(
        "Rate: {item}", ["stubborn", "learns"], schema={"label": str}, max_tokens=50, progress=False
    )
    assert result == [None, {"label": "fixed"}]
    report = ormagic.batch_report()
    assert [r["status"] for r in report] == ["failed", "ok"]
    assert report[0]["error"] == "does not match the schema: label: 3 is not of type 'string'"
    assert tries == {"Rate: stubborn": 2, "Rate: learns": 2}
    retry = next(r.body for r in fake.chat_requests() if len(r.body["messages"]) == 3)
    assert retry["messages"][1] == {"role": "assistant", "content": '{"label": 3}'}
    assert "label: 3 is not of type 'string'" in retry["messages"][2]["content"]


def test_a_json_answer_cut_at_max_tokens_is_not_corrected_and_says_to_raise_it(
    fake: FakeOpenRouter,
) -> None:
    fake.respond = lambda body: StreamReply(text='{"label": "somethi', finish_reason="length")
    result = ormagic.map("Label {item}", ["a"], max_tokens=5, schema={"label": str}, progress=False)
    assert result == [None]
    assert ormagic.batch_report()[0]["error"] == "unfinished JSON (cut at max_tokens: raise it)"
    assert len(fake.chat_requests()) == 1  # a correction would be cut at max_tokens again


# -- failures ------------------------------------------------------------------------------


def test_failed_rows_are_recorded_and_the_batch_goes_on(fake: FakeOpenRouter) -> None:
    ormagic.configure(max_retries=1)

    def respond(body: dict[str, Any]) -> Reply:
        prompt = prompt_of(body)
        if prompt == "Label boom":
            return ErrorReply(502, "Provider returned error")
        if prompt == "Label bad":
            return ErrorReply(400, "Invalid thing")
        return StreamReply(text="fine")

    fake.respond = respond
    result = ormagic.map(
        "Label {item}", ["ok1", "boom", "bad", "ok2"], max_tokens=20, progress=False
    )
    assert result == ["fine", None, None, "fine"]
    report = ormagic.batch_report()
    assert [r["status"] for r in report] == ["ok", "failed", "failed", "ok"]
    assert report[1]["error"] == (
        "OpenRouter error 502: Provider returned error. Try again or choose another model."
    )
    assert report[2]["error"] == "Bad request: Invalid thing. Check the model id and options."
    sent = Counter(prompts(fake.chat_requests()))
    assert sent == {"Label ok1": 1, "Label boom": 2, "Label bad": 1, "Label ok2": 1}


def test_a_bad_key_stops_the_whole_batch(
    fake: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-wrong")
    set_default_engine(None)
    with pytest.raises(BatchStoppedError) as raised:
        ormagic.map("Label {item}", list("abcdefgh"), max_tokens=20, concurrency=2, progress=False)
    assert str(raised.value) == (
        "Stopped after 0 of 8 rows: OpenRouter rejected the API key (User not found.). Check "
        "OPENROUTER_API_KEY. The answers are in this error's .result and in the cache: run it "
        "again to send the rest."
    )
    assert raised.value.result == [None] * 8
    report = ormagic.batch_report()
    assert (
        report[0]["error"]
        == "OpenRouter rejected the API key (User not found.). Check OPENROUTER_API_KEY."
    )
    assert {r["status"] for r in report[2:]} == {"skipped"}
    assert len(fake.chat_requests()) == 2  # the two in flight; nothing after


def test_a_429_burst_pauses_the_batch_for_retry_after(fake: FakeOpenRouter) -> None:
    # the two requests in flight at first both get a 429 (the queue answers first)
    fake.enqueue(
        ErrorReply(429, "Rate limit exceeded", retry_after="1"),
        ErrorReply(429, "Rate limit exceeded", retry_after="1"),
    )
    fake.respond = echo()
    rows = [f"r{i}" for i in range(6)]
    result = ormagic.map("{item}", rows, max_tokens=20, concurrency=2, progress=False)
    assert result == [f"re: {row}" for row in rows]
    assert [r["status"] for r in ormagic.batch_report()] == ["ok"] * 6  # 429s are not failures
    requests = sorted(fake.chat_requests(), key=lambda r: r.received_at)
    assert len(requests) == 8
    limited, after = requests[:2], requests[2:]
    # nothing was sent until Retry-After had passed since the 429s
    assert min(r.received_at for r in after) - max(r.received_at for r in limited) >= 1.0
    assert sorted(prompts(limited)) == ["r0", "r1"]
    assert sorted(prompts(after)) == rows  # each row once more: r0 and r1 tried again


def test_a_429_resetting_beyond_the_longest_pause_stops_the_batch_saying_when(
    fake: FakeOpenRouter,
) -> None:
    # the free models' daily quota: no Retry-After, X-RateLimit-Reset in milliseconds
    reset = datetime(2099, 1, 2, 3, 4, tzinfo=timezone.utc)
    headers = {"X-RateLimit-Reset": str(int(reset.timestamp() * 1000))}
    fake.respond = lambda body: ErrorReply(429, "free-models-per-day", headers=headers)
    rows = [f"t{i}" for i in range(20)]
    with pytest.raises(BatchStoppedError) as raised:
        ormagic.map("Label {item}", rows, max_tokens=10, concurrency=1, progress=False)
    assert raised.value.result == [None] * 20
    message = (
        "Rate limited (free-models-per-day). "
        "Try again after 2099-01-02 03:04 UTC, when the limit resets."
    )
    report = ormagic.batch_report()
    assert (report[0]["status"], report[0]["error"]) == ("failed", message)
    assert {(r["status"], r["error"]) for r in report[1:]} == {("skipped", f"not sent: {message}")}
    assert len(fake.chat_requests()) == 1  # nothing after it: the rest is left for a re-run


def test_a_400_every_row_gets_stops_the_batch_after_five(fake: FakeOpenRouter) -> None:
    fake.respond = lambda body: ErrorReply(400, "max_tokens is too large")
    rows = [f"t{i}" for i in range(20)]
    with pytest.raises(BatchStoppedError) as raised:
        ormagic.map("Label {item}", rows, max_tokens=10, concurrency=1, progress=False)
    assert raised.value.result == [None] * 20
    error = "Bad request: max_tokens is too large. Check the model id and options."
    assert str(raised.value).startswith(
        f"Stopped after 0 of 20 rows: 5 requests in a row failed alike: {error} The answers"
    )
    report = ormagic.batch_report()
    assert [(r["status"], r["error"]) for r in report[:5]] == [("failed", error)] * 5
    stopped = f"not sent: 5 requests in a row failed alike: {error}"
    assert {(r["status"], r["error"]) for r in report[5:]} == {("skipped", stopped)}
    assert len(fake.chat_requests()) == 5
    # the rows not sent are not kept as failures: a re-run sends them
    fake.reset()
    fake.respond = echo()
    again = ormagic.map("Label {item}", rows, max_tokens=10, concurrency=1, progress=False)
    assert again == [f"re: Label {row}" for row in rows]


def test_an_unreachable_server_stops_the_batch_after_five(
    fake: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("OPENROUTER_BASE_URL", f"http://127.0.0.1:{port}/api/v1")
    set_default_engine(None)
    ormagic.configure(max_retries=0)
    rows = [f"t{i}" for i in range(64)]
    with pytest.raises(BatchStoppedError) as raised:
        ormagic.map("Label {item}", rows, max_tokens=10, concurrency=1, progress=False)
    assert raised.value.result == [None] * 64
    error = (
        f"Could not reach http://127.0.0.1:{port}/api/v1: All connection attempts failed. "
        "Check your network or OPENROUTER_BASE_URL."
    )
    report = ormagic.batch_report()
    assert [(r["status"], r["error"]) for r in report[:5]] == [("failed", error)] * 5
    stopped = f"not sent: 5 requests in a row failed alike: {error}"
    assert {(r["status"], r["error"]) for r in report[5:]} == {("skipped", stopped)}


def test_a_persistent_429_without_retry_after_stops_the_batch(fake: FakeOpenRouter) -> None:
    # the runner itself, with short pauses: through ormagic.map they take 1 + 2 + 4 + 8 s
    fake.respond = lambda body: ErrorReply(429, "Rate limit exceeded")
    settings = ClientSettings(api_key=Secret(FAKE_API_KEY), base_url=fake.base_url)
    tasks = [
        RowTask(f"k{i}", {"model": "m/x", "messages": [{"role": "user", "content": f"r{i}"}]}, i)
        for i in range(10)
    ]
    results: dict[str, RowResult] = {}
    stats = BatchStats(total=10)
    policy = Policy(concurrency=1, pause_initial=0.001, pause_max=0.001)

    async def main() -> RowRunner:
        async with AsyncChatClient(settings) as client:
            runner = RowRunner(client, stats, Budget(None), policy=policy)
            await runner.run(tasks, results)
            return runner

    runner = asyncio.run(main())
    message = "Rate limited (Rate limit exceeded). Try again shortly."
    assert runner.stop_reason == f"5 requests in a row failed alike: {message}"
    assert list(results) == ["k0"]  # the row tried five times; the others were not sent
    assert (results["k0"].status, results["k0"].error) == ("failed", message)
    assert len(fake.chat_requests()) == 5


# -- price and cap -------------------------------------------------------------------------


def test_over_budget_nothing_is_sent_and_one_line_says_why(fake: FakeOpenRouter) -> None:
    with pytest.raises(BudgetExceededError) as caught:
        ormagic.map(
            "Label {item}", ["a", "b", "c"], max_tokens=1000, max_cost=0.000001, progress=False
        )
    message = str(caught.value)
    assert message.startswith("Not sent: 3 requests would cost about $0.000")
    assert (
        "at listed prices (up to 1,000 output tokens each), over the budget of $0.000001."
        in message
    )
    assert message.endswith(
        "Raise it with max_cost=… (or %config ChatMagics.max_cost = …), or lower max_tokens."
    )
    assert fake.chat_requests() == []


def test_the_sessions_max_cost_is_the_default_budget(fake: FakeOpenRouter) -> None:
    ormagic.configure(max_cost=0.000001)
    with pytest.raises(BudgetExceededError, match=r"over the budget of \$0\.000001"):
        ormagic.map("Label {item}", ["a", "b"], max_tokens=1000, progress=False)
    assert fake.chat_requests() == []


def test_the_cost_line_comes_before_the_answers(
    fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.respond = echo()
    ormagic.map("Label {item}", ["a", "b", "a"], max_tokens=100, max_cost=1.0)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("3 rows · 2 to send (1 repeated) · ~")
    assert "out (≤ 100 a row: max_tokens) · ~$0.0000" in lines[0]
    assert lines[0].endswith("deferred · budget $1.00")
    assert lines[1].startswith("3 rows · 1 cached · ")
    assert len(fake.chat_requests()) == 2  # a repeated prompt is asked once


def test_the_output_is_estimated_from_a_sample_when_max_tokens_is_not_given(
    fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.respond = echo()
    rows = [f"row {i}" for i in range(8)]
    ormagic.map("{item}", rows, progress=False)
    assert "a row from a sample of 5 rows) · " in capsys.readouterr().err
    first = sorted(fake.chat_requests(), key=lambda r: r.received_at)[:5]
    # the sample is spread through the rows, not their first five
    assert sorted(prompts(first)) == ["row 0", "row 1", "row 3", "row 4", "row 6"]
    assert fake.chat_requests()[0].body["max_tokens"] == 16384


def test_a_sample_spread_through_the_rows_sees_the_long_answers_at_the_end(
    fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    # a table sorted by length: the first rows' answers are short, the last half's long
    def respond(body: dict[str, Any]) -> Reply:
        long = int(prompt_of(body).split()[-1]) >= 50
        tokens = 1000 if long else 10
        usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": tokens + 10}
        return StreamReply(text="x", usage=usage)

    fake.respond = respond
    ormagic.map("Row {item}", list(range(100)), concurrency=1, progress=False)
    # rows 0, 20, 40, 60 and 80: (10 + 10 + 10 + 1000 + 1000) / 5 = 406 tokens a row
    assert "(~406 a row from a sample of 5 rows)" in capsys.readouterr().err


def test_the_cap_reached_mid_batch_stops_cleanly(fake: FakeOpenRouter) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12, "cost": 0.001}
    fake.respond = lambda body: StreamReply(text="label", usage=usage)
    rows = [f"r{i}" for i in range(10)]
    with pytest.raises(BatchStoppedError) as raised:
        ormagic.map("{item}", rows, max_tokens=5, max_cost=0.0035, concurrency=1, progress=False)
    assert str(raised.value).startswith("Stopped after 3 of 10 rows: max_cost reached ($0.0035).")
    # a row goes out while what was spent plus what it holds fits: its estimate (a few
    # millionths here), or what the dearest row so far cost if more. 3 rows spent $0.003;
    # a 4th would hold $0.001 more, over the cap: the batch never spends past it
    assert raised.value.result == ["label"] * 3 + [None] * 7
    report = ormagic.batch_report()
    assert [r["status"] for r in report] == ["ok"] * 3 + ["skipped"] * 7
    assert report[3]["error"] == "not sent: max_cost reached ($0.0035)"
    assert len(fake.chat_requests()) == 3
    assert default_engine().ledger.by_conversation()["batch"].cost == pytest.approx(0.003)


# -- the cache -------------------------------------------------------------------------------


def test_a_rerun_sends_only_the_rows_it_has_not_seen(fake: FakeOpenRouter) -> None:
    broken = {"Label c"}

    def respond(body: dict[str, Any]) -> Reply:
        if prompt_of(body) in broken:
            return ErrorReply(400, "Try later")
        return StreamReply(text="ok " + prompt_of(body))

    fake.respond = respond
    first = ormagic.map("Label {item}", ["a", "b", "c"], max_tokens=20, progress=False)
    assert first == ["ok Label a", "ok Label b", None]
    broken.clear()
    fake.reset()  # forgets the requests, and the settings: respond is set again
    fake.respond = respond
    second = ormagic.map("Label {item}", ["a", "b", "c", "d", "e"], max_tokens=20, progress=False)
    assert second == [f"ok Label {x}" for x in "abcde"]
    assert sorted(prompts(fake.chat_requests())) == ["Label c", "Label d", "Label e"]
    report = ormagic.batch_report()
    assert [r["status"] for r in report] == ["cached", "cached", "ok", "ok", "ok"]
    assert report[0]["cost"] == 0.0
    # anything that shapes the answer is a different question
    fake.reset()
    ormagic.map("Label {item}", ["a"], max_tokens=21, progress=False)
    assert len(fake.chat_requests()) == 1


def test_without_the_cache_everything_is_sent_and_nothing_kept(
    fake: FakeOpenRouter, tmp_path: Path
) -> None:
    fake.respond = echo()
    for _ in range(2):
        ormagic.map("{item}", ["a", "b"], max_tokens=20, cache=False, progress=False)
    assert len(fake.chat_requests()) == 4
    assert not (tmp_path / "cache").exists()


def test_the_cache_file_never_holds_the_key(fake: FakeOpenRouter, tmp_path: Path) -> None:
    fake.respond = echo()
    ormagic.map("Secret-free {item}", ["a", "b"], max_tokens=20, progress=False)
    stored = b"".join(p.read_bytes() for p in (tmp_path / "cache").iterdir())
    assert b"re: Secret-free a" in stored
    assert FAKE_API_KEY.encode() not in stored and b'Secret-free a"' not in stored


def test_an_error_that_quotes_the_key_shows_it_redacted_and_obeys_no_escape_code(
    fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    # a proxy echoing the Authorization header: the row's error, the report and the
    # stopped line say [REDACTED], as a single question's error does
    def respond(body: dict[str, Any]) -> Reply:
        if prompt_of(body) == "Label a":
            return ErrorReply(400, f"bad header Authorization: Bearer {FAKE_API_KEY}\x1b[31m")
        return ErrorReply(401, f"bad key {FAKE_API_KEY}")

    fake.respond = respond
    with pytest.raises(BatchStoppedError) as raised:
        ormagic.map("Label {item}", ["a", "b"], max_tokens=20, concurrency=1, progress=True)
    report = ormagic.batch_report()
    assert report[0]["error"] == (
        "Bad request: bad header Authorization: Bearer [REDACTED]\u241b[31m. Check the model id "
        "and options."
    )
    shown = str(raised.value) + json.dumps(report) + "".join(capsys.readouterr())
    assert FAKE_API_KEY not in shown and FAKE_API_KEY[-16:] not in shown
    assert "\x1b" not in shown and "[REDACTED]" in str(raised.value)


def test_a_slow_row_does_not_lock_the_cache_for_another_batch(fake: FakeOpenRouter) -> None:
    # one batch keeps answers, then waits on a row the server holds; meanwhile another
    # batch on the same cache file (another notebook, say) keeps all of its answers
    fake.respond = echo()
    gate = fake.hold(lambda body: prompt_of(body) == "Label slow")
    first: list[Any] = []
    worker = threading.Thread(
        target=lambda: first.append(
            ormagic.map(
                "Label {item}", ["a", "b", "slow"], max_tokens=20, concurrency=1, progress=False
            )
        )
    )
    worker.start()
    try:
        # one row at a time: "slow" is sent only once "a" and "b" were kept
        eventually(lambda: "Label slow" in prompts(fake.chat_requests()), "the slow row sent")
        second = ormagic.map("Label {item}", ["c", "d"], max_tokens=20, progress=False)
        assert second == ["re: Label c", "re: Label d"]
        assert [r["status"] for r in ormagic.batch_report()] == ["ok", "ok"]
    finally:
        gate.set()
        worker.join()
    assert first == [["re: Label a", "re: Label b", "re: Label slow"]]
    fake.reset()
    again = ormagic.map("Label {item}", ["a", "b", "slow", "c", "d"], max_tokens=20, progress=False)
    assert again == [f"re: Label {x}" for x in ("a", "b", "slow", "c", "d")]
    assert fake.chat_requests() == []  # every answer of both batches was kept


def test_a_cache_that_cannot_keep_answers_costs_a_line_not_the_answers(
    fake: FakeOpenRouter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.respond = echo()
    ormagic.map("Label {item}", ["a"], max_tokens=20, progress=False)  # creates the file
    with sqlite3.connect(tmp_path / "cache" / "answers.sqlite3") as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON answers "
            "BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
        )
    capsys.readouterr()
    result = ormagic.map("Label {item}", ["a", "b", "c"], max_tokens=20, progress=False)
    assert result == ["re: Label a", "re: Label b", "re: Label c"]
    assert [r["status"] for r in ormagic.batch_report()] == ["cached", "ok", "ok"]
    lines = capsys.readouterr().err.splitlines()
    assert lines[1] == (
        "The answer cache could not keep an answer (disk is full): the answers are in the "
        "result, but a re-run sends the rows answered from here on again."
    )
    assert len(lines) == 3  # the cost line, that line once, the summary


# -- deferred: OpenRouter's batch endpoint ----------------------------------------------------


def test_deferred_rows_go_to_the_batch_endpoint_and_come_back_through_the_cache(
    fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.respond = echo("later: ")
    rows = ["a", "b", "c"]
    batch = ormagic.map("Label {item}", rows, max_tokens=20, deferred=True, progress=False)
    assert batch.job_id is not None and batch.job_id.startswith("batch_")
    assert (batch.status, batch.ready, batch.result) == ("validating", 0, [None, None, None])
    err = capsys.readouterr().err
    assert "deferred (~$0.0000" in err and "at listed prices)" in err
    assert f"batch job {batch.job_id}: validating (0 of 3 done)" in err
    [post] = [r for r in fake.requests if r.path == "/api/beta/batches"]
    assert list(json.loads(post.raw_body)) == ["endpoint", "model", "requests"]
    assert post.body["endpoint"] == "/v1/chat/completions"
    assert post.body["model"] == "deepseek/deepseek-v4-flash"
    first = post.body["requests"][0]
    assert first["custom_id"] == "row-0"
    assert set(first["body"]) == {"messages", "max_tokens"}
    assert fake.chat_requests() == []

    # each poll moves the job one step: in_progress, finalizing, completed
    assert ormagic.batch_results(batch.job_id) == [None, None, None]
    assert ormagic.batch_results(batch.job_id) == [None, None, None]
    assert ormagic.batch_results(batch.job_id) == [
        "later: Label a",
        "later: Label b",
        "later: Label c",
    ]
    job_cost = fake.batches.jobs[batch.job_id].usage["cost"]
    assert default_engine().ledger.by_conversation()["batch"].cost == pytest.approx(job_cost)

    # re-running finds everything in the cache: nothing is submitted or sent
    again = ormagic.map("Label {item}", rows, max_tokens=20, deferred=True, progress=False)
    assert (again.job_id, again.status, again.result) == (
        None,
        "completed",
        ["later: Label a", "later: Label b", "later: Label c"],
    )
    assert ormagic.map("Label {item}", rows, max_tokens=20, progress=False) == again.result
    assert len([r for r in fake.requests if r.path == "/api/beta/batches"]) == 1
    assert fake.chat_requests() == []


def test_rows_a_deferred_job_failed_are_submitted_again(fake: FakeOpenRouter) -> None:
    fake.respond = lambda body: (
        ErrorReply(500, "upstream broke")
        if prompt_of(body) == "Label b"
        else StreamReply(text="done")
    )
    batch = ormagic.map("Label {item}", ["a", "b"], max_tokens=20, deferred=True, progress=False)
    for _ in range(3):
        result = ormagic.batch_results(batch.job_id)
    assert result == ["done", None]
    fake.respond = echo()
    retry = ormagic.map("Label {item}", ["a", "b"], max_tokens=20, deferred=True, progress=False)
    assert retry.job_id != batch.job_id and retry.ready == 1
    [_, second] = [r for r in fake.requests if r.path == "/api/beta/batches"]
    assert [item["custom_id"] for item in second.body["requests"]] == ["row-0"]
    assert prompt_of(second.body["requests"][0]["body"]) == "Label b"


def test_a_job_that_expired_leaves_its_rows_to_be_sent_again(fake: FakeOpenRouter) -> None:
    fake.batches.end_with = "expired"
    batch = ormagic.map("Label {item}", ["a"], max_tokens=20, deferred=True, progress=False)
    for _ in range(3):
        ormagic.batch_results(batch.job_id)
    fake.batches.end_with = "completed"
    again = ormagic.map("Label {item}", ["a"], max_tokens=20, deferred=True, progress=False)
    assert again.job_id is not None and again.job_id != batch.job_id


def test_a_job_the_server_forgot_is_forgotten_and_its_rows_submitted_again(
    fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    first = ormagic.map("Label {item}", ["x", "y"], max_tokens=20, deferred=True, progress=False)
    fake.batches.reset()  # deleted on the server (or the key changed accounts)
    capsys.readouterr()
    again = ormagic.map(
        "Label {item}", ["x", "y", "z"], max_tokens=20, deferred=True, progress=False
    )
    assert capsys.readouterr().err.splitlines()[0] == (
        f"batch job {first.job_id} is unknown to the server (deleted, or another account's): "
        "forgotten; its 2 rows are submitted again."
    )
    assert again.job_id is not None and again.job_id != first.job_id
    [_, second] = [r for r in fake.requests if r.path == "/api/beta/batches"]
    assert [prompt_of(item["body"]) for item in second.body["requests"]] == [
        "Label x",
        "Label y",
        "Label z",
    ]


def test_a_job_that_cannot_be_polled_is_named_and_the_others_are_polled(
    fake: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.respond = echo()
    stuck = ormagic.map("Label {item}", ["x"], max_tokens=20, deferred=True, progress=False)
    other = ormagic.map("Label {item}", ["y"], max_tokens=20, deferred=True, progress=False)
    fake.batches.failing[str(stuck.job_id)] = 500
    for _ in range(3):
        batch = ormagic.map(
            "Label {item}", ["x", "y"], max_tokens=20, deferred=True, progress=False
        )
    assert batch.job_id is None  # the rows of the job not polled still wait for it
    assert batch.result == [None, "re: Label y"]
    assert f"batch job {stuck.job_id} could not be polled: OpenRouter error 500: " in (
        capsys.readouterr().err
    )
    assert batch.results[0].error == f"waiting for batch job {stuck.job_id} (not polled)"
    assert other.job_id in fake.batches.jobs


def test_deferred_repeated_rows_are_counted_once_in_the_session(fake: FakeOpenRouter) -> None:
    fake.respond = echo()
    batch = ormagic.map(
        "Label {item}", ["a", "a", "a", "b"], max_tokens=20, deferred=True, progress=False
    )
    for _ in range(3):
        result = ormagic.batch_results(batch.job_id)
    assert result == ["re: Label a", "re: Label a", "re: Label a", "re: Label b"]
    job_cost = fake.batches.jobs[str(batch.job_id)].usage["cost"]
    assert job_cost > 0
    assert default_engine().ledger.by_conversation()["batch"].cost == pytest.approx(job_cost)


def test_a_deferred_json_answer_cut_at_max_tokens_says_to_raise_it(fake: FakeOpenRouter) -> None:
    # the same words as a live row: deferred rows go through the same function
    fake.respond = lambda body: StreamReply(text='{"label": "somethi', finish_reason="length")
    for _ in range(4):  # submitted, then polled: in_progress, finalizing, completed
        batch = ormagic.map(
            "Label {item}",
            ["a"],
            max_tokens=5,
            schema={"label": str},
            deferred=True,
            progress=False,
        )
    assert batch.result == [None]
    assert batch.results[0].status == "failed"
    assert batch.results[0].error == "unfinished JSON (cut at max_tokens: raise it)"
