"""Helpers for tests that wait or measure, without depending on how fast the machine is.

``eventually`` polls for something another thread or process does, with a generous
deadline and a message that says what never happened. ``growth`` compares how the time of
an operation grows from n to 4n (a linear operation about 4 times, a quadratic one about
16): a ratio of CPU times measured in one run, not a wall-clock threshold.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LINEAR_GROWTH_LIMIT", "eventually", "growth"]

# Between linear (4) and quadratic (16) growth for a 4x larger input, with room for noise.
LINEAR_GROWTH_LIMIT = 8.0

# CPU seconds one timed sample lasts at least: far above thread_time's resolution, so
# an operation too quick to time is repeated in a loop until a sample lasts this long.
MIN_SAMPLE = 0.02
# Measurements of one growth; a ratio over the limit is measured again, up to this many
# times in all, and the smallest is kept (noise only ever adds time).
ATTEMPTS = 3


def eventually(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``predicate`` until it returns something true; fail saying ``what`` if it never does.

    The deadline is generous on purpose: it only matters when something is broken, and a
    busy machine must not make a working feature fail.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.02)


def _cpu_time(operation: Callable[[], object], loops: int) -> float:
    """CPU seconds this thread spent running ``operation`` ``loops`` times.

    CPU time of this thread, not wall time: other processes on a busy machine, and other
    threads of this one, do not count.
    """
    started = time.thread_time()
    for _ in range(loops):
        operation()
    return time.thread_time() - started


def _calibrated(operation: Callable[[], object]) -> tuple[int, float]:
    """How many calls of ``operation`` make one sample last ``MIN_SAMPLE`` at least, and
    the time per call that sample measured (the first of the samples kept)."""
    loops = 1
    while (spent := _cpu_time(operation, loops)) < MIN_SAMPLE:
        # aim past the target from what this sample took (doubling when it took ~nothing)
        loops = max(2 * loops, int(loops * 1.5 * MIN_SAMPLE / spent) if spent > 0 else 0)
    return loops, spent / loops


def _ratio(small: Callable[[], object], large: Callable[[], object], repeats: int) -> float:
    """Best time per call of ``large`` over best time per call of ``small``; the two are
    timed turn about, so that a slow spell of the machine hits both alike."""
    small_loops, best_small = _calibrated(small)
    large_loops, best_large = _calibrated(large)
    for _ in range(repeats - 1):
        best_small = min(best_small, _cpu_time(small, small_loops) / small_loops)
        best_large = min(best_large, _cpu_time(large, large_loops) / large_loops)
    return best_large / best_small


def growth(run: Callable[[int], Callable[[], object]], n: int, *, repeats: int = 5) -> float:
    """How many times more CPU ``run(4 * n)`` takes than ``run(n)`` (best of ``repeats``,
    at least 3).

    ``run(size)`` prepares the input and returns the operation to time, so that building
    the input is not measured. Garbage collection is off while timing (a collection would
    charge one sample for garbage others made), and a ratio over ``LINEAR_GROWTH_LIMIT``
    is measured again (``ATTEMPTS`` in all) before it is returned: the smallest is kept.
    """
    small, large = run(n), run(4 * n)
    repeats = max(repeats, 3)
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        best = float("inf")
        for _ in range(ATTEMPTS):
            best = min(best, _ratio(small, large, repeats))
            if best < LINEAR_GROWTH_LIMIT:
                break
        return best
    finally:
        if collecting:
            gc.enable()
