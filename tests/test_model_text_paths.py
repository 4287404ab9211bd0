"""Model and server text as an attacker: public XSS corpora through every path to a browser.

Every payload of ``tests/corpora/xss_payloads.json`` (and the Markdown attacks below) is
fed, as untrusted text, through each path that turns model or server text into something
a browser parses, and what comes out is judged by an HTML5 parser (``html_judge``): no
script element, no event handler, no script URL, nothing fetched. Markdown outputs are
first rendered the way the most trusting frontends would (``hostile_markdown``).

The corpora are data only, each from a public repository at a named commit:

- cure53/H5SC ``vectors.txt`` @ 1a91bbc085426579ebcdefb1bc5450760db3dad5 (html5sec, MPL-2.0)
- cure53/DOMPurify ``test/fixtures/expect.mjs`` @ 1fa97e8f0b671ded461adfe6af255f2aab4202d0
  (the payloads of DOMPurify's test vectors, MPL-2.0 or Apache-2.0)
- OWASP/CheatSheetSeries ``cheatsheets/XSS_Filter_Evasion_Cheat_Sheet.md``
  @ 6b8819da79e0537d072e04296ffa3adfc94ba881 (the code blocks only, CC BY-SA 4.0)
- swisskyrepo/PayloadsAllTheThings ``XSS Injection/Intruders/*.txt`` (seven lists, RSnake's
  among them) and ``XSS Injection/README.md``'s code blocks (Markdown payloads included)
  @ f9fa51417886ac11476cb62db2dff21773dc570b (MIT)

PortSwigger's cheat sheet data is not included: its repository says it is not licensed
for reuse. A new path joins by adding one entry to ``PATHS``. (A batch shows no model
text of its own: its answers land in a variable, shown by pandas or Python's repr.)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ipywidgets
import pytest
from hostile_markdown import all_prose, math_first, trusting
from html_judge import html_problems

from ormagic.api.answer import Answer
from ormagic.engine.conversation import Conversation, Turn
from ormagic.engine.engine import Engine
from ormagic.engine.export import conversation_to_notebook
from ormagic.engine.turn import Outcome
from ormagic.errors import StreamError
from ormagic.events import Finished, ReasoningDelta, TextDelta, ToolResult, Usage
from ormagic.jupyter import commands
from ormagic.render.columns import ColumnsView
from ormagic.render.compared import ColumnAnswer, side_by_side_bundle
from ormagic.render.markdown import neutralise_markdown
from ormagic.render.toolcalls import ToolPanel, tools_bundle
from ormagic.render.views import NotebookView
from ormagic.testing.fake_openrouter import FakeOpenRouter, default_models

HERE = Path(__file__).resolve().parent
CORPORA = json.loads((HERE / "corpora" / "xss_payloads.json").read_text(encoding="utf-8"))

# Markdown meeting math and code, which no published list has: a math span that opens
# before a fence and closes inside it swallows the fence's opening line in a renderer that
# pulls math out first, exposing the fence's content as Markdown.
MATH_MEETS_FENCE = [
    "Let $x\n```html\n$ <img src=x onerror=alert(1)>\n```\n",
    "$$ a\n```\n$$\n<script>alert(1)</script>\n```\n",
    "\\\\( a\n~~~\n\\\\) <img src=x onerror=alert(1)>\n~~~\n",
    "\\( a\n```js\n\\) <svg onload=alert(1)>\n```\n",
    "\\begin{x}\n```\n\\end{x}<img src=x onerror=alert(1)>\n```\n",
    "- item $a\n  ```\n  $ <img src=x onerror=alert(1)>\n  ```\n",
    "> quote $a\n> ```\n> $ [x](javascript:alert(1)) ![y](https://evil.example/leak)\n> ```\n",
    "```\n$ inside\n```\n$ <img src=x onerror=alert(1)>\n",
    "`$` and $ <b onmouseover=alert(1)>b</b> `$`\n",
    "```~~\n$\n```\n<img src=x onerror=alert(1)>\n$\n",
]
OWN = [
    *MATH_MEETS_FENCE,
    "\x1b]8;;javascript:alert(1)\x1b\\link\x1b]8;;\x1b\\ \x1b[31mred\x1b[0m",
    "[a](java\u0000script:alert(1)) <img\u0000src=x onerror=alert(1)>",
]
PAYLOADS = sorted({p for source in CORPORA["sources"] for p in source["payloads"]} | set(OWN))

Fragments = list[str]


# --------------------------------------------------------------------------- the paths


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Recorder:
    """A Publisher keeping every HTML fragment a frontend would receive, and the finals."""

    def __init__(self) -> None:
        self.live: Fragments = []
        self.final: list[Mapping[str, str]] = []
        self.widgets: list[Any] = []
        self.finishing = False

    def display(self, bundle: Mapping[str, Any], **_: Any) -> None:
        (self.final if self.finishing else self.live).append(dict(bundle))  # type: ignore[arg-type]

    def display_widget(self, widget: Any) -> None:
        self.widgets.append(widget)

    def update(self, bundle: Mapping[str, Any], **_: Any) -> None:
        self.live.append(bundle.get("text/html", ""))

    def clear(self) -> None:
        pass


@functools.cache
def _streamed(
    text: str, as_reasoning: bool
) -> tuple[Fragments, Fragments, list[Mapping[str, str]]]:
    """(live HTML, reasoning widget values, final bundles) of ``text`` streamed in three
    pieces, as the answer or as reasoning, ending with a server-made footer."""
    recorder, clock = _Recorder(), _Clock()
    view = NotebookView(recorder, clock=clock, widgets=ipywidgets)  # type: ignore[arg-type]
    view.start(text)
    third = max(1, len(text) // 3)
    for start in range(0, len(text), third):
        clock.now += 1.0
        piece = text[start : start + third]
        view.handle(ReasoningDelta(piece) if as_reasoning else TextDelta(piece))
    if as_reasoning:
        view.handle(TextDelta("ok"))
    view.handle(Usage(prompt_tokens=1, completion_tokens=1))
    view.handle(Finished())
    widget_values = [child.value for child in view.panel.children[0].children] if view.panel else []
    live = [b if isinstance(b, str) else b.get("text/html", "") for b in recorder.live]
    recorder.finishing = True
    view.finish(_hostile_outcome(text).summary({}))
    return live, widget_values, recorder.final


def _hostile_outcome(text: str) -> Outcome:
    """An answer whose model, provider and error message all came from a hostile server."""
    return Outcome(
        requested_model="m",
        message={"role": "assistant", "content": text, "reasoning": text},
        model=text,
        provider=text,
        failure=StreamError(text),
        usage=Usage(prompt_tokens=1, completion_tokens=1),
    )


def _final(text: str, mime: str, index: int) -> str:
    return _streamed(text, False)[2][index].get(mime, "")


def _markdown_readings(markdown: str) -> Fragments:
    return [trusting(markdown), math_first(markdown), all_prose(markdown)]


def _exported_cells(text: str) -> Fragments:
    conversation = Conversation("c")
    turn = Turn(
        "question", {"role": "user", "content": "q"}, [_hostile_outcome(text).to_response()]
    )
    conversation.record(turn)
    notebook = conversation_to_notebook(conversation, neutralise=neutralise_markdown)
    cells = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    return [html for cell in cells for html in _markdown_readings(cell)]


def _answer_markdown(text: str) -> Fragments:
    outcome = _hostile_outcome(text)
    answer = Answer(
        text=text,
        reasoning=text,
        model=outcome.answered_by,
        provider=outcome.provider,
        generation_id=None,
        usage=outcome.usage,
        cost=None,
        finish_reason=None,
        interrupted=False,
        error=str(outcome.failure),
    )
    return _markdown_readings(answer._repr_markdown_())


def _widget_html(widget: Any) -> Fragments:
    """The HTML values of a widget tree (what the frontend puts in the page)."""
    found = [widget.value] if isinstance(widget, ipywidgets.HTML) else []
    for child in getattr(widget, "children", ()):
        found += _widget_html(child)
    return found


def _hostile_call(text: str) -> ToolResult:
    """A call whose name and arguments the model wrote, and whose result quotes data."""
    return ToolResult(call_id="call_0", name=text, arguments=text, result=text)


def _tool_panel(text: str) -> Fragments:
    panel = ToolPanel(ipywidgets, _Recorder())  # type: ignore[arg-type]
    panel.begin(text)
    panel.result(_hostile_call(text))
    return _widget_html(panel.box)


def _columns_live(text: str) -> Fragments:
    recorder, clock = _Recorder(), _Clock()
    view = ColumnsView(recorder, clock=clock, widgets=ipywidgets)  # type: ignore[arg-type]
    view.start([text, "b/model"])
    for column in (0, 1):
        clock.now += 1.0
        view.handle(column, ReasoningDelta(text))
        view.handle(column, TextDelta(text))
    return [html for row in recorder.widgets for html in _widget_html(row)] + recorder.live


def _columns_final(text: str) -> Fragments:
    column = ColumnAnswer(
        model=text, answer=text, reasoning=text, reasoning_title=text, status=text, footer=text
    )
    bundle = side_by_side_bundle([column, column], 0)
    return [bundle["text/html"], *_markdown_readings(bundle["text/markdown"])]


# name -> model or server text in, the HTML a browser will parse out. One line per path.
PATHS: dict[str, Callable[[str], Fragments]] = {
    "live answer (every redraw)": lambda t: _streamed(t, False)[0],
    "final answer, text/html": lambda t: [_final(t, "text/html", 0)],
    "final answer, text/markdown": lambda t: _markdown_readings(_final(t, "text/markdown", 0)),
    "error line and footer (model, provider, message from the server)": lambda t: [
        _final(t, "text/html", 1)
    ],
    "waiting line (model id)": lambda t: _streamed(t, False)[0][:1],
    "reasoning, live panel": lambda t: _streamed(t, True)[1],
    "reasoning, final details": lambda t: [_streamed(t, True)[2][0].get("text/html", "")],
    "ormagic.ask's Answer in a notebook": _answer_markdown,
    "exported notebook, Markdown cells": _exported_cells,
    "tool call, live line and details": _tool_panel,
    "tool calls, final details": lambda t: [tools_bundle([_hostile_call(t)])["text/html"]],
    "side by side, live columns": _columns_live,
    "side by side, final table and Markdown": _columns_final,
}


def _judged(render: Callable[[str], Fragments], payloads: list[str]) -> list[str]:
    failures = []
    for payload in payloads:
        for fragment in render(payload):
            problems = html_problems(fragment)
            if problems:
                failures.append(f"{payload!r} -> {problems[:3]} in {fragment[:200]!r}")
    return failures


def test_the_corpora_are_large_and_named() -> None:
    assert len(PAYLOADS) > 1200
    for source in CORPORA["sources"]:
        assert source["repository"] and source["path"] and len(source["commit"]) == 40
        assert source["license"] and source["payloads"]


@pytest.mark.parametrize("path", sorted(PATHS))
def test_no_payload_runs_or_fetches_anything(path: str) -> None:
    failures = _judged(PATHS[path], PAYLOADS)
    assert failures == [], f"{len(failures)} payloads got through, e.g. {failures[:5]}"


def test_the_judge_and_the_readers_can_fail() -> None:
    # the same payloads, not neutralised, do get through: the test above can fail
    assert len(_judged(lambda t: [t], PAYLOADS)) > len(PAYLOADS) * 2 // 3
    fence_attack = MATH_MEETS_FENCE[0]  # what the neutraliser once left: the fence raw
    assert html_problems(trusting(fence_attack)) == []  # a plain renderer keeps it code
    assert "event handler onerror on <img>" in html_problems(math_first(fence_attack))


# ------------------------------------------------- paths that take many names at once


class _Host:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def notebook(self) -> Any:
        raise NotImplementedError

    def set_setting(self, name: str, text: str) -> None:
        raise NotImplementedError


@pytest.fixture(scope="module")
def hostile_session() -> Any:
    """A session whose server names every model and labels the key with a payload, and
    whose conversation holds one turn per payload (model, provider, answer, error)."""
    with FakeOpenRouter() as fake:
        template = default_models()[0]
        fake.models = [{**template, "id": p, "name": p, "description": p} for p in PAYLOADS]
        engine = Engine(
            env={"OPENROUTER_API_KEY": fake.api_key, "OPENROUTER_BASE_URL": fake.base_url}
        )
        conversation = engine.conversation("c")
        for payload in PAYLOADS:
            turn = Turn(
                payload,
                {"role": "user", "content": payload},
                [_hostile_outcome(payload).to_response()],
            )
            conversation.record(turn)
            engine.ledger.add_turn("c", turn)
        yield fake, _Host(engine)
        engine.close()


@pytest.mark.parametrize("command", ["models", "history c", "usage"])
def test_chat_commands_show_server_names_and_answers_inertly(
    hostile_session: Any, command: str
) -> None:
    _fake, host = hostile_session
    reply = commands.dispatch(host, command)
    assert reply.html is not None and len(reply.html) > 100_000  # every payload is in it
    assert html_problems(reply.html) == []


def test_the_key_label_from_the_server_is_shown_inertly(hostile_session: Any) -> None:
    fake, host = hostile_session
    failures = []
    for payload in PAYLOADS[::7]:  # a request each: a seventh of them keeps this quick
        fake.key_info = {**fake.key_info, "label": payload}
        reply = commands.dispatch(host, "key")
        failures += html_problems(reply.html or "")
    assert failures == []
