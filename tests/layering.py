"""The layer map of ormagic and a checker that reads every module's imports with ``ast``.

A module's imports are: ``import`` and ``from ... import`` statements anywhere in it
(inside functions and ``if TYPE_CHECKING:`` blocks too), ``importlib.import_module`` /
``__import__`` calls, and any string constant that names a module of the package (so
that a table of names imported lazily, as ``ormagic/__init__.py`` keeps, counts).
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import ormagic

PACKAGE = "ormagic"

# layer -> module prefixes (the longest matching prefix wins)
LAYERS: dict[str, tuple[str, ...]] = {
    "base": (
        "ormagic.errors",
        "ormagic.events",
        "ormagic.formatting",
        "ormagic.version",
        "ormagic.view",
    ),
    "client": ("ormagic.client",),
    "context": ("ormagic.context",),
    "render": ("ormagic.render",),
    "engine": ("ormagic.engine",),
    # ormagic.map: one prompt over every row (asyncio and Dask), on the engine's settings
    "batch": ("ormagic.batch",),
    "api": ("ormagic.api",),
    "jupyter": ("ormagic.jupyter",),
    "package": ("ormagic",),
    "testing": ("ormagic.testing",),
}

# layer -> the layers it may import (one way: the skin on top, shared types at the bottom)
ALLOWED: dict[str, frozenset[str]] = {
    "base": frozenset({"base"}),
    "client": frozenset({"base", "client"}),
    "context": frozenset({"base", "context"}),
    "render": frozenset({"base", "render"}),
    "engine": frozenset({"base", "client", "context", "engine"}),
    "batch": frozenset({"base", "client", "context", "engine", "batch"}),
    "api": frozenset({"base", "client", "context", "engine", "batch", "render", "api"}),
    "jupyter": frozenset(
        {"base", "client", "context", "render", "engine", "batch", "api", "jupyter"}
    ),
    "package": frozenset({"base", "api", "engine", "jupyter", "package"}),
    "testing": frozenset({"testing"}),
}

# third-party package -> the layers that may import it
THIRD_PARTY: dict[str, frozenset[str]] = {
    "IPython": frozenset({"jupyter"}),
    "traitlets": frozenset({"jupyter"}),
    "ipykernel": frozenset(),
    "ipywidgets": frozenset({"render", "jupyter"}),
    "nbformat": frozenset({"context", "engine", "jupyter"}),
    "httpx": frozenset({"client"}),
    "markdown_it": frozenset({"render"}),
    "mdit_py_plugins": frozenset({"render"}),
    "pygments": frozenset({"render"}),
    # the providers chart (the optional `plot` extra): drawn by the renderer only
    "matplotlib": frozenset({"render"}),
    # the batch layer's optional companions: imported there only, and only when used
    "dask": frozenset({"batch"}),
    "distributed": frozenset({"batch"}),
    "jsonschema": frozenset({"batch"}),
    "pydantic": frozenset({"batch"}),
}


@dataclass(frozen=True)
class Violation:
    module: str
    imported: str
    line: int
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.why}"


def package_modules() -> dict[str, Path]:
    """Every module of the package, found with pkgutil (a new module cannot hide)."""
    root = Path(ormagic.__file__).parent
    found = {PACKAGE: root / "__init__.py"}
    for info in pkgutil.walk_packages([str(root)], prefix=f"{PACKAGE}."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None and spec.origin is not None, info.name
        found[info.name] = Path(spec.origin)
    return found


def layer_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of a relative import written in ``module``."""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imports_of(
    module: str, source: str, *, is_package: bool, known: Iterable[str] = ()
) -> Iterator[tuple[str, int]]:
    """``(imported module, line)`` for every import in ``source`` (see the module doc)."""
    known_modules = set(known)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = _resolve(module, is_package, node.level, node.module)
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:  # "from . import commands" imports a module
                candidate = f"{target}.{alias.name}"
                if candidate in known_modules:
                    yield candidate, node.lineno
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            if node.args and isinstance(node.args[0], ast.Constant):
                value = node.args[0].value
                if isinstance(value, str):
                    yield value, node.lineno
        # a string naming a module; dotted, since the bare word "ormagic" is also a name
        # (the default X-OpenRouter-Title)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in known_modules
            and "." in node.value
            and node.value != module
        ):
            yield node.value, node.lineno


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in ("import_module", "__import__")


def violations_of(
    module: str, source: str, *, is_package: bool = False, known: Iterable[str] = ()
) -> list[Violation]:
    """What in ``source`` (the text of ``module``) breaks the layer map."""
    layer = layer_of(module)
    if layer is None:
        return [Violation(module, "-", 0, "the module belongs to no layer: add it to LAYERS")]
    found = []
    for imported, line in imports_of(module, source, is_package=is_package, known=known):
        top = imported.split(".")[0]
        if top == PACKAGE:
            target = layer_of(imported)
            if target is not None and target not in ALLOWED[layer]:
                found.append(Violation(module, imported, line, f"{layer} may not import {target}"))
        elif top in THIRD_PARTY and layer not in THIRD_PARTY[top]:
            found.append(Violation(module, imported, line, f"{top} is not for the {layer} layer"))
    return found


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """ormagic module -> the ormagic modules it imports (every kind of import)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = imports_of(
            module, path.read_text(), is_package=path.name == "__init__.py", known=modules
        )
        graph[module] = {target for target, _ in edges if target in modules and target != module}
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The import cycles of ``graph`` (one per strongly connected component), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)
