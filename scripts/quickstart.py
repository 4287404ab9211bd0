"""Execute notebooks/quickstart.ipynb headless and print what each %%chat answered.

With OPENROUTER_API_KEY set, the notebook talks to OpenRouter. Without it, it runs offline
against ormagic's bundled fake OpenRouter server (canned answers), and says so.
The executed notebook is written to notebooks/quickstart.out.ipynb.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from ormagic.testing.fake_openrouter import FakeOpenRouter

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "notebooks" / "quickstart.ipynb"
TARGET = ROOT / "notebooks" / "quickstart.out.ipynb"


def run(env_note: str) -> int:
    nb = nbformat.read(SOURCE, as_version=4)
    print(env_note, flush=True)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(SOURCE.parent)}}
    ).execute()
    nbformat.write(nb, TARGET)
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.startswith("%%chat"):
            continue
        print(f"\n>>> {cell.source}\n")
        for output in cell.outputs:
            text = output.get("data", {}).get("text/plain") or output.get("text", "")
            if text:
                print(text)
    print(f"\nExecuted notebook written to {TARGET.relative_to(ROOT)}")
    return 0


def main() -> int:
    if os.environ.get("OPENROUTER_API_KEY", "").strip():
        base = os.environ.get("OPENROUTER_BASE_URL", "https://openrouter.ai/api/v1")
        return run(f"Running {SOURCE.name} against {base} (OPENROUTER_API_KEY is set).")
    with FakeOpenRouter(demo=True) as fake:
        os.environ["OPENROUTER_API_KEY"] = fake.api_key
        os.environ["OPENROUTER_BASE_URL"] = fake.base_url
        return run(
            "OPENROUTER_API_KEY is not set: running OFFLINE against ormagic's fake OpenRouter "
            f"server at {fake.base_url} (scripted answers, no cost).\n"
            "Set OPENROUTER_API_KEY and run `make quickstart` again to ask a real model."
        )


if __name__ == "__main__":
    sys.exit(main())
