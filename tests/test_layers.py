"""Layering (STYLE.md): one-way edges between layers, Jupyter only in the skin, no cycles."""

from __future__ import annotations

import json
import re
from pathlib import Path

from layering import (
    LAYERS,
    cycles,
    import_graph,
    imports_of,
    layer_of,
    package_modules,
    violations_of,
)
from processes import python_child

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_belongs_to_a_layer() -> None:
    modules = package_modules()
    assert "ormagic.engine.engine" in modules and "ormagic.jupyter.magic" in modules
    assert {name: layer_of(name) for name in modules if layer_of(name) is None} == {}


def test_no_module_imports_across_the_layer_map() -> None:
    modules = package_modules()
    found = [
        str(violation)
        for name, path in modules.items()
        for violation in violations_of(
            name, path.read_text(), is_package=path.name == "__init__.py", known=modules
        )
    ]
    assert found == []


def test_no_import_cycles_not_even_for_type_checking() -> None:
    assert cycles(import_graph(package_modules())) == []


# -- the checker itself can fail --------------------------------------------------------


def test_the_checker_catches_a_lower_module_importing_a_higher_one() -> None:
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from ..errors import OrmagicError\n"  # allowed: the base layer
        "if TYPE_CHECKING:\n"
        "    from ..engine.engine import Engine\n"
        "def later():\n"
        "    import IPython\n"
        "    from ..jupyter import magic\n"
        "    importlib.import_module('ormagic.render.views')\n"
        "    return __import__('ipywidgets')\n"
    )
    found = violations_of("ormagic.client.synthetic", source, known=["ormagic.jupyter.magic"])
    assert [(v.imported, v.line, v.why) for v in found] == [
        ("ormagic.engine.engine", 5, "client may not import engine"),
        ("IPython", 7, "IPython is not for the client layer"),
        ("ormagic.jupyter", 8, "client may not import jupyter"),
        ("ormagic.jupyter.magic", 8, "client may not import jupyter"),
        ("ormagic.render.views", 9, "client may not import render"),
        ("ipywidgets", 10, "ipywidgets is not for the client layer"),
    ]


def test_the_checker_refuses_a_module_outside_every_layer() -> None:
    assert layer_of("somewhere.else") is None
    [violation] = violations_of("somewhere.else", "import os\n")
    assert violation.why == "the module belongs to no layer: add it to LAYERS"


def test_a_lazy_table_of_module_names_counts_as_imports() -> None:
    source = '_LAZY = {"ask": "ormagic.api.ask"}\n'
    assert list(
        imports_of("ormagic.engine.x", source, is_package=False, known=["ormagic.api.ask"])
    ) == [("ormagic.api.ask", 1)]
    [violation] = violations_of("ormagic.engine.x", source, known=["ormagic.api.ask"])
    assert violation.why == "engine may not import api"


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert cycles(graph) == [["a", "b", "c"], ["d"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_documented_layout_matches_the_tree() -> None:
    readme = (ROOT / "docs" / "development.md").read_text()
    block = readme.split("Layout: one subpackage per layer", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"^  (\w+)/", block, re.M))
    packages = {p.name for p in (ROOT / "ormagic").iterdir() if (p / "__init__.py").exists()}
    assert listed == packages
    base = {name for name in re.findall(r"(\w+)\.py", block)}
    assert base == {p.stem for p in (ROOT / "ormagic").glob("*.py")}
    # and the layer map knows every subpackage
    assert {prefix.split(".")[1] for ps in LAYERS.values() for prefix in ps if "." in prefix} >= (
        packages
    )


# -- at run time --------------------------------------------------------------------------

PROGRAM = """
import importlib, json, sys
from layering import package_modules
for name in sorted(package_modules()):
    if not name.startswith(("ormagic.jupyter", "ormagic.testing")):
        importlib.import_module(name)
print(json.dumps(sorted(
    name for name in sys.modules if name.split(".")[0] in ("IPython", "ipywidgets", "traitlets")
)))
"""


def test_everything_below_the_skin_imports_without_jupyter() -> None:
    result = python_child("-c", PROGRAM)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
