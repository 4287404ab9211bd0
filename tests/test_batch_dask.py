"""ormagic.map on Dask collections: lazy, run by a two-worker dask.distributed cluster on
loopback against the fake server, the API key read on the workers and never in the graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cloudpickle
import dask.dataframe as dd
import pandas as pd
import pytest
from distributed import Client, LocalCluster, wait

import ormagic
from ormagic.errors import MissingKeyError
from ormagic.testing._replies import content_text, request_messages
from ormagic.testing.fake_openrouter import FAKE_API_KEY, FakeOpenRouter, Reply, StreamReply


def prompt_of(body: Any) -> str:
    return content_text(request_messages(body)[-1]["content"])


def echo(body: dict[str, Any]) -> Reply:
    return StreamReply(text="re: " + prompt_of(body))


@pytest.fixture
def fake(
    fake_env: FakeOpenRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FakeOpenRouter:
    monkeypatch.setenv("ORMAGIC_CACHE_DIR", str(tmp_path / "cache"))
    fake_env.respond = echo
    return fake_env


def frame(n: int = 12) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"t{i}" for i in range(n)]}, index=range(100, 100 + n))


def test_a_two_worker_cluster_answers_every_partition_and_never_sees_the_key(
    fake: FakeOpenRouter,
) -> None:
    ddf = dd.from_pandas(frame(), npartitions=4)
    lazy = ormagic.map("Label {text}", ddf, max_tokens=20, concurrency=2)
    assert fake.chat_requests() == []  # lazy: nothing is sent until it is computed
    graph = lazy.__dask_graph__()
    for text in (cloudpickle.dumps(graph), repr(lazy).encode(), repr(dict(graph)).encode()):
        assert FAKE_API_KEY.encode() not in text
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        persisted = lazy.persist()
        wait(persisted)
        seen_by_scheduler = client.run_on_scheduler(
            lambda dask_scheduler: repr(
                [(key, task.run_spec) for key, task in dask_scheduler.tasks.items()]
            )
        )
        result = persisted.compute()
        workers = client.run(lambda: __import__("os").environ.get("OPENROUTER_API_KEY"))
    assert FAKE_API_KEY not in seen_by_scheduler and "run_partition" in seen_by_scheduler
    assert set(workers.values()) == {FAKE_API_KEY}  # the workers' own environment has it
    assert result.to_dict() == {100 + i: f"re: Label t{i}" for i in range(12)}
    assert sorted(prompt_of(r.body) for r in fake.chat_requests()) == sorted(
        f"Label t{i}" for i in range(12)
    )


def test_a_schema_gives_a_lazy_dataframe_of_its_fields(fake: FakeOpenRouter) -> None:
    fake.respond = lambda body: StreamReply(text=json.dumps({"label": prompt_of(body), "n": 1}))
    series = dd.from_pandas(pd.Series(["a", "b", "c"], index=[7, 8, 9]), npartitions=2)
    lazy = ormagic.map("{item}", series, schema={"label": str, "n": int}, max_tokens=20)
    assert lazy.columns.tolist() == ["label", "n"]
    result = lazy.compute(scheduler="sync")
    assert result.to_dict("index") == {
        7: {"label": "a", "n": 1},
        8: {"label": "b", "n": 1},
        9: {"label": "c", "n": 1},
    }


def test_a_worker_without_a_key_says_where_to_put_it(
    fake: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    lazy = ormagic.map("{text}", dd.from_pandas(frame(2), npartitions=1), max_tokens=20)
    monkeypatch.delenv("OPENROUTER_API_KEY")
    with pytest.raises(MissingKeyError, match="OPENROUTER_API_KEY in the workers' environment"):
        lazy.compute(scheduler="sync")
    assert fake.chat_requests() == []
