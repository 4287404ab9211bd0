"""Time ormagic.render.markdown and .blocks on model-sized answers (a script, not a test).

    .venv/bin/python bench/bench_markdown.py

Prints the median milliseconds per call of ``render_html`` and ``neutralise_markdown`` on
a generated 20 KB and 100 KB answer (paragraphs, a table, code fences, math), and of
``split_blocks`` on a growing tail: 4,000 deltas of about 4 characters, the caller keeping
only the tail as the renderer does, plus ``render_html`` of that tail (the live redraw).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ormagic.render.blocks import split_blocks
from ormagic.render.markdown import neutralise_markdown, render_html

WORDS = [
    *("the", "model", "streams", "an", "answer", "into", "the", "notebook", "while"),
    *("markdown", "blocks", "are", "cut", "and", "rendered", "safely", "with", "math"),
    *("code", "tables", "links", "and", "emphasis", "for", "the", "reader"),
]


def paragraph(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(40, 90))]
    words[3] = f"*{words[3]}*"
    words[9] = f"`{words[9]}()`"
    words[15] = "$x_i^2 + y$"
    words[21] = f"[{words[21]}](https://example.com/{words[21]})"
    return " ".join(words) + "."


def table(rng: random.Random) -> str:
    rows = [f"| {rng.choice(WORDS)} | {rng.randint(0, 999)} | **{rng.choice(WORDS)}** |"]
    return "\n".join(["| name | value | note |", "|---|--:|:-:|", *rows * 6])


def fence(rng: random.Random) -> str:
    body = "\n".join(
        f"def f_{i}(x: int) -> int:\n    return x * {i} < {rng.randint(1, 99)}" for i in range(6)
    )
    return f"```python\n{body}\n```"


def answer(size: int, seed: int = 7) -> str:
    """A generated answer of about `size` characters."""
    rng = random.Random(seed)
    blocks: list[str] = []
    kinds = [paragraph, paragraph, paragraph, fence, table]
    while sum(len(block) + 2 for block in blocks) < size:
        n = len(blocks)
        if n % 7 == 0:
            blocks.append(f"## Section {n // 7 + 1}")
        elif n % 11 == 5:
            blocks.append("$$\n\\int_0^1 x^2\\,dx = \\frac{1}{3}\n$$")
        else:
            blocks.append(kinds[n % len(kinds)](rng))
    return "\n\n".join(blocks) + "\n"


def median_ms(function: Callable[[str], object], text: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function(text)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench_streaming(text: str, deltas: int = 4000) -> None:
    step = max(1, len(text) // deltas)
    split_times: list[float] = []
    render_times: list[float] = []
    tail = ""
    longest_tail = 0
    for start in range(0, len(text), step):
        tail += text[start : start + step]
        began = time.perf_counter()
        _head, tail = split_blocks(tail)
        split_times.append(time.perf_counter() - began)
        longest_tail = max(longest_tail, len(tail))
        began = time.perf_counter()
        render_html(tail)
        render_times.append(time.perf_counter() - began)
    print(
        f"split_blocks   {len(split_times):5d} calls, ~{step} chars each: "
        f"median {statistics.median(split_times) * 1000:.3f} ms, "
        f"max {max(split_times) * 1000:.3f} ms (longest tail {longest_tail} chars)"
    )
    print(
        f"render_html(tail) per redraw: median {statistics.median(render_times) * 1000:.2f} ms, "
        f"max {max(render_times) * 1000:.2f} ms"
    )


def main() -> None:
    render_html(answer(2_000))  # warm up: parser build, pygments lexer import
    for size, runs in ((20_000, 15), (100_000, 5)):
        text = answer(size)
        print(f"answer of {len(text):,} chars:")
        print(f"  render_html          median {median_ms(render_html, text, runs):7.1f} ms")
        print(f"  neutralise_markdown  median {median_ms(neutralise_markdown, text, runs):7.1f} ms")
    bench_streaming(answer(16_000))


if __name__ == "__main__":
    main()
