"""How long gathering notebook context takes on a big notebook, and how much memory.

A 1,000-cell history where every cell has code and a 20 KB output (every 100th a 1 MB
output), plus a few variables and a last error. Times (median of 5) and peak traced
memory (``tracemalloc``, measured in a separate run so it does not slow the timing) for:

* ``take_snapshot`` on a real ``InteractiveShell`` that executed those 1,000 cells
  (default ``limit=200``, and ``limit=1000``);
* ``build_context`` on a hand-built snapshot of the same shape (outputs not bounded, so
  the newest 1 MB output is cut to the budget), default budget (24,000 tokens), in
  ``auto`` (all 1,000 cells since the last question) and ``all``; and on the real
  snapshot (outputs bounded to 8,000 characters as read).

Run from the repository root: ``PYTHONPATH=. .venv/bin/python bench/bench_context.py``
(about 3 s).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

from ormagic.context.block import ContextMode, build_context
from ormagic.context.snapshot import CellRecord, NotebookSnapshot, take_snapshot

CELLS = 1000
OUTPUT_CHARS = 20_000
BIG_OUTPUT_CHARS = 1_000_000
BIG_EVERY = 100
RUNS = 5
BUDGET = 24_000
PROMPT = "Why does {sales} fail when I group by region? See totals and the traceback."


def output_size(n: int) -> int:
    return BIG_OUTPUT_CHARS if n % BIG_EVERY == 0 else OUTPUT_CHARS


def cell_code(n: int) -> str:
    return f"row_{n} = {n}\nprint(('line {n} ' * {output_size(n) // 6})[:{output_size(n)}])"


def cell_output(n: int) -> str:
    return (f"line {n} " * (output_size(n) // 6))[: output_size(n)] + "\n"


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    saved = sys.stdout
    with open(os.devnull, "w") as devnull:
        sys.stdout = devnull
        try:
            yield
        finally:
            sys.stdout = saved


def real_shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.history_manager.reset()
    with quiet_stdout():
        for n in range(1, CELLS + 1):
            shell.run_cell(cell_code(n), store_history=True)
        shell.run_cell("sales = list(range(50_000))\ntotals = {'north': 1, 'south': 2}")
        shell.run_cell("def broken():\n    return 1 / 0\nbroken()", store_history=True)
    return shell


def hand_snapshot(namespace: dict[str, Any]) -> NotebookSnapshot:
    cells = tuple(
        CellRecord(n, cell_code(n), (cell_output(n),), None, False) for n in range(1, CELLS + 1)
    )
    last_error = "Traceback (most recent call last):\n  ...\nZeroDivisionError: division by zero"
    return NotebookSnapshot(cells, namespace, last_error, None, (), since=0)


def median_seconds(action: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_mib(action: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    started = time.perf_counter()
    shell = real_shell()
    setup = time.perf_counter() - started
    namespace = {"sales": list(range(50_000)), "totals": {"north": 1, "south": 2}}
    snap = hand_snapshot(namespace)
    real = take_snapshot(shell, limit=1000)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("take_snapshot, limit=200", lambda: take_snapshot(shell)),
        ("take_snapshot, limit=1000", lambda: take_snapshot(shell, limit=1000)),
        (
            "build_context auto (1,000 cells)",
            lambda: build_context(
                snap, prompt=PROMPT, mode=ContextMode.parse("auto"), budget_tokens=BUDGET
            ),
        ),
        (
            "build_context all",
            lambda: build_context(
                snap, prompt=PROMPT, mode=ContextMode.parse("all"), budget_tokens=BUDGET
            ),
        ),
        (
            "build_context all, real snapshot",
            lambda: build_context(
                real, prompt=PROMPT, mode=ContextMode.parse("all"), budget_tokens=BUDGET
            ),
        ),
    ]
    print(f"shell with {CELLS:,} executed cells built in {setup:.1f} s\n")
    print(f"{'case':<34} {'median ms':>10} {'peak MiB':>9}")
    for name, action in cases:
        seconds = median_seconds(action)
        print(f"{name:<34} {seconds * 1000:>10.1f} {peak_mib(action):>9.2f}")
    print()
    for name, source in (("hand-built", snap), ("real", real)):
        block = build_context(
            source, prompt=PROMPT, mode=ContextMode.parse("all"), budget_tokens=BUDGET
        )
        print(
            f"{name} block: {block.tokens:,} tokens, {len(block.cells)} cells, variables"
            f" {block.variables}, error {block.included_error},"
            f" {block.elided_chars:,} characters left out"
        )
    stored = sum(len(o) for c in real.cells for o in c.outputs)
    print(f"snapshot of {len(real.cells)} cells holds {stored:,} output characters")


if __name__ == "__main__":
    main()
