"""Choosing a model in a real kernel: ``%chat providers`` and ``%%chat -m A -m B``.

What a frontend receives over IOPub, and what nbclient saves.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from pathlib import Path
from typing import Any

import nbformat
import pytest
from kernel_support import Execution, Kernel
from nbclient import NotebookClient
from waiting import eventually

from ormagic.testing.fake_openrouter import ErrorReply, FakeOpenRouter, StreamReply

pytestmark = pytest.mark.timeout(180)

A, B, C = "deepseek/deepseek-v4-flash", "openai/gpt-5-nano", "anthropic/claude-sonnet-4.6"
DASH = "\u2013"
CREDITS = (
    "Not enough credits (Insufficient credits). Add credits at "
    "https://openrouter.ai/settings/credits or lower --max-tokens."
)


def ok(kernel: Kernel, code: str) -> Execution:
    execution = kernel.execute(code)
    assert execution.status == "ok", execution.error_text()
    return execution


def usage(prompt: int, completion: int, cost: float) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": cost,
    }


def the_output(execution: Execution) -> dict[str, Any]:
    """The side-by-side cell's one saved output."""
    [output] = [o for o in execution.final_outputs() if "data" in o]
    return output


def widget_values(execution: Execution) -> list[tuple[int, str]]:
    """(message index, HTML) of every widget value the frontend received, in order."""
    found = []
    for i, message in enumerate(execution.messages):
        if message["msg_type"] not in ("comm_open", "comm_msg"):
            continue
        state = message["content"].get("data", {}).get("state", {})
        if isinstance(state.get("value"), str):
            found.append((i, state["value"]))
    return found


def overlap(server: FakeOpenRouter) -> bool:
    first, second = server.chat_requests()[:2]
    assert first.ended is not None and second.ended is not None
    return first.started < second.ended and second.started < first.ended


# --------------------------------------------------------------------------- side by side


def test_two_models_stream_at_once_in_columns_and_save_one_table(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    # each answer stops halfway (15 words) until its column shows them: the frontend
    # sees the first words, then more, however fast or slow the machine
    halfway = {"alpha": threading.Event(), "bravo": threading.Event()}
    server.enqueue_for(
        A,
        StreamReply(
            reasoning="Alpha thinks.",
            text="alpha " * 30,
            chunk_chars=6,
            gates={90: halfway["alpha"]},
            usage=usage(40, 60, 0.00002),
            provider="DeepSeek",
            wait_for_in_flight=2,
        ),
    )
    server.enqueue_for(
        B,
        StreamReply(
            text="bravo " * 30,
            chunk_chars=6,
            gates={90: halfway["bravo"]},
            usage=usage(40, 45, 0.00003),
            provider="OpenAI",
            wait_for_in_flight=2,
        ),
    )

    def open_once_shown(message: dict[str, Any]) -> None:
        value = message["content"].get("data", {}).get("state", {}).get("value")
        for word, gate in halfway.items():
            if isinstance(value, str) and value.count(word) == 15:
                gate.set()

    try:
        execution = kernel.execute(
            f"%%chat -c sbs -m {A} -m {B}\nCompare yourselves.", on_message=open_once_shown
        )
    finally:
        for gate in halfway.values():
            gate.set()
    assert execution.status == "ok", execution.error_text()
    # both requests were in flight together
    assert overlap(server)
    # both answers streamed into their columns before the final output replaced them
    final_at = max(i for i, m in enumerate(execution.messages) if m["msg_type"] == "display_data")
    for word in ("alpha", "bravo"):
        shown = [(i, v) for i, v in widget_values(execution) if word in v]
        assert 15 in {v.count(word) for _, v in shown}, word  # the first words, then more
        assert shown[0][1].count(word) < shown[-1][1].count(word) == 30
        assert shown[-1][0] < final_at
    # the saved output: one static table, no widget, every model's usage and cost
    output = the_output(execution)
    assert sorted(output["data"]) == ["text/html", "text/markdown", "text/plain"]
    html = output["data"]["text/html"]
    assert html.startswith('<table style="width:100%;table-layout:fixed')
    assert f"[1] {A} <span" in html and f"[2] {B}</th>" in html
    assert "<summary>Thought for " in html and "Alpha thinks." in html
    assert html.count("alpha") == 30 and html.count("bravo") == 30
    assert f"{A} via DeepSeek · 40 in / 60 out · $0.00002 · " in html
    assert f"{B} via OpenAI · 40 in / 45 out · $0.00003 · " in html
    meta = output["metadata"]["ormagic"]
    assert (meta["conversation"], meta["chosen"]) == ("sbs", 0)
    assert [(a["model"], a["provider"], a["cost"]) for a in meta["answers"]] == [
        (A, "DeepSeek", 0.00002),
        (B, "OpenAI", 0.00003),
    ]
    assert [a["usage"]["completion_tokens"] for a in meta["answers"]] == [60, 45]
    assert all(a["generation_id"].startswith("gen-") for a in meta["answers"])
    assert not any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        for o in execution.final_outputs()
    )
    history = ok(kernel, "%chat history sbs").final_outputs()[0]["data"]["text/plain"]
    assert history.splitlines()[:2] == [
        "[1] You: Compare yourselves.",
        f"[1] {A} (answer 1 of 2, kept): " + "alpha " * 30,
    ]
    assert f"[1] {B} (answer 2 of 2): " + "bravo " * 30 in history


def test_one_failing_model_does_not_stop_the_others(kernel: Kernel, server: FakeOpenRouter) -> None:
    server.enqueue_for(A, StreamReply(text="Alpha answers in full.", delay=0.01, chunk_chars=4))
    server.enqueue_for(B, ErrorReply(402, "Insufficient credits"))
    server.enqueue_for(C, StreamReply(text="Charlie began", error={"code": 502, "message": "Lost"}))
    execution = ok(kernel, f"%%chat -c fails -m {A} -m {B} -m {C}\nGo")
    output = the_output(execution)
    text = output["data"]["text/plain"]
    first, second, third = text.split("\n\n── ")
    assert first.startswith(f"── [1] {A} (kept) ──\nAlpha answers in full.\n")
    assert second.startswith(f"[2] {B} ──\n⚠ {CREDITS}\n{B} · usage unavailable · $0 · ")
    assert third.startswith(f"[3] {C} ──\nCharlie began\n⚠ ")
    answers = output["metadata"]["ormagic"]["answers"]
    assert [a["error"] is None for a in answers] == [True, False, False]
    assert answers[1]["error"] == CREDITS
    # B's error showed in its column while it streamed, not only at the end
    assert any(CREDITS in v for _, v in widget_values(execution))


def test_pick_moves_the_kept_mark_and_the_conversation(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    server.enqueue_for(A, StreamReply(text="Alpha."))
    server.enqueue_for(B, StreamReply(text="Bravo."))
    asked = ok(kernel, f"%%chat -c pk -m {A} -m {B}\nFirst?")
    display_id = the_output(asked)["transient"]["display_id"]
    picked = ok(kernel, "%chat pick 2 -c pk")
    [reply] = picked.of_type("display_data")
    assert reply["content"]["data"]["text/plain"] == (
        f"Conversation 'pk' continues from answer 2 ({B}) of turn 1."
    )
    [update] = picked.of_type("update_display_data")
    assert update["content"]["transient"]["display_id"] == display_id
    assert update["content"]["metadata"]["ormagic"]["chosen"] == 1
    # the repaint's records (made from the comparison kept without its requests) are the
    # first output's, but for which answer is kept
    before = the_output(asked)["metadata"]["ormagic"]["answers"]
    after = update["content"]["metadata"]["ormagic"]["answers"]
    assert [a["chosen"] for a in after] == [False, True]
    assert [{**a, "chosen": None} for a in after] == [{**a, "chosen": None} for a in before]
    html = update["content"]["data"]["text/html"]
    assert f"[1] {A}</th>" in html and f"[2] {B} <span" in html
    server.reset()
    ok(kernel, "%%chat -c pk\nAnd then?")
    messages = server.chat_requests()[0].body["messages"]
    assert messages[-2] == {"role": "assistant", "content": "Bravo."}
    assert messages[-1]["content"].endswith("And then?")
    assert "Alpha." not in json.dumps(messages)
    history = ok(kernel, "%chat history pk").final_outputs()[0]["data"]["text/plain"]
    assert f"[1] {B} (answer 2 of 2, kept): Bravo." in history
    refused = kernel.execute("%chat pick 3 -c pk --turn 1")
    assert refused.error_text() == "UsageError: Turn 1 of 'pk' has answers 1 to 2, not 3."


def test_an_interrupt_stops_every_model_and_keeps_what_each_had(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    # A stops after 60 characters, B after its words: both are mid-answer when the
    # interrupt comes (the gate is never opened)
    held = threading.Event()
    server.enqueue_for(A, StreamReply(text="alpha " * 400, gates={60: held}, wait_for_in_flight=2))
    server.enqueue_for(B, StreamReply(text="bravo " * 5, stall=120, wait_for_in_flight=2))
    execution = kernel.execute(
        f"%%chat -c stop -m {A} -m {B}\nGo", interrupt_after="bravo bravo bravo bravo bravo"
    )
    assert execution.error_text() == (
        "UsageError: Interrupted (partial answers kept in the conversation)."
    )
    requests = server.chat_requests()
    eventually(lambda: all(r.client_disconnected for r in requests), "both streams closed")
    text = the_output(execution)["data"]["text/plain"]
    assert text.count("⏹ Interrupted: the partial answer is kept in the conversation.") == 2
    assert "bravo " * 5 in text
    history = ok(kernel, "%chat history stop").final_outputs()[0]["data"]["text/plain"]
    assert f"[1] {A} (answer 1 of 2, kept, interrupted): alpha" in history
    assert f"[1] {B} (answer 2 of 2, interrupted): " + "bravo " * 5 in history
    ok(kernel, "%%chat -c stop\nStill there?")  # the next cell works


def test_saved_notebook_keeps_the_table_and_the_pick(
    fake_env: FakeOpenRouter, tmp_path: Path
) -> None:
    fake_env.enqueue_for(A, StreamReply(text="It is **4**.", usage=usage(9, 5, 0.000002)))
    fake_env.enqueue_for(B, StreamReply(text="Four.", usage=usage(9, 2, 0.000003)))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext ormagic"),
        nbformat.v4.new_code_cell(f"%%chat -m {A} -m {B}\nWhat is 2+2?"),
        nbformat.v4.new_code_cell(f"%chat pick {B}"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    path = tmp_path / "side-by-side.ipynb"
    nbformat.write(nb, path)
    saved = nbformat.read(path, as_version=4)
    nbformat.validate(saved)
    [output] = saved.cells[1].outputs
    assert output.output_type == "display_data"
    assert "<strong>4</strong>" in output.data["text/html"]
    assert f"[2] {B} <span" in output.data["text/html"]  # the pick reached the saved output
    assert output.data["text/plain"].startswith(f"── [1] {A} ──\nIt is **4**.\n")
    meta = output.metadata["ormagic"]
    assert meta["chosen"] == 1
    assert [(a["model"], a["cost"]) for a in meta["answers"]] == [(A, 0.000002), (B, 0.000003)]
    text = path.read_text()
    assert "widget-view" not in text
    assert fake_env.api_key not in text


# --------------------------------------------------------------------------- providers


PRICE_SORTED = [
    "Chutes     chutes         fp8      163,840     163,840      $0.08       $0.20"
    "       2.10 s       35.2   91.4%  no     yes        degraded (-2)",
    "DeepInfra  deepinfra/fp4  fp4      262,144      65,536      $0.10       $0.30"
    "       0.41 s      142.3  100.0%  yes    yes        ok",
    "DeepSeek   deepseek       fp8    1,048,576     393,216      $0.14       $0.28"
    "       0.82 s       61.5   99.2%  yes    yes        ok",
    f"Novita     novita         {DASH}      1,048,576     131,072      $0.20       $0.40"
    f"            {DASH}          {DASH}   97.5%  yes    yes        ok",
]


def test_providers_table_and_chart(kernel: Kernel, server: FakeOpenRouter) -> None:
    execution = ok(kernel, "%chat providers --sort price")  # the current model
    table, chart = (m["content"]["data"] for m in execution.of_type("display_data"))
    lines = table["text/plain"].splitlines()
    assert lines[1:] == [*PRICE_SORTED, f"4 providers of {A}"]
    html = table["text/html"]
    assert html.startswith("<table><thead><tr><th>provider</th>")
    assert '<td style="text-align:right">2.10 s</td>' in html
    assert "<p>Not in the chart (no throughput figure yet): Novita.</p>" in html
    png = base64.b64decode(chart["image/png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert (
        chart["text/plain"] == "[chart: price against throughput for Chutes, DeepInfra, DeepSeek]"
    )
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", f"/api/v1/models/{A}/endpoints")
    ]
    latency = ok(kernel, f"%chat providers {A} --chart latency --sort latency")
    [_, chart] = (m["content"]["data"] for m in latency.of_type("display_data"))
    assert chart["text/plain"] == "[chart: price against latency for DeepInfra, DeepSeek, Chutes]"
    bare = ok(kernel, f"%chat providers {B} --chart none")
    [only] = bare.of_type("display_data")
    assert only["content"]["data"]["text/plain"].splitlines()[1] == (
        f"OpenAI    openai  {DASH}      400,000     128,000      $0.05       $0.40"
        "       0.65 s       80.0   99.9%  yes    yes        ok"
    )


def test_providers_of_an_unknown_model_suggest_the_closest(
    kernel: Kernel, server: FakeOpenRouter
) -> None:
    execution = kernel.execute("%chat providers deepseek/deepseek-v4")
    assert execution.error_text() == (
        "UsageError: No model 'deepseek/deepseek-v4' on OpenRouter; "
        "closest: deepseek/deepseek-v4-flash."
    )
    assert execution.of_type("error") == []  # one line, no traceback


def test_providers_without_matplotlib_say_how_to_get_the_chart(kernel: Kernel) -> None:
    code = (
        "import sys\n"
        "_saved = {k: v for k, v in sys.modules.items() if k.split('.')[0] == 'matplotlib'}\n"
        "for _k in _saved: del sys.modules[_k]\n"
        "sys.modules['matplotlib'] = None\n"
        "try:\n"
        "    get_ipython().run_line_magic('chat', 'providers')\n"
        "finally:\n"
        "    del sys.modules['matplotlib']\n"
        "    sys.modules.update(_saved)\n"
    )
    execution = ok(kernel, code)
    [table] = execution.of_type("display_data")
    html = table["content"]["data"]["text/html"]
    assert html.endswith(
        "<p>For a chart of price against speed: pip install &#x27;ormagic[plot]&#x27; "
        "(matplotlib).</p>"
    )
    assert re.search(r"4 providers of deepseek/deepseek-v4-flash</p>", html)
    assert json.dumps(table["content"]["data"]).count("image/png") == 0
