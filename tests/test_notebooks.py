"""The shipped notebooks run headless, start to finish, against the fake server."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ormagic.testing.fake_openrouter import FakeOpenRouter

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("name", ["quickstart.ipynb", "tour.ipynb"])
def test_notebook_runs_offline(name: str, fake_env: FakeOpenRouter, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    chats = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%chat")]
    assert chats
    for cell in chats:
        answers = [o for o in cell.outputs if "text/markdown" in o.get("data", {})]
        assert len(answers) == 1, cell.source
        assert answers[0].metadata["ormagic"]["model"] == "deepseek/deepseek-v4-flash"
    errors = [
        (c.source, o.get("ename"))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    expected = [("trend = sales['south'][3]", "IndexError")] if name == "tour.ipynb" else []
    assert errors == expected
    usage_errors = [
        o.text
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream" and "UsageError" in o.text
    ]
    assert usage_errors == []
    assert fake_env.api_key not in nbformat.writes(nb)
