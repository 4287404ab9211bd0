"""How fast ormagic.map runs rows, against the ideal, and how much CPU it spends per row.

The fake OpenRouter runs in a process of its own with a fixed latency per request (200 ms
by default) and a short answer, so the client's process measures only ormagic (engine,
httpx, asyncio). For concurrency 1, 8 and 32, and for a two-worker ``dask.distributed``
LocalCluster (worker processes, then worker threads; 16 requests per partition on each of
the two workers), it reports rows per
second and the ratio to the ideal, concurrency ÷ latency (what a client that cost nothing
would reach). Goal: at concurrency 32 and 200 ms, at least 80% of ideal.

CPU per row is the client process's CPU time (``time.process_time``: every thread, the
loop's included) divided by the rows: the engine's own cost plus httpx's and asyncio's
(and, at concurrency 1, the batch's fixed start spread over its 16 rows). The engine's own
share is then timed without HTTP: filling a row's prompt, building its body and cache key;
reading a whole answer; validating a schema answer; keeping it in the cache.

Last, the stop button: a batch of rows that never answer, interrupted (SIGINT in the main
thread, as a kernel's stop button is), and the time until the server saw every connection
closed (the fake checks its sockets every 50 ms).

Run from the repository root: ``PYTHONPATH=. .venv/bin/python bench/bench_batch.py``
(about 40 s).
"""

from __future__ import annotations

import _thread
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

LATENCY = 0.2
SERVER = """
import sys, threading
from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply
fake = FakeOpenRouter().start()
fake.latency = float(sys.argv[1])
fake.respond = lambda body: StreamReply(text="positive")
print(fake.base_url, fake.api_key, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
fake.stop()
"""


def start_server(latency: float) -> tuple[subprocess.Popen[str], str, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    base_url, key = process.stdout.readline().split()
    return process, base_url, key


def timed_map(rows: list[str], concurrency: int) -> tuple[float, float]:
    """Wall seconds and process CPU seconds of one ormagic.map over ``rows``."""
    import ormagic

    cpu, wall = time.process_time(), time.perf_counter()
    result = ormagic.map(
        "Sentiment of: {item}",
        rows,
        max_tokens=20,
        concurrency=concurrency,
        cache=False,
        progress=False,
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert result == ["positive"] * len(rows), "some rows failed"
    return wall, cpu


def local_rows(concurrency: int) -> list[dict[str, Any]]:
    results = []
    timed_map([f"warm-up {i}" for i in range(8)], 8)  # imports, /models, first connections
    for c in (1, 8, 32):
        rows = [f"review {c}-{i}" for i in range(max(16, c * 16))]
        wall, cpu = timed_map(rows, c)
        rate = len(rows) / wall
        ideal = c / LATENCY
        results.append(
            {
                "setup": f"concurrency {c}",
                "rows": len(rows),
                "rate": rate,
                "ideal": ideal,
                "cpu_ms": cpu / len(rows) * 1000,
            }
        )
    return results


def dask_row(per_partition: int = 16, processes: bool = True) -> dict[str, Any]:
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client, LocalCluster

    import ormagic

    rows = 640
    frame = pd.DataFrame({"text": [f"dask review {i}" for i in range(rows)]})
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: __import__("ormagic.batch.job"))  # imports on the workers
        ddf = dd.from_pandas(frame, npartitions=8)
        lazy = ormagic.map("{text}", ddf, max_tokens=20, concurrency=per_partition, cache=False)
        wall = time.perf_counter()
        result = lazy.compute()
        wall = time.perf_counter() - wall
    assert (result == "positive").all(), "some rows failed"
    return {
        "setup": f"Dask, 2 worker {'processes' if processes else 'threads'} x {per_partition}",
        "rows": rows,
        "rate": rows / wall,
        "ideal": 2 * per_partition / LATENCY,
        "cpu_ms": None,
    }


def engine_costs(n: int = 5000) -> list[tuple[str, float]]:
    """Microseconds per row of ormagic's own steps (median of 5 runs of ``n`` rows)."""
    import statistics
    from pathlib import Path

    from ormagic.batch.cache import AnswerCache, CachedAnswer
    from ormagic.batch.job import BatchSpec, build_tasks
    from ormagic.batch.rows import rows_of
    from ormagic.batch.schema import make_schema
    from ormagic.client.aio import completion_from_body
    from ormagic.client.settings import ClientSettings
    from ormagic.testing._catalogue import reply_usage
    from ormagic.testing._frames import Chat, chat_result
    from ormagic.testing._replies import StreamReply

    schema = make_schema({"label": str, "score": float})
    spec = BatchSpec("Label this review: {item}", "m/x", ClientSettings(), 20, True, schema=schema)
    rows = rows_of([f"review number {i}, which is fine" for i in range(n)])
    answer = '{"label": "positive", "score": 0.9}'
    reply = StreamReply(text=answer)
    body = chat_result(reply, Chat("gen-1", 1, "m/x", "P"), reply_usage([], reply, (1e-7, 2e-7)))
    cache = AnswerCache(Path(tempfile.mkdtemp()))
    cached = CachedAnswer(answer, "m/x", 10, 5, 0.00001)

    def keep() -> None:
        for i in range(n):
            cache.put(f"{i:064x}", cached)  # each answer committed as it is kept

    steps: list[tuple[str, Any]] = [
        ("prompt, body and cache key", lambda: build_tasks(spec, rows)),
        ("read a whole answer", lambda: [completion_from_body(body) for _ in range(n)]),
        ("validate a schema answer", lambda: [schema.parse(answer) for _ in range(n)]),
        ("keep it in the cache", keep),
    ]
    costs = []
    for name, step in steps:
        runs = []
        for _ in range(5):
            started = time.process_time()
            step()
            runs.append(time.process_time() - started)
        costs.append((name, statistics.median(runs) / n * 1e6))
    cache.close()
    return costs


def interrupt_to_closed(in_flight: int = 8) -> float:
    """Seconds from the interrupt until the server saw every request's connection close."""
    import ormagic
    from ormagic.engine.engine import set_default_engine
    from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

    with FakeOpenRouter() as fake:
        fake.respond = lambda body: StreamReply(text="never", delay=60)
        os.environ.update(OPENROUTER_BASE_URL=fake.base_url, OPENROUTER_API_KEY=fake.api_key)
        set_default_engine(None)
        interrupted_at = 0.0

        def interrupt() -> None:
            nonlocal interrupted_at
            while len(fake.chat_requests()) < in_flight:
                time.sleep(0.01)
            interrupted_at = time.perf_counter()
            _thread.interrupt_main()

        threading.Thread(target=interrupt, daemon=True).start()
        rows = [f"stuck {i}" for i in range(in_flight)]
        ormagic.map(
            "{item}", rows, max_tokens=20, concurrency=in_flight, cache=False, progress=False
        )
        while not all(r.client_disconnected for r in fake.chat_requests()):
            time.sleep(0.005)
        return time.perf_counter() - interrupted_at


def main() -> None:
    os.environ["ORMAGIC_CACHE_DIR"] = tempfile.mkdtemp(prefix="ormagic-bench-")
    server, base_url, key = start_server(LATENCY)
    os.environ.update(OPENROUTER_BASE_URL=base_url, OPENROUTER_API_KEY=key)
    try:
        rows = local_rows(32)
        rows.append(dask_row(processes=True))
        rows.append(dask_row(processes=False))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=10)
    print(f"ormagic.map against the loopback server, {LATENCY * 1000:.0f} ms per request\n")
    print("| setup | rows | rows/s | ideal rows/s | % of ideal | client CPU per row |")
    print("|---|--:|--:|--:|--:|--:|")
    for row in rows:
        cpu = "" if row["cpu_ms"] is None else f"{row['cpu_ms']:.2f} ms"
        print(
            f"| {row['setup']} | {row['rows']:,} | {row['rate']:.1f} | {row['ideal']:.0f} | "
            f"{row['rate'] / row['ideal']:.0%} | {cpu} |"
        )
    costs = engine_costs()
    print("\nThe engine's own CPU per row, without HTTP:\n")
    print("| step | µs per row |")
    print("|---|--:|")
    for name, micros in costs:
        print(f"| {name} | {micros:.0f} |")
    print(f"| **total** | **{sum(m for _, m in costs):.0f}** |")
    seconds = interrupt_to_closed()
    print(
        f"\nInterrupt with 8 requests in flight -> every connection closed: {seconds * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
