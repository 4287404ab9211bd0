"""How much a saved answer's resume record weighs next to what the cell shows (a script).

    .venv/bin/python bench/bench_record.py

A long reasoning answer (about 8,000 tokens of reasoning with an encrypted detail, and a
2,000-token answer with code) goes through the real notebook view; the final outputs a
saved notebook keeps (the reasoning <details>, the answer as HTML, Markdown and text, the
footer) are compared with the `ormagic` record in the answer's output metadata, which
holds what the conversation needs to continue after a restart.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_markdown import answer as generated_answer

from ormagic.engine.conversation import Response
from ormagic.engine.resume import record
from ormagic.events import Finished, ReasoningDelta, TextDelta, Usage
from ormagic.render.views import NotebookView
from ormagic.view import FinalSummary


class Recorder:
    """A publisher that keeps the final outputs, as a saved notebook would."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []

    def display(
        self,
        bundle: Mapping[str, Any],
        *,
        display_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.outputs.append({"data": dict(bundle), "metadata": dict(metadata or {})})

    def display_widget(self, widget: Any) -> None:
        """Widgets are not saved."""

    def update(self, bundle: Mapping[str, Any], *, display_id: str) -> None:
        """Live redraws are not saved."""

    def clear(self) -> None:
        self.outputs.clear()


def main() -> None:
    reasoning = " ".join(f"step {i}: consider the residuals of model {i % 7}." for i in range(800))
    text = generated_answer(8_000)
    details = [
        {"type": "reasoning.text", "text": reasoning, "format": "unknown", "index": 0},
        {"type": "reasoning.encrypted", "data": "gAAAAB" + "x" * 2_000, "index": 1},
    ]
    message = {
        "role": "assistant",
        "content": text,
        "reasoning": reasoning,
        "reasoning_details": details,
    }
    usage = Usage(prompt_tokens=1_500, completion_tokens=10_000, reasoning_tokens=8_000)
    saved = record(
        conversation="default",
        system=None,
        session_id="ormagic-0123456789abcdef0123456789abcdef",
        prompt="Which model explains the residuals best, and why?",
        cell_id="cell-1",
        response=Response(
            [message],
            model="deepseek/deepseek-v4-flash",
            provider="DeepSeek",
            generation_id="gen-1785160442-AbCdEfGhIjKlMnOpQrSt",
            usage=usage,
            cost=0.0031,
        ),
        in_output=True,  # as the engine records a %%chat answer: its text is in text/plain
    )
    publisher = Recorder()
    view = NotebookView(publisher)
    view.handle(ReasoningDelta(reasoning, tuple(details)))
    view.handle(TextDelta(text))
    view.handle(Finished("stop"))
    view.finish(FinalSummary(footer="footer", metadata={"ormagic": saved}, reasoning_tokens=8_000))
    shown = sum(len(json.dumps(o["data"])) for o in publisher.outputs)
    kept = len(json.dumps(saved))
    print(f"reasoning {len(reasoning):,} chars, answer {len(text):,} chars")
    print(f"what the cell shows (saved outputs): {shown:,} bytes")
    print(
        f"the resume record (output metadata):  {kept:,} bytes = {kept / shown:.2f}x what is shown"
    )


if __name__ == "__main__":
    main()
