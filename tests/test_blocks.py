"""Tests for ormagic.render.blocks: where a streaming answer can be cut into finished blocks.

Exact cuts for each kind of block, and a round trip: an answer fed in small deltas, cut
as the renderer cuts it, renders piece by piece exactly as it renders whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from waiting import LINEAR_GROWTH_LIMIT, growth

from ormagic.render.blocks import split_blocks
from ormagic.render.markdown import render_html


@pytest.mark.parametrize(
    ("text", "head"),
    [
        ("One.\n\nTwo.\n", "One.\n\n"),
        ("One.\n\nTwo.\n\nThr", "One.\n\n"),
        ("a\n\nb", ""),
        ("Just one line\n", ""),
        ("# Title\n\nText\nmore text\n\nNext\n", "# Title\n\nText\nmore text\n\n"),
        ("a\r\n\r\nb\r\n", "a\r\n\r\n"),
        # fences: blank lines inside, unclosed, longer, closing with trailing junk
        ("```py\na = 1\n\nb = 2\n```\n\nDone.\n", "```py\na = 1\n\nb = 2\n```\n\n"),
        ("Intro\n\n```py\na = 1\n\nb = 2\n", "Intro\n\n"),
        ("```\nx\n\ny\n", ""),
        ("````md\n```\n\nx\n```\n\ny\n", ""),
        ("````md\n```\n\nx\n````\n\nEnd\n", "````md\n```\n\nx\n````\n\n"),
        ("```\nx\n```~~\n\ny\n", ""),
        ("~~~\n```\n\n~~~\n\nz\n", "~~~\n```\n\n~~~\n\n"),
        # lists stay whole, continuation and indented lines are never cut before
        ("- a\n\n- b\n\n  more b\n\nAfter\n", "- a\n\n- b\n\n  more b\n\n"),
        ("- a\n\n- b\n", ""),
        ("Intro\n\n1. a\n\n2. b\n", "Intro\n\n"),
        ("- a\n\n---\n\nz\n", "- a\n\n---\n\n"),
        ("a\n\n    code\n\n    more\n", ""),
        ("a\n\n    code\n\nb\n", "a\n\n    code\n\n"),
        # a fence nested in a list item ends with the item: then "```" opens a new one
        ("- a\n  ```\n  code\n```\nx\n\ny\n", ""),
        ("- a\n\n  ```\n  code\n\n  ```\n\nz\n", "- a\n\n  ```\n  code\n\n  ```\n\n"),
        # tables and math
        ("| a | b |\n|---|---|\n| 1 | 2 |\n\nNext\n", "| a | b |\n|---|---|\n| 1 | 2 |\n\n"),
        ("Intro\n\n| a | b |\n|---|---|\n", "Intro\n\n"),
        ("$$\nx = 1\n$$\n\nNext\n", "$$\nx = 1\n$$\n\n"),
        ("Intro\n\n$$\na\n\nb\n", "Intro\n\n"),
        ("$$x$$\n\nNext\n", "$$x$$\n\n"),
        ("\\[\na\n\nb\n\\]\n\nc\n", "\\[\na\n\nb\n\\]\n\n"),
        # reference definitions: no cut at all
        ("See [x].\n\n[x]: https://a.example\n\nMore\n", ""),
        ("See [x].\n\n> [x]: https://a.example\n\nMore\n", ""),
    ],
)
def test_split_blocks_exact(text: str, head: str) -> None:
    assert split_blocks(text) == (head, text[len(head) :])


def test_split_blocks_is_linear_in_a_long_unfinished_line() -> None:
    # A long paragraph still streaming: the old line regex retried at every position
    # of the unfinished line, taking 5 s here.
    text = "para\n\n" + "word " * 4000
    assert split_blocks(text) == ("", text)

    def run(n: int) -> Callable[[], object]:
        long_line = "para\n\n" + "word " * n
        return lambda: split_blocks(long_line)

    assert growth(run, 2000) < LINEAR_GROWTH_LIMIT


STREAMED_DOCUMENTS = [
    "# Heading\n\nA paragraph with *emphasis\nacross lines* and `code`.\n\n"
    "Second paragraph, $x^2$ and $5 or $10.\n\n---\n\nThe end",
    "Intro text.\n\n```python\ndef f(x):\n\n    return x < 1\n```\n\n"
    "````markdown\n```\n\nnested\n```\n````\n\nAfter the fences.\n",
    "| a | b |\n|---|:-:|\n| 1 | **2** |\n| 3 | 4 |\n\nBelow the table.\n\n| c |\n|---|\n| 5 |\n",
    "Math:\n\n$$\n\\int_0^1 x\\,dx = \\frac{1}{2}\n$$\n\nand\n\n\\[\na_1 * b_1\n\\]\n\n"
    "Inline \\(y\\) too.\n",
    "> quoted\n> lines\n\n> another quote\n\n    indented code\n\n    still code\n\n"
    "Back to text <b>not html</b>.\n",
    "Setext\n======\n\nText\n\n~~~\nunclosed fence\n\nwith blank lines\n",
    "[a link](https://example.com) and ![img](https://example.com/i.png)\n\n"
    "Text with trailing spaces  \nhard break.\n\n***\n\nLast words without newline",
]


def normalise_html(fragment: str) -> str:
    return re.sub(r">\s+<", "><", fragment).strip()


def stream(document: str, step: int) -> tuple[list[str], str]:
    """Feed a document in `step`-character deltas the way the renderer does."""
    heads: list[str] = []
    tail = ""
    for start in range(0, len(document), step):
        tail += document[start : start + step]
        head, tail = split_blocks(tail)
        if head:
            heads.append(head)
    return heads, tail


@pytest.mark.parametrize("document", STREAMED_DOCUMENTS)
def test_streamed_heads_render_like_the_whole_document(document: str) -> None:
    heads, tail = stream(document, 7)
    assert "".join(heads) + tail == document
    assert len(heads) >= 2  # the splitter did cut
    pieces = "".join(render_html(head) for head in heads) + render_html(tail)
    assert normalise_html(pieces) == normalise_html(render_html(document))


def test_streaming_a_list_keeps_it_together() -> None:
    document = "Steps:\n\n1. one\n\n2. two\n\n   more\n\n3. three\n\nDone.\n"
    heads, tail = stream(document, 7)
    assert heads == ["Steps:\n\n", "1. one\n\n2. two\n\n   more\n\n3. three\n\n"]
    assert tail == "Done.\n"
