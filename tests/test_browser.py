"""ormagic where users live: a real JupyterLab and Notebook 7 in headless Chromium.

Each test writes a notebook, opens it in the browser, runs its cells with the keyboard
and checks the real DOM: what streams, what the reasoning panel does, that injected
markup does nothing, that no widget fails to display and the console stays clean, and
that the saved outputs read well after a reload. The fake OpenRouter answers.

Skipped only when the browser stack cannot be installed here (the summary says why):
`make browser-deps` installs it, and CI runs it.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    JupyterServer,
    copy_screenshot,
    missing_requirements,
    wait_for,
)

from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply

_MISSING = missing_requirements()
pytestmark = [
    pytest.mark.skipif(_MISSING is not None, reason=f"browser tests skipped: {_MISSING}"),
    pytest.mark.timeout(600),
]

APPS = ["lab", "notebook"]
# Errors a frontend logs on loading any notebook, ormagic or not: Notebook 7.6.5 with
# JupyterLab 4.6.6 fails to read one plugin's settings schema (reproduced with a plain
# `jupyter notebook` and a one-cell notebook, no ormagic loaded). Everything after the
# page has loaded must add no error at all.
UPSTREAM_LOAD_ERRORS = {
    "lab": [],
    "notebook": ["Cannot read properties of undefined (reading 'schema')"],
}
ANSWER = """## Mean or median?

Report the **median** delivery time. The times are strongly skewed: most orders arrive
within two days, but a handful of delayed ones take weeks, and those few pull the mean up.

| statistic | value |
|---|--:|
| orders | 1,204 |
| mean | 3.9 days |
| median | 1.8 days |
| 95th percentile | 9.0 days |

- The **mean** (3.9 days) describes almost no actual order: only 17% take that long.
- The **median** (1.8 days) is what a typical customer experiences.
- Show the long tail separately, for example as the share of orders over a week (4.1%).

```python
times = orders["delivered"] - orders["ordered"]
times.dt.days.describe(percentiles=[0.5, 0.95])
(times.dt.days > 7).mean()   # share of orders that take over a week
```

If you need one number for planning capacity, the mean is still the right input (it adds
up over orders); for what customers should expect, quote the median and the 95th
percentile together.
"""
MORE = """
### Checking the skew

A quick way to see the skew is to compare the mean with the median for each warehouse:
where the mean is much higher, a few very late orders dominate. In this data every
warehouse shows the same pattern, and the north warehouse most of all, because of the
strike in March.

```python
orders.groupby("warehouse")["days"].agg(["mean", "median", "max"]).sort_values("mean")
```
"""
REASONING = (
    "The user asks whether to report the mean or the median of delivery times. Let me look "
    "at the distribution first. Delivery times are bounded below by zero and have a long "
    "right tail: a few delayed orders take weeks. In that case the mean is pulled up by the "
    "tail while the median stays with the typical order. I should give both numbers, explain "
    "the difference with the figures from the summary, and suggest reporting the tail "
    "separately, as a share of orders over a week. The 95th percentile is a useful third "
    "number. For capacity planning the mean still matters, because it adds up over orders. "
    "I'll end with the pandas calls that compute these figures, so the user can check them."
)
XSS = (
    'Here: <img src=x onerror="window.__ormagic_xss = 1"> and '
    "[click me](javascript:window.__ormagic_xss=2) and "
    '<a href="#" onclick="window.__ormagic_xss=3">or me</a>'
)


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenRouter]:
    # the shipped notebooks' demo answers (tool calls, two models, labelled rows) when
    # nothing is scripted
    with FakeOpenRouter(demo=True) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeOpenRouter) -> Iterator[None]:
    """Nothing scripted, held or changed by another test (after: a held request goes)."""
    fake.reset()
    yield
    fake.reset()


@pytest.fixture(scope="module", params=APPS)
def jupyter(
    request: pytest.FixtureRequest, fake: FakeOpenRouter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp(f"{request.param}-root")
    shutil.copytree(ROOT / "notebooks" / "data", root / "data")
    env = {
        "OPENROUTER_API_KEY": fake.api_key,
        "OPENROUTER_BASE_URL": fake.base_url,
        "ORMAGIC_CACHE_DIR": str(root / ".cache"),
    }
    with JupyterServer(request.param, root, env) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """One notebook open in the browser, with what its console said."""

    def __init__(self, browser: Any, jupyter: JupyterServer, name: str) -> None:
        self.jupyter = jupyter
        self.page = browser.new_page(viewport={"width": 1280, "height": 1000})
        self.console_errors: list[str] = []
        self.page.on(
            "console",
            lambda m: self.console_errors.append(m.text) if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        self.page.goto(jupyter.notebook_url(name))
        self.wait_ready()
        if jupyter.app == "lab":  # the file browser takes room the pictures need
            self.page.keyboard.press("Control+b")
        self._baseline()

    def _baseline(self) -> None:
        self.page.wait_for_timeout(500)  # let a load-time error surface before the baseline
        self._at_load = list(self.console_errors)
        assert self._at_load == UPSTREAM_LOAD_ERRORS[self.jupyter.app]

    def reload(self) -> None:
        """Reload the page (widget state is gone); the console starts over."""
        self.console_errors.clear()
        self.page.reload()
        self.wait_ready()
        self._baseline()

    @property
    def new_console_errors(self) -> list[str]:
        """What the console said after the page had loaded: ormagic's doing, if anything."""
        return self.console_errors[len(self._at_load) :]

    def wait_ready(self) -> None:
        """The notebook is shown and its kernel connected and idle (cells run now)."""
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
        self.page.wait_for_selector(
            ".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached", timeout=90_000
        )

    def cell(self, index: int) -> Any:
        # the notebook on show (a hidden panel of another notebook may be in the page too)
        notebook = self.page.locator(".jp-Notebook").filter(visible=True).first
        return notebook.locator(".jp-Cell").nth(index)

    def prompt(self, index: int) -> str:
        text: str = self.cell(index).locator(".jp-InputPrompt").inner_text()
        return text.strip()

    def run(self, index: int) -> None:
        """Run a cell as a user does: click into it, Shift+Enter.

        A frontend that has not connected to its kernel yet drops the request (the prompt
        stays ``[ ]:``): then, as a user would, press again.
        """

        def accepted() -> bool:
            self.cell(index).locator(".jp-InputArea-editor").click()
            self.page.keyboard.press("Shift+Enter")
            for _ in range(50):  # about five seconds for the prompt to change
                if self.prompt(index) != "[ ]:":
                    return True
                self.page.wait_for_timeout(100)
            return False

        wait_for(accepted, f"cell {index} starting in {self.jupyter.app}")

    def run_and_wait(self, index: int) -> None:
        self.run(index)
        self.wait_done(index)

    def wait_done(self, index: int) -> None:
        wait_for(
            lambda: re.fullmatch(r"\[\d+\]:", self.prompt(index)),
            f"cell {index} finishing in {self.jupyter.app}",
        )

    def outputs_html(self, index: int) -> str:
        html: str = self.cell(index).locator(".jp-OutputArea").inner_html()
        return html

    def watch(self, index: int) -> list[str]:
        """The cell's output HTML every ~50 ms while it runs (a record of what streamed)."""
        states: list[str] = []
        self.run(index)
        while self.prompt(index) == "[*]:":
            html = self.outputs_html(index)
            if not states or html != states[-1]:
                states.append(html)
            self.page.wait_for_timeout(50)
        return states

    def save(self) -> None:
        self.page.keyboard.press("Control+s")

    def screenshot(self, path: Path, name: str) -> None:
        self.page.screenshot(path=str(path), full_page=False)
        copy_screenshot(path, name)

    def close(self) -> None:
        self.page.close()


def write_notebook(root: Path, name: str, *sources: str) -> str:
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in sources]
    )
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(notebook, root / name)
    return name


def test_the_answer_streams_as_markdown_and_the_reasoning_panel_behaves(
    browser: Any, jupyter: JupyterServer, fake: FakeOpenRouter, tmp_path: Path
) -> None:
    # the stream stops where the test looks (after the reasoning, within the answer,
    # before its end) until the test has seen the page: no race with the stream
    thinking, answering, ending = threading.Event(), threading.Event(), threading.Event()
    within = ANSWER.index("| statistic")  # the first paragraph sent, the table not yet
    gates = {0: thinking, within: answering, len(ANSWER): ending}
    fake.enqueue(StreamReply(reasoning=REASONING, text=ANSWER, provider="DeepSeek", gates=gates))
    name = write_notebook(
        jupyter.root,
        "stream.ipynb",
        "%load_ext ormagic",
        "%%chat -c demo\nShould I report the mean or the median of our delivery times?",
    )
    page = Page(browser, jupyter, name)
    try:
        page.run_and_wait(0)
        page.run(1)
        # thinking: the panel is open and shows the reasoning, no answer yet
        html = wait_for(
            lambda: (h := page.outputs_html(1)) and "so the user can check them" in h and h,
            "the reasoning streaming into the panel",
        )
        assert "jupyter-widget-Collapse-open" in html and "Mean or median?" not in html
        thinking.set()
        # answering: the first paragraph as Markdown, the panel collapsed to its title
        html = wait_for(
            lambda: (h := page.outputs_html(1)) and "<strong>median</strong>" in h and h,
            "the first paragraph rendered while the answer streams",
        )
        assert "<h2" in html and "<table" not in html and "via DeepSeek" not in html
        assert "jupyter-widget-Collapse-open" not in html
        assert "Thought for" in page.cell(1).inner_text()
        answering.set()
        # the whole text, still live: no footer until the stream ends
        html = wait_for(
            lambda: (h := page.outputs_html(1)) and "percentile together" in h and h,
            "the rest of the answer streaming",
        )
        assert "<table" in html and "via DeepSeek" not in html
        ending.set()
        page.wait_done(1)
        final = page.outputs_html(1)
        assert "<h2" in final and "<strong>median</strong>" in final
        assert "<details><summary>Thought for " in final
        assert "deepseek/deepseek-v4-flash via DeepSeek · " in page.cell(1).inner_text()
        # the saved reasoning opens on click
        summary = page.cell(1).locator("details summary").first
        details = page.cell(1).locator("details").first
        assert details.get_attribute("open") is None
        summary.click()
        wait_for(lambda: details.get_attribute("open") is not None, "the <details> opening")
        assert "Let me look at the distribution first." in details.inner_text()
        if jupyter.app == "lab":
            page.screenshot(tmp_path / "answer.png", "answer-with-reasoning.png")
        assert "Error displaying widget" not in page.page.content()
        assert page.new_console_errors == []
    finally:
        for gate in gates.values():
            gate.set()
        page.close()


def test_the_live_panel_opens_on_click_while_answering(
    browser: Any, jupyter: JupyterServer, fake: FakeOpenRouter
) -> None:
    answering = threading.Event()  # the answer stops after its table until the test is done
    text = ANSWER + MORE * 4
    within = ANSWER.index("- The **mean**")
    fake.enqueue(StreamReply(reasoning=REASONING, text=text, gates={within: answering}))
    name = write_notebook(
        jupyter.root,
        "panel.ipynb",
        "%load_ext ormagic",
        "%%chat -c panel\nShould I report the mean or the median of our delivery times?",
    )
    page = Page(browser, jupyter, name)
    try:
        page.run_and_wait(0)
        page.run(1)
        wait_for(
            lambda: "9.0 days" in page.cell(1).inner_text(),
            "the answer streaming up to its table",
        )
        assert "Thought for" in page.cell(1).inner_text()  # collapsed, with its time
        header = page.cell(1).locator(".jupyter-widget-Collapse-header").filter(visible=True)
        contents = page.cell(1).locator(".jupyter-widget-Collapse-contents").filter(visible=True)
        assert header.count() == 1 and contents.count() == 0  # the reasoning is hidden
        header.first.click()
        wait_for(lambda: contents.count() >= 1, "the live reasoning panel opening on click")
        assert "Let me look at the distribution first." in contents.first.inner_text()
        assert page.prompt(1) == "[*]:"  # still answering
        if jupyter.app == "lab":
            page.page.screenshot(path=str(Path(jupyter.root) / "streaming.png"))
            copy_screenshot(Path(jupyter.root) / "streaming.png", "streaming.png")
        answering.set()
        page.wait_done(1)
        assert "north warehouse most of all" in page.cell(1).inner_text()
        assert page.new_console_errors == []
    finally:
        answering.set()
        page.close()


def test_injected_markup_does_nothing(
    browser: Any, jupyter: JupyterServer, fake: FakeOpenRouter
) -> None:
    fake.enqueue(StreamReply(text=XSS, reasoning=XSS, chunk_chars=7))
    name = write_notebook(jupyter.root, "xss.ipynb", "%load_ext ormagic", "%%chat -c xss\nHi")
    page = Page(browser, jupyter, name)
    try:
        page.run_and_wait(0)
        page.run_and_wait(1)
        text = page.cell(1).inner_text()
        assert '<img src=x onerror="window.__ormagic_xss = 1">' in text  # shown as text
        page.cell(1).get_by_text("click me", exact=False).filter(visible=True).first.click()
        page.cell(1).get_by_text("or me", exact=False).filter(visible=True).first.click()
        page.page.wait_for_timeout(500)
        assert page.page.evaluate("window.__ormagic_xss") is None
        assert page.cell(1).locator("img").count() == 0
        assert page.cell(1).locator("a[href^='javascript']").count() == 0
        assert page.new_console_errors == []
    finally:
        page.close()


def test_saved_outputs_read_well_after_a_reload(
    browser: Any, jupyter: JupyterServer, fake: FakeOpenRouter
) -> None:
    fake.enqueue(StreamReply(reasoning="Short thought.", text=ANSWER, provider="DeepSeek"))
    name = write_notebook(jupyter.root, "reload.ipynb", "%load_ext ormagic", "%%chat -c saved\nGo")
    page = Page(browser, jupyter, name)
    try:
        page.run_and_wait(0)
        page.run_and_wait(1)
        page.save()
        wait_for(
            lambda: "via DeepSeek" in json.dumps(json.loads((jupyter.root / name).read_text())),
            "the notebook being saved with its outputs",
        )
        page.reload()
        wait_for(lambda: "via DeepSeek" in page.cell(1).inner_text(), "saved outputs showing")
        html = page.outputs_html(1)
        assert "<details><summary>Thought for " in html
        assert "<strong>median</strong>" in html
        content = page.page.content()
        assert "Error displaying widget" not in content
        assert "Loading widget" not in content
        assert page.new_console_errors == []
    finally:
        page.close()


def test_a_tool_call_line_appears_live_and_opens_when_saved(
    browser: Any, jupyter: JupyterServer, fake: FakeOpenRouter, tmp_path: Path
) -> None:
    name = write_notebook(
        jupyter.root,
        "tools.ipynb",
        "%load_ext ormagic\nimport pandas as pd",
        'sales = pd.read_csv("data/sales.csv")',
        "%%chat -c tools\nWhy does March look so low in this chart?",
    )
    # the second round (the request carrying the tools' results) waits for the test
    second_round = fake.hold(lambda body: any(m.get("role") == "tool" for m in body["messages"]))
    page = Page(browser, jupyter, name)
    try:
        page.run_and_wait(0)
        page.run_and_wait(1)
        page.run(2)
        headers = page.cell(2).locator(".jupyter-widget-Collapse-header")
        # each call that ran is a live line: a collapsed panel titled with what it returned
        wait_for(
            lambda: headers.filter(has_text="⚙ value_counts").filter(has_text=" → ").count(),
            "the tool calls showing live once they ran",
        )
        live = headers.filter(has_text="⚙ describe_variable")
        assert live.count() == 1
        assert 'describe_variable(name="sales") → 22 lines' in live.first.inner_text()
        assert page.prompt(2) == "[*]:" and " via " not in page.cell(2).inner_text()
        second_round.set()
        page.wait_done(2)
        final = page.cell(2)
        details = final.locator("details").filter(has_text="2 tool calls").first
        details.locator("summary").first.click()
        wait_for(lambda: details.get_attribute("open") is not None, "the tool calls opening")
        shown = details.inner_text()
        assert 'describe_variable(name="sales")' in shown
        assert 'value_counts(name="sales", column="month")' in shown
        if jupyter.app == "lab":
            page.screenshot(tmp_path / "tool.png", "tool-call.png")
        assert page.new_console_errors == []
    finally:
        second_round.set()
        page.close()


def test_two_models_stream_side_by_side(
    browser: Any, jupyter: JupyterServer, fake: FakeOpenRouter, tmp_path: Path
) -> None:
    name = write_notebook(
        jupyter.root,
        "compare.ipynb",
        "%load_ext ormagic",
        "%%chat -c compare -m deepseek/deepseek-v4-flash -m openai/gpt-5-nano\n"
        "Explain overfitting in two sentences.",
    )
    # both answers stop after 90 characters until the test has seen them side by side
    midway = fake.hold(lambda body: "overfitting" in json.dumps(body["messages"]), at=90)
    page = Page(browser, jupyter, name)
    shot = tmp_path / "side.png"
    try:
        page.run_and_wait(0)
        page.run(1)
        wait_for(
            lambda: _both_columns_streaming(page.outputs_html(1)),
            "both columns streaming at the same time",
        )
        if jupyter.app == "lab":
            page.screenshot(shot, "side-by-side.png")
        midway.set()
        page.wait_done(1)
        final = page.cell(1).inner_text()
        assert "deepseek/deepseek-v4-flash" in final and "openai/gpt-5-nano" in final
        assert "Overfitting is when a model learns the noise" in final
        assert "An overfit model memorises its training examples" in final
        assert page.cell(1).locator("table").count() >= 1
        if jupyter.app == "lab":
            page.screenshot(tmp_path / "saved.png", "side-by-side-saved.png")
        assert page.new_console_errors == []
    finally:
        midway.set()
        page.close()


def _both_columns_streaming(html: str) -> bool:
    """Both answers have begun and neither has its footer yet."""
    started = "Overfitting is" in html and "An overfit" in html
    return started and "via DeepSeek" not in html and "via OpenAI" not in html


def test_the_batch_progress_bar_moves_and_ends_at_100_percent(
    browser: Any, jupyter: JupyterServer, fake: FakeOpenRouter, tmp_path: Path
) -> None:
    texts = [
        "Arrived two days late and the box was crushed.",
        "Great value, the battery lasts all week.",
        "The app keeps logging me out since the update.",
        "Support answered within minutes, very helpful.",
        "Charged twice for one order, please refund.",
        "Fine product, nothing special.",
    ]
    reviews = [f"{text} (order {i})" for i, text in enumerate(texts * 2)]  # 12 prompts
    name = write_notebook(
        jupyter.root,
        "batch.ipynb",
        "%load_ext ormagic\nimport pandas as pd",
        f"reviews = pd.DataFrame({{'text': {reviews!r}}})\n"
        "fields = {'sentiment': str, 'topic': str}",
        "%%chat --each reviews --schema fields -o labels --concurrency 2 --no-cache\n"
        "Classify this customer review.\n\nReview: {text}",
    )
    # the two rows about a "Fine product" wait for the test: the bar stops at 10 of 12
    held = fake.hold(lambda body: "Fine product" in json.dumps(body["messages"]))
    page = Page(browser, jupyter, name)
    try:
        page.run_and_wait(0)
        page.run_and_wait(1)
        page.run(2)
        bar = page.cell(2).locator(".progress-bar")
        wait_for(
            lambda: "10 / 12 rows · 2 in flight" in page.cell(2).inner_text(),
            "the bar reaching the rows that wait",
        )
        shown = page.cell(2).inner_text()
        # the estimate (said after the sample of 5 rows) reads above the bar's line
        assert shown.index("12 rows · 12 to send") < shown.index("10 / 12 rows")
        assert bar.count() == 1
        width = re.search(r"width: ([\d.]+)%", bar.first.get_attribute("style") or "")
        assert width is not None and 83 <= float(width.group(1)) <= 84, width  # 10 of 12
        if jupyter.app == "lab":
            page.screenshot(tmp_path / "bar.png", "progress-bar.png")
        held.set()
        page.wait_done(2)
        done = page.cell(2).locator(".ormagic-done-bar")
        assert done.count() == 1 and done.get_attribute("title") == "100%"
        assert "12 rows · " in page.cell(2).inner_text()
        assert page.new_console_errors == []
    finally:
        held.set()
        page.close()
