"""build_context on hand-made snapshots: exact block texts, modes, variables, budget."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from collections.abc import Mapping
from typing import Any

import pytest

from ormagic.context.block import (
    ContextMode,
    build_context,
    estimate_tokens,
    mentions_error,
    referenced_names,
)
from ormagic.context.snapshot import CellRecord, NotebookSnapshot

HEADER = (
    "Notebook context (cells executed since the last question; the user cannot see this block):"
)
LAST_ERROR = (
    "Traceback (most recent call last):\n"
    '  File "<ipython-input-6-x>", line 2, in <module>\n'
    "ZeroDivisionError: division by zero"
)


def cell(n: int, source: str, *outputs: str, error: str | None = None) -> CellRecord:
    return CellRecord(n, source, tuple(outputs), error, source.startswith("%%chat"))


def snapshot(
    *cells: CellRecord,
    namespace: Mapping[str, Any] | None = None,
    last_error: str | None = None,
    markdown: tuple[tuple[int, str], ...] = (),
    since: int | None = 2,
) -> NotebookSnapshot:
    return NotebookSnapshot(cells, namespace or {}, last_error, None, markdown, since)


def build(snap: NotebookSnapshot, prompt: str = "explain", mode: str = "auto", **kw: Any) -> Any:
    kw.setdefault("budget_tokens", 24_000)
    return build_context(snap, prompt=prompt, mode=ContextMode.parse(mode), **kw)


NOTEBOOK = snapshot(
    cell(3, "import pandas as pd\ndf = load()"),
    cell(4, "%%chat\nwhat is df?"),
    cell(5, "print(df_total)\ndf_total * 2", "10\n", "20"),
    cell(
        6,
        "text = '```'\nratio = 1 / 0",
        error="ZeroDivisionError: division by zero\n----> 2 ratio = 1 / 0",
    ),
    namespace={"df_total": 10, "pd": types.ModuleType("pandas")},
    last_error=LAST_ERROR,
    markdown=((5, "## Totals"), (-1, "Unattached.")),
)


def test_full_block_text() -> None:
    block = build(NOTEBOOK, prompt="Why is df_total failing with pd?")
    assert block.text == (
        f"{HEADER}\n\n"
        "In [3]:\n```python\nimport pandas as pd\ndf = load()\n```\n\n"
        "Markdown:\n```markdown\n## Totals\n```\n"
        "In [5]:\n```python\nprint(df_total)\ndf_total * 2\n```\n"
        "Out [5]:\n```\n10\n20\n```\n\n"
        "In [6]:\n````python\ntext = '```'\nratio = 1 / 0\n````\n"
        "Error in [6]: shown under Last error below\n\n"
        "Variables:\n- df_total: int: 10\n\n"
        f"Last error:\n```\n{LAST_ERROR}\n```"
    )
    assert block.cells == [3, 5, 6]
    assert block.variables == ["df_total"]
    assert block.included_error is True
    assert block.elided_chars == 0
    assert block.tokens == estimate_tokens(block.text) == 132


def test_cell_error_is_shown_in_place_when_the_error_is_not_asked_about() -> None:
    block = build(NOTEBOOK, prompt="summarise the notebook")
    assert block.text.endswith(
        "In [6]:\n````python\ntext = '```'\nratio = 1 / 0\n````\n"
        "Error in [6]:\n```\nZeroDivisionError: division by zero\n----> 2 ratio = 1 / 0\n```"
    )
    assert block.included_error is False
    assert block.variables == []


def test_empty_context_is_empty_text() -> None:
    block = build(snapshot(), prompt="hello")
    assert (block.text, block.tokens, block.cells, block.variables) == ("", 0, [], [])
    only_chat = build(snapshot(cell(4, "%%chat\nhi")), prompt="hello")
    assert only_chat.text == ""


def test_mode_none_sends_nothing_unless_the_error_is_asked_for() -> None:
    assert build(NOTEBOOK, prompt="why does df_total fail?", mode="none").text == ""
    block = build(NOTEBOOK, prompt="anything", mode="none", include_error=True)
    assert block.text == (
        f"Notebook context (the user cannot see this block):\n\nLast error:\n```\n{LAST_ERROR}\n```"
    )
    assert (block.cells, block.variables, block.included_error) == ([], [], True)


def test_mode_all_and_last_n() -> None:
    cells = [cell(n, f"x{n} = {n}") for n in range(1, 31)]
    snap = snapshot(*cells, cell(31, "%%chat\nq"), since=None)
    assert build(snap, mode="all").cells == list(range(1, 31))
    assert build(snap, mode="all").text.startswith(
        "Notebook context (cells executed in this session; the user cannot see this block):"
    )
    block = build(snap, mode="3")
    assert block.cells == [28, 29, 30]
    assert block.text == (
        "Notebook context (the most recently executed cells; the user cannot see this block):"
        "\n\nIn [28]:\n```python\nx28 = 28\n```"
        "\n\nIn [29]:\n```python\nx29 = 29\n```"
        "\n\nIn [30]:\n```python\nx30 = 30\n```"
    )


def test_auto_takes_cells_since_the_last_question_or_the_last_ten_on_the_first_turn() -> None:
    cells = [cell(n, f"x{n} = {n}") for n in range(1, 31)]
    assert build(snapshot(*cells[20:], since=20)).cells == list(range(21, 31))
    assert build(snapshot(*cells[5:], since=5)).cells == list(range(6, 31))
    first = snapshot(*cells, since=None)
    assert build(first).cells == list(range(21, 31))
    assert build(first, first_turn_cells=4).cells == [27, 28, 29, 30]
    assert build(snapshot(*cells, since=0), first_turn=True).cells == list(range(21, 31))


def test_mode_parse() -> None:
    assert ContextMode.parse("auto") == ContextMode("auto")
    assert ContextMode.parse(" ALL ") == ContextMode("all")
    assert ContextMode.parse("none") == ContextMode("none")
    assert ContextMode.parse("5") == ContextMode("last", 5)
    for bad in ("0", "-2", "last", "3.5", ""):
        with pytest.raises(ValueError) as info:
            ContextMode.parse(bad)
        assert str(info.value) == (
            f"Context must be auto, none, all or a positive number of cells, not {bad!r}."
        )


NAMESPACE: dict[str, Any] = {
    "df": [1, 2, 3],
    "total": 6,
    "In": ["", "x = 1"],
    "Out": {},
    "get_ipython": lambda: None,
    "_private": 1,
    "np": types.ModuleType("numpy"),
    "list": [9, 9],
    "print": print,
    "shape": (3,),
}


@pytest.mark.parametrize(
    ("prompt", "names"),
    [
        ("what is in {df}?", ["df"]),
        ("explain {df.shape}", ["df"]),
        ("why is {df[0]} so small", ["df"]),
        ("plot df against total", ["df", "total"]),
        ("compare {In[3]} with Out and get_ipython", []),
        ("is _private or np used?", []),
        ("sort the list and print it", []),
        ("what is in {list}?", ["list"]),
        ("what about undefined_name or dfx?", []),
        ("df df {df} total", ["df", "total"]),
    ],
)
def test_referenced_names(prompt: str, names: list[str]) -> None:
    assert referenced_names(prompt, NAMESPACE) == names


def test_variables_are_summarised_in_the_block() -> None:
    block = build(snapshot(namespace=NAMESPACE), prompt="why is {df.shape} wrong for total?")
    assert block.text == (
        f"{HEADER}\n\nVariables:\n- df: list, 3 items: [1, 2, 3]\n- total: int: 6"
    )
    assert block.variables == ["df", "total"]


def test_multi_line_summaries_are_fenced() -> None:
    def helper(x: int) -> int:
        """Double x.

        Details.
        """
        return 2 * x

    block = build(snapshot(namespace={"helper": helper}), prompt="what does helper do?")
    assert block.text == (
        f"{HEADER}\n\nVariables:\n- helper:\n```\nfunction "
        f"test_multi_line_summaries_are_fenced.<locals>.helper(x: 'int') -> 'int'\n"
        "Double x.\n```"
    )


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Why does this fail?", True),
        ("what went wrong here", True),
        ("fix it", True),
        ("explain the traceback", True),
        ("I get a KeyError", True),
        ("why doesn't the plot work", True),
        ("it's not working", True),
        ("there's a bug in my loop", True),
        ("the kernel crashed", True),
        ("Error!", True),
        ("plot the sales by region", False),
        ("what does fixture mean", False),
        ("summarise the debugging notes", False),
    ],
)
def test_mentions_error(prompt: str, expected: bool) -> None:
    assert mentions_error(prompt) is expected


def test_error_inclusion_rules() -> None:
    snap = snapshot(cell(3, "x = 1"), last_error=LAST_ERROR)
    assert build(snap, prompt="why did it fail?").included_error is True
    assert build(snap, prompt="plot x").included_error is False
    assert build(snap, prompt="plot x", include_error=True).included_error is True
    assert build(snap, prompt="why did it fail?", include_error=False).included_error is False
    no_error = snapshot(cell(3, "x = 1"))
    assert build(no_error, prompt="fix it", include_error=True).included_error is False
    assert "Last error:" not in build(no_error, prompt="fix it", include_error=True).text


SECRET = "my-proxy-secret-123456"
KEY = "sk-or-v1-" + "ab12" * 16


def test_redaction_applies_to_every_part() -> None:
    snap = snapshot(
        cell(3, f"key = '{KEY}'\nsecret = '{SECRET}'", f"using {SECRET}", error=f"Error: {KEY}"),
        namespace={"secret": SECRET, "config": {"token": KEY}},
        last_error=f"ValueError: bad key {SECRET}",
        markdown=((3, f"Our key is {KEY}"),),
    )
    block = build(snap, prompt="why does {config} with secret fail?", secrets=[SECRET])
    assert SECRET not in block.text
    assert KEY not in block.text
    assert block.text.count("[REDACTED]") == 8
    assert "- config: dict, 1 key: {'token': '[REDACTED]'}" in block.text
    assert "- secret: str, 22 characters: '[REDACTED]'" in block.text


def test_a_1mb_output_is_cut_in_its_middle_to_fit_the_budget() -> None:
    output = "a" * 500_000 + "b" * 500_000
    block = build(snapshot(cell(3, "print(big)", output)), budget_tokens=2000)
    assert block.tokens <= 2000
    assert len(block.text) <= 8000
    match = re.search(r"\n(a+)\n… \[([\d,]+) characters left out\] …\n(b+)\n```$", block.text)
    assert match is not None
    left_out = int(match.group(2).replace(",", ""))
    assert len(match.group(1)) + left_out + len(match.group(3)) == 1_000_000
    assert block.elided_chars == left_out
    assert block.text.startswith(f"{HEADER}\n\nIn [3]:\n```python\nprint(big)\n```\nOut [3]:\n")
    assert block.cells == [3]


def test_exact_cut_and_dropped_cells_note() -> None:
    cells = [cell(n, f"x{n} = 1", "abcdefghij"[n - 1] * 500) for n in range(1, 11)]
    block = build(snapshot(*cells), budget_tokens=300)
    # 1,200 characters: the header, the note, cell 10 whole, and cell 9 with its output
    # cut to 477 characters (446 kept around a 29-character marker line, 54 left out).
    assert block.text == (
        f"{HEADER}\n\n[8 earlier cells left out]\n\n"
        "In [9]:\n```python\nx9 = 1\n```\nOut [9]:\n```\n"
        + "i" * 223
        + "\n… [54 characters left out] …\n"
        + "i" * 223
        + "\n```\n\n"
        "In [10]:\n```python\nx10 = 1\n```\nOut [10]:\n```\n" + "j" * 500 + "\n```"
    )
    assert block.cells == [9, 10]
    assert block.elided_chars == 54 + 8 * (6 + 500)
    assert block.tokens == 299


def test_one_dropped_cell_is_singular() -> None:
    cells = [cell(1, "x = 1", "1" * 5000), cell(2, "y = 2")]
    block = build(snapshot(*cells), budget_tokens=50)
    assert block.text == f"{HEADER}\n\n[1 earlier cell left out]\n\nIn [2]:\n```python\ny = 2\n```"


def test_error_and_variables_come_before_cells_in_priority() -> None:
    cells = [cell(n, f"x{n} = 1", "z" * 2000) for n in range(1, 6)]
    snap = snapshot(*cells, namespace={"total": 6}, last_error=LAST_ERROR)
    block = build(snap, prompt="why does total fail?", budget_tokens=200)
    assert block.included_error is True
    assert block.variables == ["total"]
    assert block.text.endswith(
        f"Variables:\n- total: int: 6\n\nLast error:\n```\n{LAST_ERROR}\n```"
    )
    assert block.tokens <= 200
    assert block.cells == [5]


def test_a_budget_too_small_for_the_header_gives_nothing() -> None:
    block = build(snapshot(cell(1, "x = 1")), budget_tokens=5)
    assert (block.text, block.tokens) == ("", 0)


def test_estimate_tokens() -> None:
    assert [estimate_tokens(t) for t in ("", "a", "abcd", "abcde", "x" * 4000)] == [
        0,
        1,
        1,
        2,
        1000,
    ]


def test_pure_modules_do_not_import_ipython_or_widgets() -> None:
    code = (
        "import sys, ormagic.context.block, ormagic.context.snapshot\n"
        "import ormagic.context.redact, ormagic.context.summaries\n"
        "print(sorted(m for m in ('IPython', 'ipywidgets', 'pandas', 'numpy', 'nbformat')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
