"""Run the shipped notebooks headless, as a user would, against the fake OpenRouter.

    .venv/bin/python scripts/notebooks.py            # run them all, report, change nothing
    .venv/bin/python scripts/notebooks.py --write    # and save their outputs

The three notebooks of ``notebooks/`` and ``docs/examples.ipynb`` (the cells whose outputs
the docs show).

Each notebook runs cell by cell in a fresh kernel in a scratch copy of ``notebooks/``
(so that its data files are found and what it writes stays there), with the fake server's
scripted demo answers (``ormagic.testing.demo``) and a cache of its own. A cell tagged
``restart-kernel`` is run the way the notebook tells the user to: the notebook is saved
first, then the kernel restarts (the kernel knows its file through ``JPY_SESSION_NAME``,
as under JupyterLab). The test suite runs the same function, so the notebooks never rot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("quickstart.ipynb", "data-analysis.ipynb", "teaching.ipynb")
# the cells whose outputs the docs show (scripts/docs.py), run the same way
EXAMPLES = ROOT / "docs" / "examples.ipynb"
HOMES = {**{name: NOTEBOOKS for name in NAMES}, EXAMPLES.name: EXAMPLES.parent}
RESTART_TAG = "restart-kernel"


def run_notebook(name: str, workdir: Path, env: Mapping[str, str]) -> Any:
    """Execute ``notebooks/NAME`` in ``workdir`` (a copy of notebooks/); return it run."""
    source = workdir / name
    notebook = nbformat.read(source, as_version=4)
    for cell in notebook.cells:  # from the top, as after "Clear All Outputs" and a save
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(notebook, source)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        record_timing=False,
        store_widget_state=False,
    )
    kernel_env = {**os.environ, **env, "JPY_SESSION_NAME": str(source)}
    with client.setup_kernel(env=kernel_env):
        for index, cell in enumerate(notebook.cells):
            if RESTART_TAG in cell.metadata.get("tags", ()):
                nbformat.write(notebook, source)  # saved, as the notebook asks the user to
                run_sync(client.km.restart_kernel)(now=True)
                run_sync(client.kc.wait_for_ready)(timeout=120)
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
    return notebook


def scratch_copy() -> Path:
    """A temporary copy of notebooks/ (data files included) and the docs' examples."""
    workdir = Path(tempfile.mkdtemp(prefix="ormagic-notebooks-"))
    shutil.copytree(NOTEBOOKS, workdir, dirs_exist_ok=True)
    shutil.copyfile(EXAMPLES, workdir / EXAMPLES.name)
    return workdir


def clean(notebook: Any) -> Any:
    """Outputs as they are worth keeping: no execution metadata, stable cell order."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    return notebook


def main(argv: list[str]) -> int:
    from ormagic.testing.fake_openrouter import FakeOpenRouter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(HOMES))
    parser.add_argument("--write", action="store_true", help="save the outputs in notebooks/")
    args = parser.parse_args(argv)
    workdir = scratch_copy()
    with FakeOpenRouter(demo=True) as fake:
        env = {
            "OPENROUTER_API_KEY": fake.api_key,
            "OPENROUTER_BASE_URL": fake.base_url,
            "ORMAGIC_CACHE_DIR": str(workdir / ".cache"),
        }
        for name in args.names:
            notebook = clean(run_notebook(name, workdir, env))
            print(f"{name}: ran {sum(c.cell_type == 'code' for c in notebook.cells)} cells")
            if args.write:
                nbformat.write(notebook, HOMES[name] / name)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
