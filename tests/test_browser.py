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
ANSWER = (
    "## Findings\n\nThe **median** is the better summary here, because the data are skewed.\n\n"
    + "\n\n".join(
        f"Point {i}: the values in group {i} sit {'above' if i % 2 else 'below'} the median."
        for i in range(40)
    )
    + "\n\n```python\nsales.median()\n```\n"
)
REASONING = "Let me look at the distribution first. " * 40
XSS = (
    'Here: <img src=x onerror="window.__ormagic_xss = 1"> and '
    "[click me](javascript:window.__ormagic_xss=2) and "
    '<a href="#" onclick="window.__ormagic_xss=3">or me</a>'
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as server:
        yield server


@pytest.fixture(scope="module", params=APPS)
def jupyter(
    request: pytest.FixtureRequest, fake: FakeOpenRouter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    root = tmp_path_factory.mktemp(f"{request.param}-root")
    env = {"OPENROUTER_API_KEY": fake.api_key, "OPENROUTER_BASE_URL": fake.base_url}
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

    def wait_ready(self) -> None:
        """The notebook is shown and its kernel connected and idle (cells run now)."""
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
        self.page.wait_for_selector(
            ".jp-Notebook-ExecutionIndicator[data-status='idle']", state="attached", timeout=90_000
        )

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def prompt(self, index: int) -> str:
        text: str = self.cell(index).locator(".jp-InputPrompt").inner_text()
        return text.strip()

    def run(self, index: int) -> None:
        """Run a cell as a user does: click into it, Shift+Enter."""
        self.cell(index).locator(".jp-InputArea-editor").click()
        self.page.keyboard.press("Shift+Enter")

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
        wait_for(lambda: self.prompt(index) == "[*]:", f"cell {index} starting")
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
    fake.enqueue(
        StreamReply(
            reasoning=REASONING, text=ANSWER, chunk_chars=12, delay=0.03, provider="DeepSeek"
        )
    )
    name = write_notebook(
        jupyter.root, "stream.ipynb", "%load_ext ormagic", "%%chat -c demo\nMean or median?"
    )
    page = Page(browser, jupyter, name)
    try:
        page.run_and_wait(0)
        states = page.watch(1)
        thinking = [s for s in states if "jupyter-widget-Collapse-open" in s and "Let me look" in s]
        assert thinking, "the reasoning panel never showed open while the model thought"
        partial = [s for s in states if "<strong>median</strong>" in s and "via DeepSeek" not in s]
        # the answer was rendered as Markdown while it streamed, in several steps
        assert len({len(s) for s in partial}) >= 3, [len(s) for s in states]
        collapsed = [s for s in partial if "jupyter-widget-Collapse-open" not in s]
        assert collapsed, "the reasoning panel did not collapse when the answer began"
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
        assert page.console_errors == []
    finally:
        page.close()


def test_the_live_panel_opens_on_click_while_answering(
    browser: Any, jupyter: JupyterServer, fake: FakeOpenRouter
) -> None:
    fake.enqueue(StreamReply(reasoning=REASONING, text=ANSWER * 3, chunk_chars=6, delay=0.03))
    name = write_notebook(jupyter.root, "panel.ipynb", "%load_ext ormagic", "%%chat -c panel\nGo")
    page = Page(browser, jupyter, name)
    try:
        page.run_and_wait(0)
        page.run(1)
        # (outputs merged during a long answer display the panel again: take the shown one)
        header = page.cell(1).locator(".jupyter-widget-Collapse-header >> visible=true").first
        wait_for(
            lambda: "Thought for" in page.cell(1).inner_text(),
            "the panel collapsing with its thinking time when the answer began",
        )
        collapse = page.cell(1).locator(".jupyter-widget-Collapse >> visible=true").first
        assert "jupyter-widget-Collapse-open" not in (collapse.get_attribute("class") or "")
        header.click()
        wait_for(
            lambda: "jupyter-widget-Collapse-open" in (collapse.get_attribute("class") or ""),
            "the live reasoning panel opening on click",
        )
        if jupyter.app == "lab":
            page.page.screenshot(path=str(Path(jupyter.root) / "streaming.png"))
            copy_screenshot(Path(jupyter.root) / "streaming.png", "streaming.png")
        page.wait_done(1)
        assert page.console_errors == []
    finally:
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
        page.cell(1).get_by_text("click me", exact=False).first.click()
        page.cell(1).get_by_text("or me", exact=False).first.click()
        page.page.wait_for_timeout(500)
        assert page.page.evaluate("window.__ormagic_xss") is None
        assert page.cell(1).locator("img").count() == 0
        assert page.cell(1).locator("a[href^='javascript']").count() == 0
        assert page.console_errors == []
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
        page.page.reload()
        page.wait_ready()
        wait_for(lambda: "via DeepSeek" in page.cell(1).inner_text(), "saved outputs showing")
        html = page.outputs_html(1)
        assert "<details><summary>Thought for " in html
        assert "<strong>median</strong>" in html
        content = page.page.content()
        assert "Error displaying widget" not in content
        assert "Loading widget" not in content
        assert page.console_errors == []
    finally:
        page.close()
