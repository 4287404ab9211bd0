"""Kernel memory over a 200-turn conversation with long answers and reasoning (a script).

    .venv/bin/python bench/bench_memory.py

One real kernel (``%load_ext ormagic``, the loopback fake OpenRouter), one conversation,
200 ``%%chat`` turns; each answer is about 16 KB of Markdown (4,000 tokens, with code
blocks and a table) after 8 KB of reasoning, streamed quickly. Every 20 turns a cell
reads, inside the kernel:

* **kept**: what the conversation holds, as the JSON it sends back (``messages``);
* **traced** and **traced peak**: Python's heap (``tracemalloc``, started before the
  first turn) after a garbage collection, and its peak since the previous reading, which
  includes each turn's transient work: the request (it carries the whole history), the
  rendering, the final bundles;
* **RSS** and peak RSS (``/proc/self/status``), for context;

and the script adds up **displayed**: every byte the kernel sent to the frontend for
those turns (display and widget messages).

Goal: memory grows with what is kept, not with what was displayed: traced growth over the
run within a small multiple of the growth of what is kept, and far below what was shown.
Takes about two minutes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream import markdown_answer, packed_size, reasoning_text
from kernel_support import Kernel

from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

TURNS = 200
EVERY = 20
ANSWER_TOKENS = 4000
REASONING_TOKENS = 2000
GOAL = 3.0  # traced growth at most this many times the growth of what is kept

PROBE = """\
import gc as _gc, json as _j, tracemalloc as _t, ormagic as _o
_gc.collect()  # what is retained, not garbage the collector has yet to reach
_status = open("/proc/self/status").read().split("\\n")
_kb = {l.split(":")[0]: int(l.split()[1]) for l in _status if l.startswith(("VmRSS", "VmHWM"))}
_cur, _peak = _t.get_traced_memory()
_t.reset_peak()
print(_j.dumps({"kept": len(_j.dumps(_o.conversation("mem").messages)), "traced": _cur,
                "traced_peak": _peak, "rss": _kb["VmRSS"] * 1024, "rss_peak": _kb["VmHWM"] * 1024}))
"""
DISPLAY_TYPES = ("display_data", "update_display_data", "clear_output")
WIDGET_TYPES = ("comm_open", "comm_msg", "comm_close")


def probe(kernel: Kernel) -> dict[str, int]:
    execution = kernel.execute(PROBE)
    if execution.status != "ok":
        raise RuntimeError(f"the probe failed: {execution.error_text()}")
    values: dict[str, int] = json.loads(execution.stream_text().strip().splitlines()[-1])
    return values


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def main() -> int:
    started = time.monotonic()
    rows: list[tuple[int, dict[str, int], int]] = []
    displayed = 0
    with FakeOpenRouter() as server:
        kernel = Kernel(
            {"OPENROUTER_API_KEY": server.api_key, "OPENROUTER_BASE_URL": server.base_url}
        )
        try:
            for code in ("import tracemalloc; tracemalloc.start()", "%load_ext ormagic"):
                if kernel.execute(code).status != "ok":
                    raise RuntimeError(f"{code} failed")
            rows.append((0, probe(kernel), 0))
            for turn in range(1, TURNS + 1):
                answer = markdown_answer(ANSWER_TOKENS, seed=turn)
                reasoning = reasoning_text(REASONING_TOKENS, seed=turn)
                server.reset()
                server.enqueue(StreamReply(text=answer, reasoning=reasoning, chunk_chars=400))
                execution = kernel.execute(f"%%chat -c mem --context none\nTurn {turn}: go on.")
                if execution.status != "ok":
                    raise RuntimeError(f"turn {turn} failed: {execution.error_text()}")
                sent = execution.of_type(*DISPLAY_TYPES, *WIDGET_TYPES)
                displayed += sum(packed_size(m["content"]) for m in sent)
                if turn % EVERY == 0:
                    rows.append((turn, probe(kernel), displayed))
                    print(f"  turn {turn}", file=sys.stderr, flush=True)
        finally:
            kernel.shutdown()
    print(table(rows))
    print()
    print(verdict(rows))
    print(f"Whole run: {time.monotonic() - started:.0f} s.")
    return 0


def table(rows: list[tuple[int, dict[str, int], int]]) -> str:
    head = (
        "| turns | kept MB | displayed MB | traced MB | traced peak MB (since last row) "
        "| RSS MB | peak RSS MB |"
    )
    lines = [head, "|--:|--:|--:|--:|--:|--:|--:|"]
    for turn, m, displayed in rows:
        lines.append(
            f"| {turn} | {mb(m['kept'])} | {mb(displayed)} | {mb(m['traced'])} "
            f"| {mb(m['traced_peak'])} | {mb(m['rss'])} | {mb(m['rss_peak'])} |"
        )
    return "\n".join(lines)


def verdict(rows: list[tuple[int, dict[str, int], int]]) -> str:
    (_, first, shown_first), (_, last, shown_last) = rows[1], rows[-1]
    kept = last["kept"] - first["kept"]
    traced = last["traced"] - first["traced"]
    peak = last["traced_peak"] - first["traced_peak"]
    shown = shown_last - shown_first
    ratio = traced / kept
    met = "met" if ratio <= GOAL else "NOT met"
    return (
        f"From turn {rows[1][0]} to {rows[-1][0]}: kept +{mb(kept)} MB, displayed +{mb(shown)} MB, "
        f"traced heap +{mb(traced)} MB ({ratio:.2f}x what is kept, "
        f"{traced / shown:.2f}x what was displayed); a turn's transient peak grew by "
        f"{mb(peak)} MB.\n"
        f"Goal: heap growth at most {GOAL:g}x the growth of what is kept: {met}."
    )


if __name__ == "__main__":
    raise SystemExit(main())
