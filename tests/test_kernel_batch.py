"""%%chat --each and ormagic.map in a real kernel: the bar, the lines a saved notebook keeps,
and the stop button (finished rows kept, connections closed, a re-run sends the rest)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from kernel_support import Execution, Kernel, start_kernel
from waiting import eventually

from ormagic.testing._replies import content_text, request_messages
from ormagic.testing.fake_openrouter import FakeOpenRouter, Reply, StreamReply

pytestmark = pytest.mark.timeout(180)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SUMMARY = re.compile(r"\d+ rows · .*\d+ in / \d+ out · \$[0-9.]+ · \d+\.\d s.*")


@pytest.fixture(scope="module")
def kernel(server: FakeOpenRouter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """A kernel with its own answer cache (the module's ``kernel`` has the default one)."""
    k = start_kernel(server, ORMAGIC_CACHE_DIR=str(tmp_path_factory.mktemp("cache")))
    yield k
    k.shutdown()


def prompt_of(body: Any) -> str:
    return content_text(request_messages(body)[-1]["content"])


def echo(body: dict[str, Any]) -> Reply:
    return StreamReply(text="re: " + prompt_of(body))


def texts(execution: Execution) -> list[str]:
    """What a saved notebook keeps of the cell: each output's text."""
    outputs = execution.final_outputs()
    assert not [o for o in outputs if WIDGET_VIEW in o.get("data", {})]  # no stale widget
    return [o["data"]["text/plain"] for o in outputs if "data" in o]


def value(kernel: Kernel, expression: str) -> Any:
    execution = kernel.execute(f"import json as _j; print(_j.dumps({expression}))")
    assert execution.status == "ok", execution.error_text()
    import json

    return json.loads(execution.stream_text())


def bars(execution: Execution) -> list[dict[str, Any]]:
    return [
        m
        for m in execution.of_type("comm_open")
        if m["content"]["data"]["state"].get("_model_name") == "IntProgressModel"
    ]


def test_each_shows_a_live_bar_then_leaves_the_estimate_and_the_summary(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    server.respond, server.latency = echo, 0.4
    kernel.execute(
        "import pandas as pd\nreviews = pd.DataFrame({'text': ['great', 'awful', 'fine', "
        "'meh', 'ok', 'bad']}, index=list('abcdef'))"
    )
    execution = kernel.execute(
        "%%chat --each reviews -o labels --concurrency 2 --max-tokens 20\nSentiment: {text}"
    )
    assert execution.status == "ok", execution.error_text()
    assert len(bars(execution)) == 1  # one live bar while the rows ran
    estimate, summary = texts(execution)
    assert estimate.startswith("6 rows · 6 to send · ~")
    assert SUMMARY.fullmatch(summary) and summary.startswith("6 rows · ")
    assert value(kernel, "labels.to_dict()") == {
        key: f"re: Sentiment: {text}"
        for key, text in zip("abcdef", ["great", "awful", "fine", "meh", "ok", "bad"], strict=True)
    }


def test_ormagic_map_in_a_cell_draws_the_same_lines(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.respond = echo
    execution = kernel.execute(
        "import ormagic\normagic.map('Say {item}', ['x', 'y'], max_tokens=20)"
    )
    assert execution.status == "ok", execution.error_text()
    estimate, summary, result = texts(execution)
    assert estimate.startswith("2 rows · 2 to send · ~")
    assert SUMMARY.fullmatch(summary)
    assert result == "['re: Say x', 're: Say y']"


def test_the_stop_button_keeps_finished_rows_closes_the_rest_and_a_rerun_sends_only_them(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    server.respond = echo
    server.hold(lambda body: "slow" in prompt_of(body))  # until the test ends (reset)
    kernel.execute("items = ['fast a', 'slow b', 'fast c', 'slow d']")
    cell = "%%chat --each items -o out --concurrency 4 --max-tokens 20\n{item}"
    execution = kernel.execute(cell, interrupt_after="2 / 4 rows", timeout=60)
    assert execution.status == "error"
    assert execution.error_text() == (
        "UsageError: Interrupted: 2 of 4 rows answered, kept in out and in the cache; "
        "run the cell again to finish the rest."
    )
    assert value(kernel, "out") == ["re: fast a", None, "re: fast c", None]
    summary = texts(execution)[-1]
    assert summary.startswith("4 rows · 2 not sent · ") and summary.endswith(" · interrupted")
    slow = [r for r in server.chat_requests() if "slow" in prompt_of(r.body)]
    assert len(slow) == 2
    eventually(
        lambda: all(r.client_disconnected for r in slow), "the slow requests' connections closing"
    )

    server.reset()
    server.respond = lambda body: StreamReply(text="re: " + prompt_of(body))
    again = kernel.execute(cell)
    assert again.status == "ok", again.error_text()
    assert sorted(prompt_of(r.body) for r in server.chat_requests()) == ["slow b", "slow d"]
    assert value(kernel, "out") == ["re: fast a", "re: slow b", "re: fast c", "re: slow d"]
    assert texts(again)[-1].startswith("4 rows · 2 cached · ")
