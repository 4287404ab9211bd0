"""Every path that sees model text is linear in it, including on text made to be slow.

Model text is attacker-controlled (a prompt injection in a dataset is enough), so each
family of pathological input that once made a path quadratic keeps a test here: the time
of the path on 4n characters against n, in one run (``waiting.growth``: about 4 when
linear, 16 when quadratic; never a wall-clock threshold).
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets
import pytest
from waiting import LINEAR_GROWTH_LIMIT, growth

from ormagic.events import Finished, ReasoningDelta, TextDelta
from ormagic.render.blocks import split_blocks
from ormagic.render.live import answer_split, reasoning_split
from ormagic.render.markdown import neutralise_markdown, render_html
from ormagic.render.views import NotebookView


def _live_render(text: str) -> str:
    return render_html(text, highlight=False)


# family -> (the text at size n, the paths it must stay linear on, n)
Family = tuple[Callable[[int], str], tuple[Callable[[str], object], ...], int]
FAMILIES: dict[str, Family] = {
    # each "](" opener scanned to the end of the text for its destination
    "unclosed links": (lambda n: "](" * n, (neutralise_markdown, render_html), 4000),
    "unclosed pointy links": (lambda n: "](<" * n, (neutralise_markdown, render_html), 3000),
    "reference definitions": (lambda n: "[a]: " * n, (neutralise_markdown, render_html), 3000),
    # each list item opening \[ or $$ searched the rest of the document for its closer
    "list of \\[ openers": (
        lambda n: "- \\[a\n" * n,
        (render_html, _live_render, neutralise_markdown),
        1000,
    ),
    "list of $$ openers": (
        lambda n: "- $$a\n" * n,
        (render_html, _live_render, neutralise_markdown),
        1000,
    ),
    # each inline opener searched to the end of its paragraph for its closer
    "\\( openers": (lambda n: "\\( a " * n, (render_html, neutralise_markdown), 2000),
    "\\[ openers": (lambda n: "\\[ a " * n, (render_html, neutralise_markdown), 2000),
    "$ openers and escaped closers": (lambda n: "$a \\$ " * n, (render_html,), 2000),
    # the fence-opener pattern backtracked over a run with no line end
    "backtick run": (lambda n: "`" * n, (answer_split, split_blocks, render_html), 16000),
    "tilde run": (lambda n: "~" * n, (answer_split, split_blocks, render_html), 16000),
    # (\\*)< retried at every position of a backslash run
    "backslash run": (lambda n: "\\" * n, (neutralise_markdown, render_html), 16000),
    "backslash run before <": (lambda n: "\\" * n + "<", (neutralise_markdown,), 16000),
    "brackets": (lambda n: "[" * n, (render_html, neutralise_markdown), 4000),
    "emphasis openers": (lambda n: "*a " * n, (render_html,), 4000),
    "nested quotes": (lambda n: ">" * n + " a", (render_html, neutralise_markdown), 8000),
    "reasoning without line ends": (lambda n: "word " * n, (reasoning_split,), 8000),
}
CASES = [
    pytest.param(family, path, id=f"{family}-{path.__name__}")
    for family, (_make, paths, _n) in FAMILIES.items()
    for path in paths
]


@pytest.mark.parametrize(("family", "path"), CASES)
def test_path_is_linear(family: str, path: Callable[[str], object]) -> None:
    make, _paths, n = FAMILIES[family]

    def run(size: int) -> Callable[[], object]:
        text = make(size)
        return lambda: path(text)

    assert growth(run, n) < LINEAR_GROWTH_LIMIT


def _stream(text: str, *, reasoning: bool = False) -> Callable[[], object]:
    """The whole live view over ``text`` arriving 16 characters at a time, 50 a second."""

    def run() -> None:
        now = [0.0]
        view = NotebookView(_NullPublisher(), clock=lambda: now[0], widgets=ipywidgets)
        for i in range(0, len(text), 16):
            now[0] += 0.02
            piece = text[i : i + 16]
            view.handle(ReasoningDelta(piece) if reasoning else TextDelta(piece))
        view.handle(Finished())

    return run


class _NullPublisher:
    def display(self, bundle: object, **_: object) -> None:
        pass

    def display_widget(self, widget: object) -> None:
        pass

    def update(self, bundle: object, **_: object) -> None:
        pass

    def clear(self) -> None:
        pass


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: "word " * n, id="one paragraph"),
        pytest.param(lambda n: "- item\n" * n, id="one long list"),
        pytest.param(lambda n: "| a | b |\n|---|---|\n" + "| 1 | 2 |\n" * n, id="one long table"),
        pytest.param(lambda n: "```\n" + "x = 1\n" * n, id="one open fence"),
        pytest.param(lambda n: "x" * (5 * n), id="one line, no spaces"),
    ],
)
def test_the_live_view_is_linear_in_a_block_that_never_ends(make: Callable[[int], str]) -> None:
    assert growth(lambda size: _stream(make(size)), 3000, repeats=3) < LINEAR_GROWTH_LIMIT


def test_the_live_reasoning_panel_is_linear_in_reasoning_without_line_ends() -> None:
    run = lambda size: _stream("word " * size, reasoning=True)  # noqa: E731
    assert growth(run, 3000, repeats=3) < LINEAR_GROWTH_LIMIT


def test_growth_can_tell_quadratic_from_linear() -> None:
    # the measure itself: a linear operation passes, deliberately quadratic ones are caught
    def nested(k: int) -> int:
        return sum(1 for _ in range(k) for _ in range(k))

    def quadratic(text: str) -> int:
        return sum(text.count("a", i) for i in range(len(text)))

    assert growth(lambda size: lambda: sum(range(size)), 2000) < LINEAR_GROWTH_LIMIT
    assert growth(lambda size: lambda: nested(size), 300) > LINEAR_GROWTH_LIMIT
    assert growth(lambda size: lambda: quadratic("a" * size), 1000) > LINEAR_GROWTH_LIMIT
