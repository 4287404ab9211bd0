"""Draw the docs' pictures of ``%chat providers`` and a side-by-side cell, offline.

    .venv/bin/python scripts/readme_images.py

Both come from ormagic's own code against the bundled fake OpenRouter (its DeepSeek V4
Flash providers, two canned answers): ``docs/images/providers-chart.png`` is the chart the
command draws, byte for byte; ``docs/images/side-by-side-saved.png`` is the final output of a
``%%chat -m A -m B`` cell (its ``text/html``) in a plain browser page, photographed with
headless Chromium when one is installed (JupyterLab's own styles differ a little).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets

from ormagic.engine.compare import compare
from ormagic.engine.engine import Engine
from ormagic.engine.options import AskOptions
from ormagic.engine.providers import chart_points, fetch_providers
from ormagic.render.chart import chart_bundle
from ormagic.render.columns import ColumnsView
from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

DOCS = Path(__file__).resolve().parent.parent / "docs" / "images"
FLASH, NANO = "deepseek/deepseek-v4-flash", "openai/gpt-5-nano"
QUESTION = "What does a p-value of 0.03 mean? Two sentences and one caveat."
ANSWERS = {
    FLASH: StreamReply(
        reasoning="The user wants a short, correct definition plus a caveat.",
        text=(
            "If the null hypothesis were true, data at least as extreme as yours would turn "
            "up **3% of the time**. It is *not* the probability that the null is true.\n\n"
            "Caveat: with many tests, some p < 0.05 arise by chance; correct for it."
        ),
        provider="DeepSeek",
        chunk_chars=4,
        delay=0.03,
        usage={
            "prompt_tokens": 412,
            "completion_tokens": 96,
            "total_tokens": 508,
            "cost": 0.0000845,
            "completion_tokens_details": {"reasoning_tokens": 18},
        },
    ),
    NANO: StreamReply(
        text=(
            "A p-value of 0.03 means that, assuming no real effect, you'd see a result this "
            "extreme about 3 times in 100.\n\n"
            "| p | reading |\n|---|---|\n| 0.03 | evidence against H₀ |\n\n"
            "Caveat: it says nothing about the *size* of the effect."
        ),
        provider="OpenAI",
        chunk_chars=4,
        delay=0.02,
        usage={
            "prompt_tokens": 410,
            "completion_tokens": 71,
            "total_tokens": 481,
            "cost": 0.0000489,
        },
    ),
}


class _Keep:
    """A publisher that keeps the last bundle displayed."""

    def __init__(self) -> None:
        self.bundle: Mapping[str, Any] = {}

    def display(self, bundle: Mapping[str, Any], **_: Any) -> None:
        self.bundle = bundle

    def display_widget(self, widget: Any) -> None:
        """The live columns: not pictured."""

    def update(self, bundle: Mapping[str, Any], **_: Any) -> None:
        """Live redraws: not pictured."""

    def clear(self) -> None:
        """Nothing to clear."""


def providers_chart(engine: Engine) -> None:
    found = fetch_providers(engine.client().get_endpoints, FLASH, engine.catalog.models)
    points, _ = chart_points(found.providers, "throughput")
    title = f"{FLASH}: price against throughput, per provider"
    bundle = chart_bundle(points, title=title, measure="throughput")
    if bundle is None:
        raise SystemExit("readme_images: matplotlib is needed (pip install -e '.[plot]')")
    (DOCS / "providers-chart.png").write_bytes(base64.b64decode(bundle["image/png"]))


def side_by_side(engine: Engine, fake: FakeOpenRouter) -> None:
    for model, reply in ANSWERS.items():
        fake.enqueue_for(model, reply)
    keep = _Keep()
    view = ColumnsView(keep, widgets=ipywidgets)
    compare(engine, QUESTION, AskOptions(conversation="readme"), [FLASH, NANO], view=view)
    browser = shutil.which("chromium") or shutil.which("google-chrome")
    if browser is None:
        print("readme_images: no Chromium: no docs/images/side-by-side-saved.png", file=sys.stderr)
        return
    page = (
        "<!doctype html><meta charset='utf-8'><body style='font:14px system-ui,sans-serif;"
        f"margin:12px;width:876px'><pre style='color:#555'>%%chat -m {FLASH} -m {NANO}\n"
        f"{QUESTION}</pre>{keep.bundle['text/html']}</body>"
    )
    with tempfile.TemporaryDirectory() as folder:
        html = Path(folder) / "cell.html"
        html.write_text(page, encoding="utf-8")
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--screenshot={DOCS / 'side-by-side-saved.png'}",
                "--window-size=900,300",
                html.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> int:
    DOCS.mkdir(exist_ok=True)
    with FakeOpenRouter() as fake:
        engine = Engine(
            env={"OPENROUTER_API_KEY": fake.api_key, "OPENROUTER_BASE_URL": fake.base_url}
        )
        providers_chart(engine)
        side_by_side(engine, fake)
        engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
