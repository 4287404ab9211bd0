"""Display traffic of a streamed ``%%chat`` answer in a real kernel (a script, not a test).

    .venv/bin/python bench/bench_stream.py

Starts the loopback fake OpenRouter and one ipykernel (``OPENROUTER_API_KEY`` and
``OPENROUTER_BASE_URL`` point at the fake), runs ``%load_ext ormagic``, then one ``%%chat``
per case and measures what a frontend would receive on IOPub for that execution:

* answers of about 1,000, 4,000 and 16,000 tokens (paragraphs, a bullet list, a table and
  two 30-line python blocks; 4 characters a token, one delta per token; the "1k" answer is
  1,105 tokens, as its two code blocks alone take 617) streamed at about 100 tokens/s; the
  16k case drops to 300 tokens/s when the whole run would otherwise take more than five
  minutes (projected from the cases before it, and said so);
* 2,000 tokens of reasoning then a 1,000-token answer, for the reasoning widget's traffic;
* side by side with the 4k case, on the same 4,000-chunk stream at the same pace, the
  naive way peer magics stream: one ``display(Markdown(text), display_id=True)`` updated
  with the whole text on every chunk (through ormagic's client, so that only the display
  differs).

Kernel CPU is ``time.process_time()`` in the kernel around the cell (every thread of the
kernel process, IOPub's included).

Display messages are ``display_data``, ``update_display_data`` and ``clear_output``;
widget messages are ``comm_open``, ``comm_msg`` and ``comm_close``. Bytes are those of the
message's JSON ``content`` as jupyter_client packs it; "live" is everything before the
final ``clear_output``, "final" that and the static bundles after it. Times come from the
kernel's message headers, from the moment the fake starts answering the chat request, and
from a loopback relay between kernel and fake that sees the first SSE data frame go by
(same machine, same clock): "of which ormagic" is first frame to first display. Exits 1
when the kernel or the server fails, or an answer is wrong. Takes about five
minutes.

Goals (issue 14): all display traffic at most 5x the answer's size; the reasoning panel's
traffic (widget messages and the final ``<details>``) at most 6x the reasoning's size.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kernel_support import Execution, Kernel

from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

CHARS_PER_TOKEN = 4
RATE = 100.0  # tokens (= deltas) per second
FAST_RATE = 300.0  # for the largest case, when RATE would overrun RUN_LIMIT
RUN_LIMIT = 300.0  # seconds for the whole run
PROMPT = "Explain how to clean and summarise the sensor data, with code."
CHAT_LINE = "POST /api/v1/chat/completions"
WIDGET_TYPES = ("comm_open", "comm_msg", "comm_close")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SSE_DATA = b"data: "
ANSWER_DELTA = re.compile(rb'"content":"[^"]')  # reasoning deltas carry "content":""

Messages = list[dict[str, Any]]


class BenchError(RuntimeError):
    """The kernel or the fake server did not do what the benchmark needs."""


# --------------------------------------------------------------------------- answers

WORDS = [
    *("the", "sensor", "readings", "drift", "over", "time", "so", "each", "column"),
    *("needs", "a", "check", "for", "missing", "values", "and", "outliers", "before"),
    *("any", "summary", "is", "computed", "per", "station", "with", "care", "about"),
    *("units", "timestamps", "rolling", "means", "grouped", "by", "hour", "or", "day"),
]

CODE_A = """\
import pandas as pd


def load_readings(path: str) -> pd.DataFrame:
    \"\"\"Read the raw CSV and give every column a proper type.\"\"\"
    frame = pd.read_csv(path, parse_dates=["timestamp"])
    frame = frame.rename(columns=str.lower)
    frame["station"] = frame["station"].astype("category")
    frame["temperature"] = pd.to_numeric(frame["temperature"], errors="coerce")
    frame["humidity"] = pd.to_numeric(frame["humidity"], errors="coerce")
    return frame.sort_values("timestamp").reset_index(drop=True)


def drop_outliers(frame: pd.DataFrame, column: str, k: float = 3.0) -> pd.DataFrame:
    \"\"\"Remove rows more than k standard deviations from the station mean.\"\"\"
    grouped = frame.groupby("station", observed=True)[column]
    mean = grouped.transform("mean")
    std = grouped.transform("std")
    keep = (frame[column] - mean).abs() <= k * std
    return frame[keep | frame[column].isna()]


readings = load_readings("sensors.csv")
readings = drop_outliers(readings, "temperature")
readings = drop_outliers(readings, "humidity")
print(readings.isna().sum())
print(readings.describe())
print(len(readings), "rows kept")
missing = readings["temperature"].isna().mean()
print(f"{missing:.1%} of temperatures missing")
readings.to_parquet("clean.parquet")"""

CODE_B = """\
import matplotlib.pyplot as plt


def hourly_summary(frame: pd.DataFrame) -> pd.DataFrame:
    \"\"\"Mean, min and max per station and hour.\"\"\"
    hourly = frame.set_index("timestamp").groupby("station", observed=True)
    summary = hourly.resample("1h")["temperature"].agg(["mean", "min", "max"])
    return summary.dropna().reset_index()


def plot_station(summary: pd.DataFrame, station: str) -> None:
    \"\"\"One line per statistic for a single station.\"\"\"
    part = summary[summary["station"] == station]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(part["timestamp"], part["mean"], label="mean")
    ax.fill_between(part["timestamp"], part["min"], part["max"], alpha=0.2)
    ax.set_title(f"Station {station}")
    ax.set_ylabel("temperature (°C)")
    ax.legend()
    fig.tight_layout()


summary = hourly_summary(readings)
for station in summary["station"].unique()[:3]:
    plot_station(summary, station)
rolling = summary.groupby("station", observed=True)["mean"].rolling(24).mean()
print(rolling.tail())
worst = summary.sort_values("max", ascending=False).head(5)
print(worst.to_string(index=False))
summary.to_csv("hourly.csv", index=False)
plt.show()"""


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    return " ".join(words).capitalize() + "."


def paragraph(rng: random.Random) -> str:
    text = " ".join(sentence(rng) for _ in range(rng.randint(3, 6)))
    words = text.split(" ")
    words[2] = f"**{words[2]}**"
    words[7] = f"`{words[7]}`"
    return " ".join(words)


def bullet_list(rng: random.Random) -> str:
    return "\n".join(f"- {sentence(rng)}" for _ in range(6))


def table(rng: random.Random) -> str:
    rows = [
        f"| {rng.choice(WORDS)} | {rng.randint(0, 999)} | {rng.uniform(0, 40):.1f} "
        f"| {rng.choice(WORDS)} |"
        for _ in range(8)
    ]
    return "\n".join(["| station | rows | mean °C | note |", "|---|--:|--:|:-:|", *rows])


def fence(code: str) -> str:
    return f"```python\n{code}\n```"


def markdown_answer(tokens: int, seed: int = 3) -> str:
    """An answer of ``tokens`` * 4 characters: paragraphs with a list, a table and two
    30-line code blocks placed at about 10 %, 30 %, 55 % and 80 % of its length."""
    rng = random.Random(seed)
    target = tokens * CHARS_PER_TOKEN
    planned: list[tuple[float, Callable[[], str]]] = [
        (0.10, lambda: bullet_list(rng)),
        (0.30, lambda: fence(CODE_A)),
        (0.55, lambda: table(rng)),
        (0.80, lambda: fence(CODE_B)),
    ]
    blocks = [paragraph(rng)]
    size = len(blocks[0])
    while size < target or planned:
        due = planned and size >= planned[0][0] * target
        block = planned.pop(0)[1]() if due else paragraph(rng)
        blocks.append(block)
        size += len(block) + 2
    text = "\n\n".join(blocks)
    if len(text) > target and blocks[-1][0].isalpha():  # trim the closing paragraph
        text = text[:target].rsplit(" ", 1)[0].rstrip(".") + "."
    return text + "\n"


def reasoning_text(tokens: int, seed: int = 5) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    while sum(len(p) + 2 for p in parts) < tokens * CHARS_PER_TOKEN:
        parts.append(" ".join(sentence(rng) for _ in range(rng.randint(2, 5))))
    return "\n\n".join(parts)[: tokens * CHARS_PER_TOKEN]


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Case:
    name: str
    answer_tokens: int
    reasoning_tokens: int = 0

    @property
    def conversation(self) -> str:
        return "bench-" + "-".join(re.findall(r"\w+", self.name))

    @property
    def deltas(self) -> int:
        return self.answer_tokens + self.reasoning_tokens


@dataclass(frozen=True)
class Timing:
    rate: float  # tokens/s the fake streamed at
    arrived: float  # Unix time the chat request reached the fake
    first_data: float  # Unix time the first SSE data frame left the fake
    first_text: float  # ... and the first frame with answer text


@dataclass(frozen=True)
class Result:
    case: Case
    rate: float
    answer_bytes: int
    reasoning_bytes: int
    cell_seconds: float  # request reached the server -> kernel idle
    display_msgs: int
    widget_msgs: int
    display_bytes: int
    widget_bytes: int
    final_bytes: int  # the closing clear_output and the static bundles
    largest_bytes: int
    largest_type: str
    final_outputs: int
    largest_redraw_bytes: int  # the largest live update_display_data / widget comm_msg
    first_answer: float
    first_reasoning: float | None
    answer_lag: float  # first answer frame left the fake -> first answer display
    reasoning_lag: float | None  # first data frame left the fake -> reasoning widget text
    peak_per_second: int
    wire_bytes: int  # header, parent header, metadata and content
    kernel_cpu: float  # seconds of kernel CPU for the cell
    details_bytes: int  # the final <details> bundle of the reasoning


def packed_size(obj: Any) -> int:
    """Bytes of ``obj`` as jupyter_client's default packer writes it (json, UTF-8)."""
    return len(json.dumps(obj, ensure_ascii=False, default=str).encode("utf-8"))


def wire_size(msg: dict[str, Any]) -> int:
    parts = ("header", "parent_header", "metadata", "content")
    return sum(packed_size(msg[p]) for p in parts)


def sent_at(msg: dict[str, Any]) -> float:
    """The kernel's send time (header ``date``), as a Unix timestamp."""
    date = msg["header"]["date"]
    return (date if isinstance(date, datetime) else datetime.fromisoformat(date)).timestamp()


def is_answer_display(msg: dict[str, Any]) -> bool:
    data = msg["content"].get("data", {})
    if msg["msg_type"] == "clear_output" or "text/html" not in data or WIDGET_MIME in data:
        return False
    # not the "⋯ Waiting for MODEL" line shown before anything arrives
    return not str(data.get("text/plain", "")).startswith("⋯ ")


def shows_reasoning(msg: dict[str, Any]) -> bool:
    state = msg["content"].get("data", {}).get("state", {})
    return bool(state.get("value"))


def first_time(messages: Sequence[dict[str, Any]], test: Callable[[dict[str, Any]], bool]) -> float:
    for msg in messages:
        if test(msg):
            return sent_at(msg)
    raise BenchError("no message of the expected kind was sent")


def peak_per_second(times: Sequence[float]) -> int:
    """The most messages sent within any one-second window."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def split_final(displays: Messages) -> tuple[Messages, Messages]:
    """(live redraws, final part): the final part is the last clear_output and the static
    outputs after it, which replace the live ones and get saved."""
    clears = [i for i, m in enumerate(displays) if m["msg_type"] == "clear_output"]
    cut = clears[-1] if clears else len(displays)
    return displays[:cut], displays[cut:]


def check(execution: Execution, server: FakeOpenRouter, answer: str) -> None:
    if execution.status != "ok":
        raise BenchError(f"the cell failed: {execution.error_text()}")
    requests = server.chat_requests()
    if len(requests) != 1:
        raise BenchError(f"expected one chat request, the server saw {len(requests)}")
    if requests[0].client_disconnected:
        raise BenchError("the kernel closed the stream before the end")
    finals = [o for o in execution.final_outputs() if "text/markdown" in o.get("data", {})]
    if len(finals) != 1 or finals[0]["data"]["text/plain"] != answer:
        raise BenchError("the saved answer differs from the streamed one")


def total_size(messages: Messages) -> int:
    return sum(packed_size(m["content"]) for m in messages)


def largest_redraw(traffic: Messages) -> int:
    redraws = [m for m in traffic if m["msg_type"] in ("update_display_data", "comm_msg")]
    return max((packed_size(m["content"]) for m in redraws), default=0)


def details_size(final: Messages) -> int:
    return sum(
        packed_size(m["content"])
        for m in final
        if str(m["content"].get("data", {}).get("text/html", "")).startswith("<details>")
    )


def measure(
    case: Case, reply: StreamReply, execution: Execution, timing: Timing, cpu: float
) -> Result:
    displays = execution.display_messages()
    widgets = execution.of_type(*WIDGET_TYPES)
    live, final = split_final(displays)
    traffic = displays + widgets
    largest = max(traffic, key=lambda m: packed_size(m["content"]))
    arrived = timing.arrived
    return Result(
        case=case,
        rate=timing.rate,
        answer_bytes=len(reply.text.encode()),
        reasoning_bytes=len(reply.reasoning.encode()),
        cell_seconds=sent_at(execution.messages[-1]) - arrived,
        display_msgs=len(displays),
        widget_msgs=len(widgets),
        display_bytes=total_size(displays),
        widget_bytes=total_size(widgets),
        final_bytes=total_size(final),
        largest_bytes=packed_size(largest["content"]),
        largest_type=largest["msg_type"],
        largest_redraw_bytes=largest_redraw(live + widgets),
        final_outputs=len(execution.final_outputs()),
        first_answer=first_time(displays, is_answer_display) - arrived,
        first_reasoning=(
            first_time(widgets, shows_reasoning) - arrived if reply.reasoning else None
        ),
        answer_lag=first_time(displays, is_answer_display) - timing.first_text,
        reasoning_lag=(
            first_time(widgets, shows_reasoning) - timing.first_data if reply.reasoning else None
        ),
        peak_per_second=peak_per_second([sent_at(m) for m in traffic]),
        wire_bytes=sum(wire_size(m) for m in traffic),
        kernel_cpu=cpu,
        details_bytes=details_size(final),
    )


class Relay:
    """A loopback TCP relay between the kernel and the fake that notes when the first SSE
    data frame, and the first with answer text, pass towards the kernel.

    The fake builds every frame of a reply before it sends the first (0.3 s for 16,000
    deltas), so "request reached the server" and "first delta left it" differ; the relay
    tells ormagic's share of the latency from the fake's.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.first_data: float | None = None
        self.first_text: float | None = None
        threading.Thread(target=self._accept, daemon=True, name="relay").start()

    def reset(self) -> None:
        self.first_data = self.first_text = None

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self._target)
            for src, dst, watch in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, watch), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, watch: bool) -> None:
        tail = b""  # a frame's marker may straddle two reads
        with contextlib.suppress(OSError):
            while chunk := src.recv(65536):
                if watch:
                    self._note(tail + chunk)
                    tail = chunk[-64:]
                dst.sendall(chunk)
            dst.shutdown(socket.SHUT_WR)

    def _note(self, data: bytes) -> None:
        now = time.time()
        if self.first_data is None and SSE_DATA in data:
            self.first_data = now
        if self.first_text is None and ANSWER_DELTA.search(data):
            self.first_text = now


@dataclass
class Rig:
    """The fake server, the relay in front of it and the kernel, for every case."""

    server: FakeOpenRouter
    relay: Relay
    kernel: Kernel
    arrivals: list[float]  # Unix times the fake started answering a chat request

    def timing(self, rate: float) -> Timing:
        first_data, first_text = self.relay.first_data, self.relay.first_text
        if len(self.arrivals) != 1 or first_data is None or first_text is None:
            raise BenchError("the relay did not see the request and its answer")
        return Timing(rate, self.arrivals[0], first_data, first_text)


def run_case(rig: Rig, case: Case, rate: float) -> Result:
    answer = markdown_answer(case.answer_tokens)
    reasoning = reasoning_text(case.reasoning_tokens) if case.reasoning_tokens else ""
    reply = StreamReply(
        text=answer, reasoning=reasoning, chunk_chars=CHARS_PER_TOKEN, delay=1 / rate
    )
    rig.server.reset()
    rig.relay.reset()
    rig.arrivals.clear()
    rig.server.enqueue(reply)
    timeout = 2 * case.deltas / rate + 60
    code = f"%%chat -c {case.conversation}\n{PROMPT}"
    execution, cpu = timed_cell(rig.kernel, code, timeout)
    check(execution, rig.server, answer)
    result = measure(case, reply, execution, rig.timing(rate), cpu)
    print(f"  {case.name}: {result.cell_seconds:.1f} s", file=sys.stderr, flush=True)
    return result


def timed_cell(kernel: Kernel, code: str, timeout: float) -> tuple[Execution, float]:
    """Run ``code``; also the kernel CPU seconds it took (cells before and after read it)."""
    kernel.execute("import time as _bench_time\n_bench_cpu = _bench_time.process_time()")
    execution = kernel.execute(code, timeout=timeout)
    after = kernel.execute("print(_bench_time.process_time() - _bench_cpu)")
    if not kernel.manager.is_alive():
        raise BenchError("the kernel died")
    return execution, float(after.stream_text().strip())


NAIVE_CELL = """\
from IPython.display import Markdown, display
from ormagic.client.http import ChatRequest, OpenRouterClient
from ormagic.client.settings import ClientSettings
from ormagic.events import TextDelta

_naive_text = ""
_naive_handle = display(Markdown(""), display_id=True)
with OpenRouterClient(ClientSettings.from_env()) as _naive_client:
    with _naive_client.stream_chat(ChatRequest([{"role": "user", "content": "q"}])) as _events:
        for _event in _events:
            if isinstance(_event, TextDelta):
                _naive_text += _event.text
                _naive_handle.update(Markdown(_naive_text))
"""


@dataclass(frozen=True)
class Naive:
    """The naive way on the same stream: one display updated with all the text per chunk."""

    display_msgs: int
    display_bytes: int
    kernel_cpu: float
    cell_seconds: float


def run_naive(rig: Rig, tokens: int) -> Naive:
    answer = markdown_answer(tokens)
    reply = StreamReply(text=answer, chunk_chars=CHARS_PER_TOKEN, delay=1 / RATE)
    rig.server.reset()
    rig.arrivals.clear()
    rig.server.enqueue(reply)
    execution, cpu = timed_cell(rig.kernel, NAIVE_CELL, 2 * tokens / RATE + 60)
    if execution.status != "ok":
        raise BenchError(f"the naive cell failed: {execution.error_text()}")
    displays = execution.display_messages()
    if displays[-1]["content"]["data"].get("text/markdown") != answer:
        raise BenchError("the naive display does not end with the answer")
    seconds = sent_at(execution.messages[-1]) - rig.arrivals[0]
    print(f"  naive {tokens}: {seconds:.1f} s", file=sys.stderr, flush=True)
    return Naive(len(displays), total_size(displays), cpu, seconds)


def projected_seconds(last: Case, done: Sequence[Result], elapsed: float) -> float:
    """The whole run's length if ``last`` ran at RATE, from the seconds per delta so far."""
    per_delta = sum(r.cell_seconds for r in done) / sum(r.case.deltas for r in done)
    return elapsed + last.deltas * per_delta


# --------------------------------------------------------------------------- report


def kb(n: int) -> str:
    return f"{n / 1000:,.1f}"


def seconds(answer: float, reasoning: float | None) -> str:
    shown = f"{answer:.2f} s"
    if reasoning is not None:
        shown += f" (reasoning: {reasoning:.2f} s)"
    return shown


def millis(answer: float, reasoning: float | None) -> str:
    shown = f"{answer * 1000:.0f} ms"
    if reasoning is not None:
        shown += f" (reasoning: {reasoning * 1000:.0f} ms)"
    return shown


def main_table(results: Sequence[Result]) -> str:
    head = (
        "| case | tokens/s | cell s | kernel CPU s | display msgs | widget msgs | display KB "
        "| widget KB | total ÷ answer | largest msg | final outputs | first answer text "
        "| of which ormagic |"
    )
    rows = [head, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        total = r.display_bytes + r.widget_bytes
        rows.append(
            f"| {r.case.name} | {r.rate:.0f} | {r.cell_seconds:.1f} | {r.kernel_cpu:.2f} "
            f"| {r.display_msgs} "
            f"| {r.widget_msgs} | {kb(r.display_bytes)} | {kb(r.widget_bytes)} "
            f"| {total / r.answer_bytes:.2f}x | {kb(r.largest_bytes)} KB "
            f"({r.largest_type}) | {r.final_outputs} "
            f"| {seconds(r.first_answer, r.first_reasoning)} "
            f"| {millis(r.answer_lag, r.reasoning_lag)} |"
        )
    return "\n".join(rows)


def goals_table(results: Sequence[Result]) -> str:
    head = "| case | all display traffic ÷ answer | goal | reasoning panel ÷ reasoning | goal |"
    rows = [head, "|---|--:|---|--:|---|"]
    for r in results:
        total = (r.display_bytes + r.widget_bytes) / r.answer_bytes
        met = "≤ 5x: met" if total <= 5 else "≤ 5x: **not met**"
        panel, panel_goal = "", ""
        if r.reasoning_bytes:
            ratio = (r.widget_bytes + r.details_bytes) / r.reasoning_bytes
            panel = f"{ratio:.1f}x"
            panel_goal = "≤ 6x: met" if ratio <= 6 else "≤ 6x: **not met**"
            met = "(reasoning case)"
        rows.append(f"| {r.case.name} | {total:.2f}x | {met} | {panel} | {panel_goal} |")
    return "\n".join(rows)


def naive_table(ours: Result, naive: Naive) -> str:
    head = (
        "| the same 4,000-chunk stream | display messages | display MB | ÷ answer | kernel CPU s |"
    )
    rows = [head, "|---|--:|--:|--:|--:|"]
    total = ours.display_bytes + ours.widget_bytes
    ours_msgs = ours.display_msgs + ours.widget_msgs
    rows.append(
        f"| ormagic `%%chat` | {ours.display_msgs + ours.widget_msgs} | {total / 1e6:.3f} "
        f"| {total / ours.answer_bytes:.1f}x | {ours.kernel_cpu:.2f} |"
    )
    rows.append(
        f"| naive: one display updated per chunk | {naive.display_msgs} "
        f"| {naive.display_bytes / 1e6:.1f} | {naive.display_bytes / ours.answer_bytes:,.0f}x "
        f"| {naive.kernel_cpu:.2f} |"
    )
    rows.append(
        f"| naive ÷ ormagic | {naive.display_msgs / ours_msgs:.0f}x "
        f"| {naive.display_bytes / total:.0f}x | | {naive.kernel_cpu / ours.kernel_cpu:.1f}x |"
    )
    return "\n".join(rows)


def detail_table(results: Sequence[Result]) -> str:
    head = (
        "| case | answer KB | reasoning KB | live display KB | final bundles KB "
        "| live ÷ streamed text | largest live redraw KB | peak msgs/s | KB with headers |"
    )
    rows = [head, "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        live = r.display_bytes - r.final_bytes + r.widget_bytes
        streamed = r.answer_bytes + r.reasoning_bytes
        rows.append(
            f"| {r.case.name} | {kb(r.answer_bytes)} | {kb(r.reasoning_bytes)} "
            f"| {kb(r.display_bytes - r.final_bytes)} | {kb(r.final_bytes)} "
            f"| {live / streamed:.2f}x | {kb(r.largest_redraw_bytes)} | {r.peak_per_second} "
            f"| {kb(r.wire_bytes)} |"
        )
    return "\n".join(rows)


NAIVE_TOKENS = 4000  # the naive baseline runs on the 4k case's stream
CASES = (
    Case("1k", 1000),
    Case("4k", 4000),
    Case("reasoning 2k + 1k", 1000, reasoning_tokens=2000),
    Case("16k", 16000),
)


def run_cases(rig: Rig, started: float) -> tuple[list[Result], Naive, str]:
    loaded = rig.kernel.execute("%load_ext ormagic")
    if loaded.status != "ok":
        raise BenchError(f"%load_ext ormagic failed: {loaded.error_text()}")
    *first, last = CASES
    results = [run_case(rig, case, RATE) for case in first]
    naive = run_naive(rig, NAIVE_TOKENS)
    projected = projected_seconds(last, results, time.monotonic() - started)
    rate = RATE if projected <= RUN_LIMIT else FAST_RATE
    results.append(run_case(rig, last, rate))
    note = (
        f"The {last.name} case ran at {rate:.0f} tokens/s: at {RATE:.0f} tokens/s the run was "
        f"projected at {projected:.0f} s (limit {RUN_LIMIT:.0f} s)."
    )
    ordered = sorted(results, key=lambda r: (r.case.reasoning_tokens > 0, r.case.deltas))
    return ordered, naive, note


def run_all(started: float) -> tuple[list[Result], Naive, str]:
    arrivals: list[float] = []
    with FakeOpenRouter() as server:
        # The fake logs a request line when it starts answering: the request has arrived.
        server.log = lambda line: arrivals.append(time.time()) if CHAT_LINE in line else None
        relay = Relay((server.host, server.port))
        base_url = f"http://127.0.0.1:{relay.port}/api/v1"
        try:
            kernel = Kernel({"OPENROUTER_API_KEY": server.api_key, "OPENROUTER_BASE_URL": base_url})
            try:
                return run_cases(Rig(server, relay, kernel, arrivals), started)
            finally:
                kernel.shutdown()
        finally:
            relay.close()


def main() -> int:
    started = time.monotonic()
    try:
        results, naive, note = run_all(started)
    except BenchError as exc:
        print(f"bench_stream: {exc}", file=sys.stderr)
        return 1
    print(main_table(results))
    print()
    print(detail_table(results))
    print()
    print(goals_table(results))
    print()
    [same_stream] = [r for r in results if r.case.answer_tokens == NAIVE_TOKENS]
    print(naive_table(same_stream, naive))
    print()
    print(note)
    print(f"Whole run: {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
