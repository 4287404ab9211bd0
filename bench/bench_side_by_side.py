"""Display traffic of ``%%chat -m A -m B [-m C]`` in a real kernel (a script, not a test).

    .venv/bin/python bench/bench_side_by_side.py

Starts the loopback fake OpenRouter and one ipykernel, runs ``%load_ext ormagic``, then
asks the same question of one, two and three models. Every model streams the same kind of
answer as ``bench_stream.py``'s 1k case (about 1,100 tokens of Markdown with a table and
two code blocks, one delta per token) at about 100 tokens/s, each model at once, so three
models send three times the text in the same time. For each case it measures what a
frontend receives on IOPub for that execution: display messages (``display_data``,
``update_display_data``, ``clear_output``), widget messages (``comm_*``), the bytes of
their JSON content while the answers stream ("live") and in the final output, and the
most messages in any one second (from the kernel's message headers). The question a
side-by-side view must answer: does a redraw budget shared by the columns keep the
browser's work near one answer's, per character streamed? Takes about 40 seconds.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream import markdown_answer
from kernel_support import Execution, Kernel

from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

MODELS = ("deepseek/deepseek-v4-flash", "openai/gpt-5-nano", "anthropic/claude-sonnet-4.6")
TOKENS = 1000
RATE = 100.0  # tokens (= deltas) per second, per model
DISPLAY = ("display_data", "update_display_data", "clear_output")
WIDGET = ("comm_open", "comm_msg", "comm_close")


@dataclass
class Result:
    models: int
    streamed_chars: int
    seconds: float
    display_msgs: int
    widget_msgs: int
    live_bytes: int
    final_bytes: int
    peak_per_second: int
    redraws: int  # messages that redraw an open piece: display updates, widget value changes
    redraw_bytes: int

    @property
    def live_ratio(self) -> float:
        return self.live_bytes / self.streamed_chars


def size(message: dict[str, Any]) -> int:
    return len(json.dumps(message["content"], default=str))


def peak_per_second(messages: list[dict[str, Any]]) -> int:
    stamps = sorted(_stamp(m) for m in messages)
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def _stamp(message: dict[str, Any]) -> float:
    date = message["header"]["date"]
    return (date if isinstance(date, datetime) else datetime.fromisoformat(date)).timestamp()


def measure(execution: Execution, streamed_chars: int, seconds: float, models: int) -> Result:
    traffic = execution.of_type(*DISPLAY, *WIDGET)
    clears = [i for i, m in enumerate(traffic) if m["msg_type"] == "clear_output"]
    final_from = clears[-1] if clears else len(traffic)
    live, final = traffic[:final_from], traffic[final_from:]
    return Result(
        models=models,
        streamed_chars=streamed_chars,
        seconds=seconds,
        display_msgs=sum(m["msg_type"] in DISPLAY for m in traffic),
        widget_msgs=sum(m["msg_type"] in WIDGET for m in traffic),
        live_bytes=sum(size(m) for m in live),
        final_bytes=sum(size(m) for m in final if m["msg_type"] in DISPLAY),
        peak_per_second=peak_per_second(traffic),
        redraws=len([m for m in live if _redraw(m)]),
        redraw_bytes=sum(size(m) for m in live if _redraw(m)),
    )


def _redraw(message: dict[str, Any]) -> bool:
    if message["msg_type"] == "update_display_data":
        return True
    state = message["content"].get("data", {}).get("state", {})
    return message["msg_type"] == "comm_msg" and "value" in state


def run_case(kernel: Kernel, fake: FakeOpenRouter, count: int) -> Result:
    chosen = MODELS[:count]
    streamed = 0
    for i, model in enumerate(chosen):
        text = markdown_answer(TOKENS, seed=3 + i)
        streamed += len(text)
        fake.enqueue_for(
            model, StreamReply(text=text, chunk_chars=4, delay=1 / RATE, wait_for_in_flight=count)
        )
    flags = " ".join(f"-m {m}" for m in chosen)
    started = time.monotonic()
    execution = kernel.execute(f"%%chat -c bench{count} {flags}\nExplain.", timeout=300)
    seconds = time.monotonic() - started
    if execution.status != "ok":
        raise SystemExit(f"bench_side_by_side: {count} model(s) failed: {execution.error_text()}")
    return measure(execution, streamed, seconds, count)


def table(results: list[Result]) -> str:
    rows = [
        "| models | streamed KB | cell s | redraws | redraw KB ÷ streamed KB | display msgs "
        "| widget msgs | live KB | live ÷ streamed text | final KB | peak msgs/s |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        rows.append(
            f"| {r.models} | {r.streamed_chars / 1000:.1f} | {r.seconds:.1f} | {r.redraws} "
            f"| {r.redraw_bytes / r.streamed_chars:.1f}x | {r.display_msgs} "
            f"| {r.widget_msgs} | {r.live_bytes / 1000:.1f} | {r.live_ratio:.1f}x "
            f"| {r.final_bytes / 1000:.1f} | {r.peak_per_second} |"
        )
    return "\n".join(rows)


def main() -> int:
    with FakeOpenRouter() as fake:
        kernel = Kernel({"OPENROUTER_API_KEY": fake.api_key, "OPENROUTER_BASE_URL": fake.base_url})
        try:
            if kernel.execute("%load_ext ormagic").status != "ok":
                raise SystemExit("bench_side_by_side: %load_ext ormagic failed")
            results = [run_case(kernel, fake, count) for count in (1, 2, 3)]
        finally:
            kernel.shutdown()
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
