"""Layering: the modules below the renderer never import IPython or Jupyter (STYLE.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOWER_MODULES = [
    "ormagic.client.sse",
    "ormagic.client.stream",
    "ormagic.client.message",
    "ormagic.client.http",
    "ormagic.client.settings",
    "ormagic.events",
    "ormagic.errors",
    "ormagic.engine.conversation",
    "ormagic.formatting",
    "ormagic.client.statuses",
    "ormagic.render.markdown",
    "ormagic.render.blocks",
    "ormagic.render.texmath",
    "ormagic.context.interpolate",
    "ormagic.context.block",
    "ormagic.context.snapshot",
    "ormagic.context.capture",
    "ormagic.context.redact",
    "ormagic.context.summaries",
    "ormagic.engine.models",
    "ormagic.engine.usage",
    "ormagic.engine.export",
    "ormagic.render.live",
    "ormagic.render.reasoning",
    "ormagic.render.views",
    "ormagic.engine.turn",
    "ormagic.engine.engine",
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
