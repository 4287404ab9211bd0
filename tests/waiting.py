"""Helpers for tests that wait or measure, without depending on how fast the machine is.

``eventually`` polls for something another thread or process does, with a generous
deadline and a message that says what never happened. ``growth`` compares how the time of
an operation grows from n to 4n (a linear operation about 4 times, a quadratic one about
16): a ratio measured in one run, not a wall-clock threshold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["LINEAR_GROWTH_LIMIT", "eventually", "growth"]

# Between linear (4) and quadratic (16) growth for a 4x larger input, with room for noise.
LINEAR_GROWTH_LIMIT = 8.0


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


def _best_time(operation: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        operation()
        best = min(best, time.perf_counter() - started)
    return max(best, 1e-6)


def growth(run: Callable[[int], Callable[[], object]], n: int, *, repeats: int = 5) -> float:
    """How many times longer ``run(4 * n)`` takes than ``run(n)`` (best of ``repeats``).

    ``run(size)`` prepares the input and returns the operation to time, so that building
    the input is not measured.
    """
    small, large = run(n), run(4 * n)
    return _best_time(large, repeats) / _best_time(small, repeats)
