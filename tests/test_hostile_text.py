"""Hostile text that is not HTML: terminal escape codes, 10,000-deep nesting, huge answers.

- Escape sequences from the model or the server (colours that hide text, OSC 8 links,
  OSC 52 clipboard writes, carriage returns that overwrite a line) are shown as visible
  characters wherever text reaches a terminal or a ``text/plain`` output.
- Nesting 10,000 deep renders without recursion errors, stays inert, and costs time in
  proportion to its size.
- A 10 MB answer streams and renders in linear time (the kernel side of it is in
  ``test_kernel_hostile``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets
import pytest
from hostile_markdown import all_prose, math_first, trusting
from html_judge import html_problems
from IPython.core.interactiveshell import InteractiveShell
from waiting import LINEAR_GROWTH_LIMIT, growth

from ormagic.client.message import MessageBuilder
from ormagic.events import Finished, ReasoningDelta, TextDelta, Usage
from ormagic.render.markdown import neutralise_markdown, render_html
from ormagic.render.views import NotebookView, answer_bundle
from ormagic.testing.fake_openrouter import FakeOpenRouter, StreamReply, default_models
from ormagic.view import FinalSummary

ESCAPES = (
    "\x1b[8mhidden\x1b[0m \x1b[31mred\x1b[0m "  # conceal, colour
    "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\ "  # OSC 8 hyperlink
    "\x1b]52;c;cm0gLXJmIH4=\x07 "  # OSC 52: write the clipboard
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "fake prompt\r$ "  # carriage return over the line
    "\x9b31m"  # C1 CSI
)
# What a terminal obeys: C0 controls but tab and newline, DEL, C1.
OBEYED = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# --------------------------------------------------------------------------- escapes


def test_escape_codes_reach_no_terminal(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_env.models = [{**default_models()[0], "id": "m/x", "name": ESCAPES}]
    fake_env.enqueue(
        StreamReply(text=ESCAPES, reasoning=ESCAPES, model=f"m/{ESCAPES}", provider=ESCAPES),
        StreamReply(text="Partial " + ESCAPES, error={"code": 502, "message": ESCAPES}),
    )
    shell.run_cell("%%chat\nHi", store_history=True)
    shell.run_cell("%%chat\nAgain", store_history=True)
    for command in ("%chat history", "%chat models", "%chat usage", "%chat"):
        shell.run_cell(command, store_history=True)
    out, err = capsys.readouterr()
    assert OBEYED.findall(out + err) == []
    assert out.count("␛[8mhidden␛[0m") >= 4  # answer, reasoning, history (twice)
    assert "fake prompt␍$" in out and "\\x9b31m" in out
    assert "UsageError: Partial" not in err and "␛]52;c;cm0gLXJmIH4=␇" in err


def test_side_by_side_escape_codes_reach_no_terminal_or_text_plain(
    shell: InteractiveShell, fake_env: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = "deepseek/deepseek-v4-flash", "openai/gpt-5-nano"
    fake_env.enqueue_for(a, StreamReply(text=ESCAPES, reasoning=ESCAPES, provider=ESCAPES))
    fake_env.enqueue_for(b, StreamReply(text="$x$ and " + ESCAPES, provider="OpenAI"))
    shell.run_cell(f"%%chat -m {a} -m {b}\nHi", store_history=True)
    out, err = capsys.readouterr()
    assert OBEYED.findall(out + err) == []
    assert out.count("␛[8mhidden␛[0m") >= 3  # both answers and the reasoning
    # the saved copies of the same turn, as a notebook keeps them
    from ormagic.render.compared import ColumnAnswer, side_by_side_bundle

    columns = [
        ColumnAnswer(f"m/{ESCAPES}", ESCAPES, ESCAPES, "Thought", f"⚠ {ESCAPES}", ESCAPES),
        ColumnAnswer("m/$x$", "ok", "", None, None, "m/$x$ via $P$"),
    ]
    bundle = side_by_side_bundle(columns, chosen=0)
    assert OBEYED.findall(bundle["text/plain"]) == []
    assert "␛]52;c;cm0gLXJmIH4=␇" in bundle["text/plain"]
    # a name or footer with dollars stays literal in the Markdown copy: no maths
    assert "**\\[2\\] m\\/\\$x\\$**" in bundle["text/markdown"]
    assert "<sub>m\\/\\$x\\$ via \\$P\\$</sub>" in bundle["text/markdown"]


def test_escape_codes_reach_no_text_plain_output() -> None:
    outputs: list[Mapping[str, Any]] = []

    class Keep:
        def display(self, bundle: Mapping[str, Any], **_: Any) -> None:
            outputs.append(bundle)

        def display_widget(self, widget: Any) -> None:
            pass

        def update(self, bundle: Mapping[str, Any], **_: Any) -> None:
            outputs.append(bundle)

        def clear(self) -> None:
            outputs.clear()

    view = NotebookView(Keep(), widgets=ipywidgets)
    view.start(ESCAPES)
    view.handle(ReasoningDelta(ESCAPES))
    view.handle(TextDelta(ESCAPES))
    view.handle(Finished())
    view.finish(FinalSummary(footer=f"{ESCAPES} · 1 in", status=f"⚠ {ESCAPES}"))
    plain = [o["text/plain"] for o in outputs if "text/plain" in o]
    assert len(plain) == 3 and OBEYED.findall("".join(plain)) == []
    assert plain[1].startswith("␛[8mhidden␛[0m")


# --------------------------------------------------------------------------- nesting

DEPTH = 10_000
NESTED: dict[str, Callable[[int], str]] = {
    "quotes": lambda d: ">" * d + " deep",
    "list markers": lambda d: "- " * d + "deep",
    "ordered markers": lambda d: "1. " * d + "deep",
    "brackets": lambda d: "[" * d + "x" + "](javascript:alert(1))" * d,
    "images in links": lambda d: "[![" * d + "x](https://evil.example/i)](u)" * d,
    "emphasis": lambda d: "*" * d + "deep" + "*" * d,
    "parentheses": lambda d: "[x](" + "(" * d + "javascript:alert(1)" + ")" * d + ")",
    "html": lambda d: "<div>" * d + "<img src=x onerror=alert(1)>" + "</div>" * d,
    "environments": lambda d: "\\begin{x}" * d + "$a$" + "\\end{x}" * d,
    "indented lists": lambda d: "".join("  " * i + "- x\n" for i in range(d // 100)),
}


@pytest.mark.parametrize("shape", sorted(NESTED))
def test_deep_nesting_renders_inertly(shape: str) -> None:
    text = NESTED[shape](DEPTH)
    bundle = answer_bundle(text)
    markdown = bundle["text/markdown"]
    for html in (
        bundle["text/html"],
        trusting(markdown),
        math_first(markdown),
        all_prose(markdown),
    ):
        assert html_problems(html) == []


@pytest.mark.parametrize("shape", ["quotes", "list markers", "brackets", "html", "environments"])
def test_deep_nesting_costs_linear_time(shape: str) -> None:
    def run(depth: int) -> Callable[[], object]:
        text = NESTED[shape](depth)
        return lambda: (render_html(text), neutralise_markdown(text))

    assert growth(run, DEPTH // 4, repeats=3) < LINEAR_GROWTH_LIMIT


def test_deeply_nested_reasoning_details_are_kept_and_sent_back() -> None:
    deep: Any = "x"
    for _ in range(400):  # deep, but within what JSON parsers accept
        deep = [deep]
    detail = {"type": "reasoning.future", "payload": deep}
    builder = MessageBuilder()
    builder.add(ReasoningDelta("", (detail,)))
    message = builder.message()
    assert json.loads(json.dumps(message))["reasoning_details"][0]["payload"] == deep


# --------------------------------------------------------------------------- huge answers


def _live_and_final(text: str) -> Callable[[], object]:
    """A fast server's answer, 64 KB per delta, through the live view and the final one."""

    def run() -> None:
        now = [0.0]

        class Drop:
            def display(self, bundle: object, **_: object) -> None:
                pass

            display_widget = update = display

            def clear(self) -> None:
                pass

        view = NotebookView(Drop(), clock=lambda: now[0], widgets=ipywidgets)  # type: ignore[arg-type]
        for i in range(0, len(text), 65_536):
            now[0] += 0.001
            view.handle(TextDelta(text[i : i + 65_536]))
        view.handle(Usage(prompt_tokens=1, completion_tokens=1))
        view.handle(Finished())
        view.finish(FinalSummary(footer="f"))

    return run


def test_a_huge_answer_costs_linear_time() -> None:
    paragraph = "The **sensor** readings drift, see `x[i]` and $x^2$. " * 12 + "\n\n"
    block = paragraph * 3 + "```python\nx = [i * 2 for i in range(10)]  # <b>\n```\n\n"
    assert growth(lambda size: _live_and_final(block * size), 200, repeats=1) < (
        LINEAR_GROWTH_LIMIT
    )


def test_inert_html_is_one_line_in_every_reading_and_reads_back_as_written() -> None:
    # reasoning in a side-by-side Markdown copy or an exported cell: a line end of any
    # kind (JavaScript splits at U+2028/U+2029 too) would let a renderer read the rest
    # as Markdown again
    import html as html_module

    from ormagic.formatting import inert_pre

    text = "a\u2028b\u2029c\r\nd\n\n<img src=x onerror=alert(1)> $x$ [l](javascript:y) \\(z\\)"
    pre = inert_pre(text)
    assert pre.startswith("<pre>") and pre.endswith("</pre>")
    body = pre[len("<pre>") : -len("</pre>")]
    assert not any(ch in body for ch in "\n\r\u2028\u2029$[]\\<>")
    assert html_module.unescape(body) == text
