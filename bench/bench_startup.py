"""Start-up: what ``%load_ext ormagic`` adds, as a ratio to ``import IPython`` (a script).

    .venv/bin/python bench/bench_startup.py

Each round starts a fresh Python process that times, in that one process, ``import
IPython`` (cold), then creates a shell and times ``%load_ext ormagic``. The ratio of the
two is what the issue asks for (goal: at most 0.5); the median of the rounds is reported.
A real kernel has already imported more than IPython (ipykernel, zmq, tornado), so there
``%load_ext`` costs the same or less; the second table shows it from a fresh kernel,
together with what the first ``%%chat`` then pays for the libraries deferred until it
(httpx, markdown-it, pygments), against the loopback fake.

No network, nothing printed by loading (checked).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kernel_support import Kernel

from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

ROUNDS = 9
KERNEL_ROUNDS = 3
GOAL = 0.5
HEAVY = ("httpx", "markdown_it", "pygments", "nbformat", "ipywidgets")

PROCESS = f"""
import json, sys, time
t0 = time.perf_counter()
import IPython
t1 = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
before = set(sys.modules)
t2 = time.perf_counter()
shell.run_line_magic("load_ext", "ormagic")
t3 = time.perf_counter()
heavy = [name for name in {HEAVY!r} if name in sys.modules and name not in before]
print(json.dumps({{"ipython": t1 - t0, "load_ext": t3 - t2, "heavy": heavy}}))
"""

TIMED_LOAD = """\
import time as _t
_t0 = _t.perf_counter()
get_ipython().run_line_magic("load_ext", "ormagic")
print(_t.perf_counter() - _t0)
"""

TIMED_CHAT = """\
import time as _t
_t0 = _t.perf_counter()
get_ipython().run_cell_magic("chat", "-c startup", "Hello")
print("SECONDS", _t.perf_counter() - _t0)
"""


def in_process() -> list[dict[str, Any]]:
    runs = []
    for _ in range(ROUNDS):
        out = subprocess.run(
            [sys.executable, "-c", PROCESS], capture_output=True, text=True, check=True
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return runs


def in_kernel() -> list[tuple[float, float]]:
    runs = []
    with FakeOpenRouter() as fake:
        for _ in range(KERNEL_ROUNDS):
            fake.enqueue(StreamReply(text="Hi **there**.\n\n```python\nx = 1\n```\n"))
            env = {"OPENROUTER_API_KEY": fake.api_key, "OPENROUTER_BASE_URL": fake.base_url}
            kernel = Kernel(env)
            try:
                load = kernel.execute(TIMED_LOAD).stream_text().strip()
                chat = kernel.execute(TIMED_CHAT).stream_text()
            finally:
                kernel.shutdown()
            runs.append((float(load), float(chat.split("SECONDS")[-1])))
    return runs


def main() -> int:
    runs = in_process()
    ipython = statistics.median(r["ipython"] for r in runs)
    load = statistics.median(r["load_ext"] for r in runs)
    ratio = statistics.median(r["load_ext"] / r["ipython"] for r in runs)
    heavy = sorted({name for r in runs for name in r["heavy"]})
    print(f"Fresh process, median of {ROUNDS}:")
    print()
    print("| step | ms | ÷ import IPython |")
    print("|---|--:|--:|")
    print(f"| import IPython (cold) | {ipython * 1000:.0f} | 1.00 |")
    print(f"| %load_ext ormagic | {load * 1000:.0f} | {ratio:.2f} |")
    print()
    print(f"Heavy libraries that %load_ext loads (beyond IPython's): {', '.join(heavy) or 'none'}.")
    met = "met" if ratio <= GOAL else "NOT met"
    print(f"Goal: %load_ext at most {GOAL:g}x import IPython: {met} ({ratio:.2f}).")
    print()
    kernel_runs = in_kernel()
    print(f"Fresh kernel, median of {KERNEL_ROUNDS}:")
    print()
    print("| step | ms |")
    print("|---|--:|")
    print(f"| %load_ext ormagic | {statistics.median(r[0] for r in kernel_runs) * 1000:.0f} |")
    print(
        "| first %%chat (loads httpx, markdown-it, pygments; loopback answer) "
        f"| {statistics.median(r[1] for r in kernel_runs) * 1000:.0f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
