"""Tools the model may call: the read-only built-ins, the user's own, and running a call.

- :class:`ToolRegistry` holds the user's tools (``@ormagic.tool``) for every conversation of
  the process, ``%%chat`` and ``ormagic.ask`` alike; registering a name again replaces it,
  so a re-run cell never duplicates a tool.
- :func:`builtin_tools` binds the read-only built-ins (``ormagic.context.inspection``) to a
  notebook: they look at variables, cells and the last error, and never run code the
  model wrote.
- A :class:`ToolBox` is what one question may call. :meth:`ToolBox.run` never raises for
  the model's mistakes or the tool's: an unknown name, arguments that are not JSON or do
  not fit the schema, a tool that raises all become one line starting with ``Error:``
  that the model can act on. Every result is redacted like notebook context (the API key
  and key-shaped strings become ``[REDACTED]``) and bounded (``RESULT_TOKENS``; a cut
  result says so, with the usual middle-elision marker).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..context.block import CHARS_PER_TOKEN
from ..context.inspection import (
    InspectionError,
    describe_variable,
    last_error,
    list_variables,
    preview_rows,
    read_cell,
    search_notebook,
    value_counts,
)
from ..context.redact import redact
from ..context.summaries import cut_middle, shorten, summarise
from .notebook import Notebook
from .schema import ArgumentError, check_arguments, function_schema

__all__ = [
    "BUILTIN_NAMES",
    "RESULT_TOKENS",
    "Tool",
    "ToolBox",
    "ToolRegistry",
    "builtin_tools",
    "result_text",
    "user_tools",
]

RESULT_TOKENS = 2500
RESULT_CHARS = RESULT_TOKENS * CHARS_PER_TOKEN
_ERROR_CHARS = 300
_JSON_ITEMS = 1000  # larger containers are summarised rather than dumped whole


@dataclass(frozen=True)
class Tool:
    """A function the model may call, with its JSON-schema description."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    builtin: bool = False

    def spec(self) -> dict[str, Any]:
        """The ``tools`` item of a request (OAS ``ChatFunctionTool``)."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = self.parameters
        return {"type": "function", "function": function}

    def signature(self) -> str:
        """``preview_rows(name: string, start: integer = 0, ...)`` for people."""
        parts = []
        required = set(self.parameters.get("required") or ())
        for name, schema in (self.parameters.get("properties") or {}).items():
            part = f"{name}: {_type_text(schema)}"
            if name not in required:
                part += f" = {json.dumps(schema['default'])}" if "default" in schema else " = null"
            parts.append(part)
        return f"{self.name}({', '.join(parts)})"


def _type_text(schema: dict[str, Any]) -> str:
    """``string``, ``array of string | null``, ``"EUR" | "USD"``: a schema for people."""
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_type_text(s) for s in schema["anyOf"])
    kinds = schema.get("type")
    items = schema.get("items")
    names = []
    for kind in kinds if isinstance(kinds, list) else [kinds]:
        if kind == "array" and isinstance(items, dict) and items:
            names.append(f"array of {_type_text(items)}")
        else:
            names.append(str(kind or "any"))
    return " | ".join(names)


def make_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    builtin: bool = False,
) -> Tool:
    """A :class:`Tool` for ``fn``; a :class:`ConfigError` when its hints cannot be JSON."""
    schema = function_schema(fn, name=name, description=description)
    return Tool(schema.name, schema.description, schema.parameters, fn, builtin)


class ToolRegistry:
    """The user's tools by name; registering a name again replaces the tool."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(
        self, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
    ) -> Tool:
        """Describe ``fn`` and keep it (a :class:`ConfigError` when it cannot be described)."""
        tool = make_tool(fn, name=name, description=description)
        self._tools.pop(tool.name, None)  # a replaced tool moves to the end, like a new one
        self._tools[tool.name] = tool
        return tool

    def remove(self, name: str) -> bool:
        """Forget the tool ``name``; False when there was none."""
        return self._tools.pop(name, None) is not None

    def clear(self) -> None:
        self._tools.clear()

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)


_USER_TOOLS = ToolRegistry()


def user_tools() -> ToolRegistry:
    """The process's registry of user tools (``@ormagic.tool``)."""
    return _USER_TOOLS


# -- the built-ins -----------------------------------------------------------------------


class _Builtins:
    """The read-only tools, bound to one notebook. Docstrings and hints are the schemas."""

    def __init__(self, notebook: Notebook | None) -> None:
        self._notebook = notebook

    @property
    def notebook(self) -> Notebook:
        if self._notebook is None:  # pragma: no cover - built-ins exist only with a notebook
            raise InspectionError("There is no notebook in this session.")
        return self._notebook

    def list_variables(self) -> str:
        """List the notebook's variables: name, type, shape or length, approximate size.

        Modules, functions, classes, IPython's own names and names starting with _ are
        left out.
        """
        return list_variables(self.notebook.namespace)

    def describe_variable(self, name: str) -> str:
        """Describe one variable in detail.

        For a DataFrame: shape, dtypes and nulls per column, describe() of the numeric
        columns, and the first rows. Other objects: a summary, or what the object says
        of itself.

        Args:
            name: The variable's name, as list_variables shows it (no attributes,
                indexing or expressions).
        """
        return describe_variable(self.notebook.namespace, name)

    def preview_rows(
        self, name: str, start: int = 0, rows: int = 10, columns: list[str] | None = None
    ) -> str:
        """Show rows of a DataFrame, Series, list, tuple, dict or array (at most 100).

        Args:
            name: The variable's name.
            start: The first row, counted from 0 by position.
            rows: How many rows.
            columns: Only these columns of a DataFrame (all when omitted).
        """
        return preview_rows(self.notebook.namespace, name, start, rows, columns)

    def value_counts(self, name: str, column: str | None = None, top: int = 20) -> str:
        """Count how often each value occurs, most frequent first, nulls included.

        Args:
            name: The variable's name: a DataFrame, Series, list or 1-D array.
            column: The column, when the variable is a DataFrame.
            top: How many of the most frequent values to show (at most 100).
        """
        return value_counts(self.notebook.namespace, name, column, top)

    def read_cell(self, number: int) -> str:
        """Read the code, outputs and error of the executed cell In[number].

        Args:
            number: The cell's execution number, as in In [7].
        """
        notebook = self.notebook
        return read_cell(notebook.cell(number), number, notebook.running_cell() - 1)

    def search_notebook(self, text: str) -> str:
        """Find the cells whose code, output, error or Markdown contain a text (any case).

        Searches the cells run in this session (the newest 200) and the Markdown of the
        notebook file when it is known; gives the cell numbers and matching lines.

        Args:
            text: The text to look for.
        """
        notebook = self.notebook
        return search_notebook(notebook.snapshot(None), text)

    def last_error(self) -> str:
        """Read the traceback of the last error raised in the notebook."""
        notebook = self.notebook
        return last_error(notebook.snapshot(notebook.running_cell()))


BUILTIN_NAMES = (
    "list_variables",
    "describe_variable",
    "preview_rows",
    "value_counts",
    "read_cell",
    "search_notebook",
    "last_error",
)


@functools.cache
def _builtin_schemas() -> dict[str, Tool]:
    unbound = _Builtins(None)
    return {name: make_tool(getattr(unbound, name), builtin=True) for name in BUILTIN_NAMES}


def builtin_tools(notebook: Notebook | None) -> list[Tool]:
    """The read-only tools over ``notebook`` (unbound, for listing, when it is None)."""
    bound = _Builtins(notebook)
    return [
        Tool(t.name, t.description, t.parameters, getattr(bound, t.name), builtin=True)
        for t in _builtin_schemas().values()
    ]


# -- running calls -----------------------------------------------------------------------


def _json_sized(value: Any) -> bool:
    return not isinstance(value, list | dict) or len(value) <= _JSON_ITEMS


def result_text(value: Any) -> str:
    """A tool's return value as text for the model.

    A string as it is; an object with ``_repr_llm_()`` as it describes itself; numbers,
    booleans, None and modest lists and dicts as JSON; anything else summarised like a
    variable in the context.
    """
    if isinstance(value, str):
        return value
    own = getattr(type(value), "_repr_llm_", None)
    if callable(own):
        text = own(value)
        return text if isinstance(text, str) else str(text)
    jsonable = isinstance(value, bool | int | float | list | dict) and _json_sized(value)
    if value is None or jsonable:
        try:
            return json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            pass
    return summarise(value, RESULT_CHARS)


def _one_line(text: str) -> str:
    return shorten(" ".join(text.split()), _ERROR_CHARS)


class ToolBox:
    """The tools one question may call, and how a call is run."""

    def __init__(self, tools: Sequence[Tool], *, secrets: Sequence[str] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:  # a later tool of the same name (the user's) wins
            self._tools.pop(tool.name, None)
            self._tools[tool.name] = tool
        self._secrets = list(secrets)

    def __bool__(self) -> bool:
        return bool(self._tools)

    @property
    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    def specs(self) -> list[dict[str, Any]]:
        """The ``tools`` of a request."""
        return [tool.spec() for tool in self._tools.values()]

    def error(self, message: str) -> str:
        """An error result: one short line starting with ``Error:``, redacted."""
        return redact(f"Error: {_one_line(message)}", self._secrets)

    def run(self, name: str, arguments: str) -> tuple[str, bool]:
        """Run one call: ``(result for the model, True when it is an error)``.

        Only :class:`KeyboardInterrupt` (the stop button) escapes.
        """
        tool = self._tools.get(name)
        if tool is None:
            names = ", ".join(self._tools) or "none"
            return self.error(f"there is no tool named {name!r}; the tools are: {names}."), True
        try:
            parsed = json.loads(arguments)
        except ValueError as error:
            where = getattr(error, "pos", None)
            at = f" at character {where}" if isinstance(where, int) else ""
            problem = getattr(error, "msg", str(error))
            return (
                self.error(
                    f"the arguments of {name} are not valid JSON ({problem}{at}); "
                    "send one JSON object."
                ),
                True,
            )
        try:
            kwargs = check_arguments(tool.parameters, parsed)
        except ArgumentError as error:
            return self.error(f"{name}: {error}."), True
        try:
            text = result_text(tool.function(**kwargs))
        except InspectionError as error:
            return self.error(str(error)), True
        # A tool is the user's code (or ours over the user's objects): whatever it raises
        # goes back to the model as one line, never as a traceback in the cell.
        except Exception as error:
            detail = f": {error}" if str(error) else ""
            return self.error(f"{name} raised {type(error).__name__}{detail}"), True
        return self.bound(text), False

    def bound(self, text: str) -> str:
        """``text`` redacted, then cut in the middle to ``RESULT_CHARS`` with a note."""
        if len(text) > 50 * RESULT_CHARS:  # never redact megabytes we would cut anyway
            text = shorten(text, 20 * RESULT_CHARS)
        text = redact(text, self._secrets)
        cut, left_out = cut_middle(text, RESULT_CHARS)
        if not left_out:
            return text
        return (
            f"{cut}\n[The result was cut in the middle to {RESULT_CHARS:,} characters "
            f"(about {RESULT_TOKENS:,} tokens); ask for less, e.g. fewer rows or columns, "
            "to see the rest.]"
        )
