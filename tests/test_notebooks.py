"""The shipped notebooks run headless, start to finish, against the fake server's demo
answers, and what is committed in notebooks/ is the output of such a run."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from ormagic.testing.fake_openrouter import FakeOpenRouter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from notebooks import NAMES, NOTEBOOKS, clean, run_notebook, scratch_copy  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def ran() -> Iterator[dict[str, Any]]:
    """Every notebook, run once for this module."""
    workdir = scratch_copy()
    with FakeOpenRouter(demo=True) as fake:
        env = {
            "OPENROUTER_API_KEY": fake.api_key,
            "OPENROUTER_BASE_URL": fake.base_url,
            "ORMAGIC_CACHE_DIR": str(workdir / ".cache"),
        }
        notebooks = {name: clean(run_notebook(name, workdir, env)) for name in NAMES}
        notebooks["_key"] = fake.api_key
        yield notebooks


def cells(notebook: Any, start: str) -> list[Any]:
    return [c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(start)]


def text(cell: Any) -> str:
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        else:
            parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def errors(notebook: Any) -> list[tuple[str, str]]:
    return [
        (cell.source, output.ename)
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]


@pytest.mark.parametrize("name", NAMES)
def test_every_question_is_answered_and_nothing_fails_by_accident(
    ran: dict[str, Any], name: str
) -> None:
    notebook = ran[name]
    expected = [('by_region = sales.groupby("region")["unit"].mean()', "KeyError")]
    assert errors(notebook) == (expected if name == "data-analysis.ipynb" else [])
    assert all("UsageError" not in text(c) for c in notebook.cells if c.cell_type == "code")
    questions = [c for c in cells(notebook, "%%chat") if "--each" not in c.source]
    for cell in questions + cells(notebook, "%chat --fix"):
        records = [
            o.metadata["ormagic"] for o in cell.outputs if "ormagic" in o.get("metadata", {})
        ]
        assert len(records) == 1, cell.source
        assert " via " in text(cell), cell.source  # a footer
    assert ran["_key"] not in nbformat.writes(notebook)


def test_quickstart_asks_follows_up_and_shows_the_cost(ran: dict[str, Any]) -> None:
    notebook = ran["quickstart.ipynb"]
    first, second = cells(notebook, "%%chat")
    assert text(first).startswith("[Thought for ")
    assert "| 2, 3, 4, 5, 96 | 22 | 4 |" in text(first)
    assert text(second).split("\n")[1].startswith("Report the **median**.")
    [usage] = cells(notebook, "%chat usage")
    assert "total: 2 turns · " in text(usage)


def test_data_analysis_uses_tools_code_fix_and_each(ran: dict[str, Any]) -> None:
    notebook = ran["data-analysis.ipynb"]
    [march] = [c for c in cells(notebook, "%%chat") if "March" in c.source]
    assert '⚙ describe_variable(name="sales") → ' in text(march)
    assert '⚙ value_counts(name="sales", column="month") → ' in text(march)
    assert text(march).rstrip().endswith("· 2 tool calls")
    [fix] = cells(notebook, "%chat --fix")
    assert 'by_region = sales.groupby("region")["units"].mean()' in text(fix)
    [joined] = cells(notebook, "reviews.join(labels)")
    table = text(joined)
    assert "Arrived two days late and the box was crushed.  negative  delivery" in table
    assert "Fine product, nothing special.   neutral   product" in table
    [report] = cells(notebook, "ormagic.batch_report()")
    assert [line.split()[1] for line in text(report).splitlines()[1:]] == ["ok"] * 6
    [each] = cells(notebook, "%%chat --each")
    assert text(each).splitlines()[-1].startswith("6 rows · ")


def test_teaching_compares_exports_and_resumes_after_a_restart(ran: dict[str, Any]) -> None:
    notebook = ran["teaching.ipynb"]
    [compare] = [c for c in cells(notebook, "%%chat") if "-m openai" in c.source]
    shown = text(compare)
    assert "── [1] deepseek/deepseek-v4-flash ──" in shown
    assert "── [2] openai/gpt-5-nano (kept) ──" in shown  # %chat pick 2 repainted it
    [providers] = cells(notebook, "%chat providers")
    assert any("image/png" in o.get("data", {}) for o in providers.outputs)
    [after] = [c for c in cells(notebook, "%%chat") if "confidence interval" in c.source]
    assert text(after).startswith("Resumed 'tutor' from teaching.ipynb: 2 turns (saved ")
    [hidden] = [c for c in cells(notebook, "%%chat") if "--hide-reasoning" in c.source]
    assert "Thought for" not in text(hidden)


@pytest.mark.parametrize("name", NAMES)
def test_the_committed_notebook_is_a_run_of_the_same_cells(ran: dict[str, Any], name: str) -> None:
    committed = nbformat.read(NOTEBOOKS / name, as_version=4)
    fresh = ran[name]
    assert [c.source for c in committed.cells] == [c.source for c in fresh.cells]
    for old, new in zip(committed.cells, fresh.cells, strict=True):
        if old.cell_type == "code":
            # the same kinds of output, in the same order (texts differ only in timings)
            assert [o.output_type for o in old.outputs] == [o.output_type for o in new.outputs]
    size = len(json.dumps(committed))
    assert size < 200_000  # small: no widget state, a few small images
