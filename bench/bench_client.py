"""Client throughput: chunks per second through ormagic's client and SSE decoder, side by
side with a bare httpx loop on the same stream from the same loopback server (a script).

    .venv/bin/python bench/bench_client.py

The fake OpenRouter serves one prebuilt stream of 20,000 chat completion chunks (the
chunks OpenRouter sends, about 260 bytes each) in 64 KB writes, so the server is not
what is measured. Each round runs both readers on the same bytes, alternating which goes
first; the figure is the median of the rounds, and the ratio is taken within the run:

* **bare httpx**: ``Client.stream`` + ``iter_lines`` + ``json.loads`` of each ``data:``
  line, nothing else (the least a client can do);
* **ormagic**: ``OpenRouterClient.stream_chat`` to typed events (bytes -> lines -> SSE
  events -> JSON -> ``TextDelta``), with its status checks, keep-alives, usage and
  terminal event.

Goal: ormagic at least 1/1.3 of the bare loop's chunks per second.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable

import httpx

from ormagic.client.http import ChatRequest, OpenRouterClient
from ormagic.client.settings import ClientSettings, Secret
from ormagic.events import TextDelta
from ormagic.testing._frames import Chat, plan_stream
from ormagic.testing.fake_openrouter import FakeOpenRouter, RawReply, StreamReply

CHUNKS = 20_000
ROUNDS = 11
WRITE = 65_536
GOAL = 1 / 1.3


def stream_bytes() -> bytes:
    chat = Chat(
        generation_id="gen-1785160442-benchbenchbench", created=1, model="m/x", provider="P"
    )
    usage = {"prompt_tokens": 10, "completion_tokens": CHUNKS, "total_tokens": CHUNKS + 10}
    reply = StreamReply(text="tok " * CHUNKS, chunk_chars=4)
    return b"".join(frame.data for frame in plan_stream(reply, chat, usage))


def bare(fake: FakeOpenRouter) -> int:
    """The least a client can do: split lines, parse each data line's JSON."""
    body = {"model": "m/x", "messages": [{"role": "user", "content": "q"}], "stream": True}
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    count = 0
    with (
        httpx.Client() as client,
        client.stream("POST", f"{fake.base_url}/chat/completions", json=body, headers=headers) as r,
    ):
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = line[6:]
                if data == "[DONE]":
                    break
                json.loads(data)
                count += 1
    return count


def ormagic(fake: FakeOpenRouter) -> int:
    settings = ClientSettings(api_key=Secret(fake.api_key), base_url=fake.base_url)
    count = 0
    with OpenRouterClient(settings) as client:
        request = ChatRequest([{"role": "user", "content": "q"}], model="m/x")
        with client.stream_chat(request) as events:
            for event in events:
                count += isinstance(event, TextDelta)
    return count


def timed(fake: FakeOpenRouter, body: bytes, reader: Callable[[FakeOpenRouter], int]) -> float:
    fake.enqueue(RawReply([body[i : i + WRITE] for i in range(0, len(body), WRITE)]))
    started = time.perf_counter()
    count = reader(fake)
    elapsed = time.perf_counter() - started
    if count < CHUNKS:
        raise RuntimeError(f"{reader.__name__} read {count} chunks of {CHUNKS}")
    return CHUNKS / elapsed


def main() -> int:
    body = stream_bytes()
    rates: dict[str, list[float]] = {"bare httpx": [], "ormagic": []}
    with FakeOpenRouter() as fake:
        for round_ in range(ROUNDS):
            order = [("bare httpx", bare), ("ormagic", ormagic)]
            for name, reader in order if round_ % 2 == 0 else order[::-1]:
                rates[name].append(timed(fake, body, reader))
    bare_rate = statistics.median(rates["bare httpx"])
    ours = statistics.median(rates["ormagic"])
    ratio = ours / bare_rate
    print(f"{CHUNKS:,} chunks, {len(body) / 1e6:.1f} MB, median of {ROUNDS} rounds")
    print()
    print("| reader | chunks/s | ÷ bare httpx |")
    print("|---|--:|--:|")
    print(f"| bare httpx (iter_lines + json.loads) | {bare_rate:,.0f} | 1.00 |")
    print(f"| ormagic client (typed events) | {ours:,.0f} | {ratio:.2f} |")
    print()
    met = "met" if ratio >= GOAL else "NOT met"
    print(f"Goal: ormagic ≥ 1/1.3 = {GOAL:.2f} of the bare loop: {met} ({ratio:.2f}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
