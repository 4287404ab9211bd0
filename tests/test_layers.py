"""Layering: the modules below the renderer never import IPython or Jupyter (STYLE.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOWER_MODULES = [
    "ormagic._sse",
    "ormagic._stream",
    "ormagic._message",
    "ormagic._client",
    "ormagic._settings",
    "ormagic._events",
    "ormagic._errors",
    "ormagic._conversation",
    "ormagic._format",
    "ormagic._apierrors",
    "ormagic._markdown",
    "ormagic._blocks",
    "ormagic._texmath",
    "ormagic._interpolate",
    "ormagic._context",
    "ormagic._snapshot",
    "ormagic._capture",
    "ormagic._redact",
    "ormagic._summaries",
    "ormagic._models",
    "ormagic._usage",
    "ormagic._export",
    "ormagic._live",
    "ormagic._reasoning",
    "ormagic._render",
    "ormagic._turn",
    "ormagic._session",
]
FORBIDDEN = ["IPython", "ipywidgets", "ipykernel", "traitlets"]
PROGRAM = f"""
import importlib, json, sys
for name in {LOWER_MODULES!r}:
    importlib.import_module(name)
print(json.dumps(sorted(
    name for name in sys.modules
    if name.split(".")[0] in {FORBIDDEN!r}
)))
"""


def test_lower_layers_import_nothing_from_jupyter() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_check_would_notice_a_jupyter_import() -> None:
    # The same program, importing IPython on purpose, reports it: the test above can fail.
    program = "import IPython\n" + PROGRAM
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "IPython" in json.loads(result.stdout)
