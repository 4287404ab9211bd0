"""What the model may look at by itself: the read-only built-in tools, as pure functions.

Each function takes the user's namespace, a cell or a snapshot (plain data from
:mod:`.snapshot`) and returns text for the model. They only look: a name is looked up in
the namespace as a key, never evaluated; there is no attribute walking, no query string,
no import. pandas and numpy are recognised by type name, never imported here.

A problem the model can fix (an unknown name, a column that does not exist, a number out
of range) raises :class:`InspectionError` with one line addressed to the model. Bounding
and redaction of the result happen in the engine, as for every tool result.

An object with a ``_repr_llm_()`` method describes itself (chatlab's convention).
"""

from __future__ import annotations

import difflib
import inspect
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from ..formatting import counted
from .snapshot import CellRecord, NotebookSnapshot
from .summaries import _SAMPLE_REPR, _is_type, shorten, summarise

__all__ = [
    "DESCRIBE_CHARS",
    "InspectionError",
    "describe_variable",
    "format_bytes",
    "last_error",
    "list_variables",
    "preview_rows",
    "read_cell",
    "search_notebook",
    "user_variables",
    "value_counts",
]

DESCRIBE_CHARS = 8000  # describe_variable's budget: four times a context summary's
MAX_ROWS = 100  # preview_rows and value_counts give at most this many
_MAX_LISTED = 200  # variables listed by list_variables
_MAX_COLUMNS = 100  # columns listed by describe_variable
_DESCRIBE_COLUMNS = 30  # numeric columns in describe()
_HEAD_ROWS = 5
_HEAD_COLUMNS = 20
_MAX_MATCHES = 30
_MATCH_CHARS = 160
_ITEM_CHARS = 300
_SIZE_SAMPLE = 1000  # container items whose size is measured (the rest is extrapolated)
_DEEP_MEMORY_ROWS = 100_000  # larger DataFrames are measured without object contents
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
_TIMES = "\u00d7"  # the multiplication sign of "4 rows × 3 columns"  # noqa: RUF003


class InspectionError(Exception):
    """The model asked for something that is not there; the message says what is."""


# -- variables ---------------------------------------------------------------------------


def _is_code(value: Any) -> bool:
    return (
        isinstance(value, ModuleType)
        or inspect.isroutine(value)
        or inspect.isclass(value)
        or inspect.ismethoddescriptor(value)
    )


def user_variables(namespace: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The user's data: no modules, functions, classes, IPython's own names or ``_`` names."""
    return [
        (name, value)
        for name, value in list(namespace.items())
        if isinstance(name, str)
        and not name.startswith("_")
        and name not in _IPYTHON_NAMES
        and not _is_code(value)
    ]


def _lookup(namespace: Mapping[str, Any], name: str) -> Any:
    if not isinstance(name, str) or not name.isidentifier():
        raise InspectionError(
            f"{name!r} is not a variable name: give the bare name of one variable, "
            "without attributes, indexing or expressions."
        )
    if name in namespace:
        return namespace[name]
    close = difflib.get_close_matches(name, [n for n, _ in user_variables(namespace)], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise InspectionError(
        f"There is no variable named {name!r}.{hint} list_variables() lists them."
    )


def _a(kind: str) -> str:
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"


def _short_type(value: Any) -> str:
    cls = type(value)
    if _is_type(value, "pandas", "DataFrame"):
        return "DataFrame"
    if _is_type(value, "pandas", "Series"):
        return "Series"
    if _is_type(value, "numpy", "ndarray"):
        return "ndarray"
    return cls.__qualname__


def _shape(value: Any) -> str:
    try:
        if _is_type(value, "pandas", "DataFrame"):
            rows, cols = value.shape
            return f"{rows:,} rows {_TIMES} {cols:,} columns"
        if _is_type(value, "numpy", "ndarray"):
            return f"shape {tuple(value.shape)}, dtype {value.dtype}"
        if _is_type(value, "pandas", "Series"):
            return f"length {len(value):,}, dtype {value.dtype}"
        if isinstance(value, int | float | complex | bool) or value is None:
            return f"= {value!r}"
        if isinstance(value, str):
            return f"length {len(value):,}"
        if hasattr(type(value), "__len__"):
            return f"length {len(value):,}"
    # a user object's __len__ or shape may raise; the listing goes on without it
    except Exception:
        return ""
    return ""


def _memory(value: Any) -> int | None:
    """Approximate bytes: pandas' and numpy's own figures, else a sampled ``getsizeof``."""
    try:
        if _is_type(value, "pandas", "DataFrame") or _is_type(value, "pandas", "Series"):
            deep = len(value) <= _DEEP_MEMORY_ROWS
            usage = value.memory_usage(deep=deep)
            return int(usage.sum() if hasattr(usage, "sum") else usage)
        if _is_type(value, "numpy", "ndarray"):
            return int(value.nbytes)
        size = sys.getsizeof(value)
        if isinstance(value, list | tuple | set | frozenset | dict):
            items = list(value.items() if isinstance(value, dict) else value)
            sample = items[:_SIZE_SAMPLE]
            if sample:
                measured = sum(_item_size(item) for item in sample)
                size += measured * len(items) // len(sample)
        return size
    except Exception:  # a user object's __sizeof__ or memory_usage may raise
        return None


def _item_size(item: Any) -> int:
    if isinstance(item, tuple):
        return sum(sys.getsizeof(part) for part in item)
    return sys.getsizeof(item)


def format_bytes(count: int | None) -> str:
    """``512`` -> ``"512 B"``, ``2048`` -> ``"2.0 KB"``; ``None`` -> ``"size unknown"``."""
    if count is None:
        return "size unknown"
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover - the loop returns


def list_variables(namespace: Mapping[str, Any]) -> str:
    """One line per user variable: name, type, shape or length, approximate memory size."""
    variables = user_variables(namespace)
    if not variables:
        return "The notebook has no variables yet (modules, functions and classes not counted)."
    lines = [f"{counted(len(variables), 'variable')}:"]
    for name, value in variables[:_MAX_LISTED]:
        shape = _shape(value)
        kind = _short_type(value)
        if shape.startswith("= "):  # a number: its value
            kind, shape = f"{kind} {shape}", ""
        parts = [kind, *([shape] if shape else []), f"~{format_bytes(_memory(value))}"]
        lines.append(f"- {name}: {', '.join(parts)}")
    if len(variables) > _MAX_LISTED:
        lines.append(f"… and {len(variables) - _MAX_LISTED:,} more")
    return "\n".join(lines)


def _own_description(value: Any) -> str | None:
    """The object's ``_repr_llm_()``, if it has one."""
    method = getattr(type(value), "_repr_llm_", None)
    if not callable(method):
        return None
    text = method(value)
    return text if isinstance(text, str) else str(text)


def _describe_dataframe(df: Any) -> str:
    rows, cols = df.shape
    lines = [
        f"pandas DataFrame, {rows:,} rows {_TIMES} {cols:,} columns",
        "columns (dtype, nulls):",
    ]
    nulls = df.isna().sum().tolist()
    columns = list(zip(df.dtypes.items(), nulls, strict=False))
    for (column, dtype), count in columns[:_MAX_COLUMNS]:
        lines.append(f"  {column}: {dtype}, {int(count):,} null")
    if cols > _MAX_COLUMNS:
        lines.append(f"  … and {cols - _MAX_COLUMNS:,} more columns")
    numeric = df.select_dtypes("number")
    if numeric.shape[1] and rows:
        shown = numeric.iloc[:, :_DESCRIBE_COLUMNS]
        lines += ["describe() of the numeric columns:", shown.describe().to_string()]
    lines += [f"head({_HEAD_ROWS}):", df.head(_HEAD_ROWS).to_string(max_cols=_HEAD_COLUMNS)]
    return "\n".join(lines)


def _describe_series(series: Any) -> str:
    text = summarise(series, DESCRIBE_CHARS)
    if len(series) and series.dtype.kind in "biuf":
        text += f"\ndescribe():\n{series.describe().to_string()}"
    return text


def describe_variable(namespace: Mapping[str, Any], name: str) -> str:
    """What the context would say about ``name``, at more length.

    A DataFrame: shape, dtypes and nulls per column, ``describe()`` of its numeric
    columns, its head. A Series: its summary and ``describe()`` when numeric. Anything
    else: the context summary with a larger budget, or the object's ``_repr_llm_()``.
    """
    value = _lookup(namespace, name)
    own = _own_description(value)
    if own is not None:
        return own
    if _is_type(value, "pandas", "DataFrame"):
        return _describe_dataframe(value)
    if _is_type(value, "pandas", "Series"):
        return _describe_series(value)
    return summarise(value, DESCRIBE_CHARS)


# -- rows --------------------------------------------------------------------------------


def _check_window(length: int, start: int, rows: int, what: str) -> tuple[int, int, str]:
    """The slice to show and a note when ``rows`` was lowered to the maximum."""
    if start < 0:
        raise InspectionError("start must be 0 or more (rows are counted from 0).")
    if rows < 1:
        raise InspectionError("rows must be at least 1.")
    if length and start >= length:
        raise InspectionError(f"{what} has {length:,} rows; start {start:,} is past the end.")
    note = ""
    if rows > MAX_ROWS:
        rows, note = MAX_ROWS, f" (at most {MAX_ROWS} rows at a time)"
    return start, min(start + rows, length), note


def _pick_columns(df: Any, name: str, columns: Sequence[str] | None) -> Any:
    if not columns:
        return df
    known = [str(c) for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        listed = ", ".join(known[:30]) + (", …" if len(known) > 30 else "")
        raise InspectionError(f"{name} has no column {missing[0]!r}; its columns: {listed}")
    return df[list(columns)]


def _item_lines(items: Sequence[Any], start: int) -> str:
    return "\n".join(
        f"{start + i}: {shorten(_SAMPLE_REPR.repr(item), _ITEM_CHARS)}"
        for i, item in enumerate(items)
    )


def _window(name: str, what: str, first: int, stop: int, length: int, note: str) -> str:
    if stop <= first:
        return f"{name} has no {what}:"
    return f"{name}, {what} {first:,} to {stop - 1:,} of {length:,}{note}:"


def preview_rows(
    namespace: Mapping[str, Any],
    name: str,
    start: int = 0,
    rows: int = 10,
    columns: Sequence[str] | None = None,
) -> str:
    """Rows ``start`` to ``start + rows`` of a DataFrame, Series, list, tuple, dict or array."""
    value = _lookup(namespace, name)
    is_frame = _is_type(value, "pandas", "DataFrame")
    if columns and not is_frame:
        raise InspectionError(
            f"columns only apply to a DataFrame; {name} is {_a(_short_type(value))}."
        )
    if is_frame or _is_type(value, "pandas", "Series"):
        first, stop, note = _check_window(len(value), start, rows, name)
        shown = _pick_columns(value, name, columns).iloc[first:stop]
        table = shown.to_string(max_cols=50, max_colwidth=100)
        return f"{_window(name, 'rows', first, stop, len(value), note)}\n{table}"
    if _is_type(value, "numpy", "ndarray") and "numpy" in sys.modules:
        if value.ndim == 0:
            raise InspectionError(f"{name} is a 0-dimensional array: {value!r}")
        first, stop, note = _check_window(len(value), start, rows, name)
        numpy = sys.modules["numpy"]
        text = numpy.array2string(value[first:stop], threshold=5000, max_line_width=200)
        return f"{_window(name, 'rows', first, stop, len(value), note)}\n{text}"
    if isinstance(value, list | tuple | dict):
        items = list(value.items()) if isinstance(value, dict) else value
        first, stop, note = _check_window(len(items), start, rows, name)
        what = "items" if isinstance(value, dict) else "rows"
        body = _item_lines(items[first:stop], first)
        return f"{_window(name, what, first, stop, len(items), note)}\n{body}"
    raise InspectionError(
        f"{name} is {_a(_short_type(value))}, which has no rows; describe_variable shows it."
    )


def value_counts(
    namespace: Mapping[str, Any], name: str, column: str | None = None, top: int = 20
) -> str:
    """How often each value occurs in a DataFrame column, a Series, a list or a 1-D array."""
    value = _lookup(namespace, name)
    if top < 1:
        raise InspectionError("top must be at least 1.")
    top = min(top, MAX_ROWS)
    if _is_type(value, "pandas", "DataFrame"):
        if not column:
            raise InspectionError(f"{name} is a DataFrame: say which column.")
        picked = _pick_columns(value, name, [column])
        if picked.shape[1] != 1:
            raise InspectionError(f"{name} has several columns named {column!r}.")
        series, label = picked.iloc[:, 0], f"{name}[{column!r}]"
    elif _is_type(value, "pandas", "Series"):
        series, label = value, name
    elif isinstance(value, list | tuple) or (
        _is_type(value, "numpy", "ndarray") and getattr(value, "ndim", 0) == 1
    ):
        return _counter_text(name, list(value), top)
    else:
        raise InspectionError(
            f"{name} is {_a(_short_type(value))}; value_counts needs a DataFrame column, a "
            "Series, a list or a 1-D array."
        )
    counts = series.value_counts(dropna=False)
    pairs = [(_value_text(v), int(c)) for v, c in counts.head(top).items()]
    nulls = int(series.isna().sum())
    header = (
        f"value_counts of {label}: {len(series):,} values, {len(counts):,} distinct, {nulls:,} null"
    )
    return _counts_text(header, pairs, len(counts), int(counts.iloc[top:].sum()))


def _value_text(value: Any) -> str:
    """A counted value as text; the null markers of pandas and numpy read ``null``."""
    try:
        missing = value is None or bool(value != value)  # NaN is not equal to itself
    except Exception:  # an object whose comparison is not a truth value
        missing = False
    if missing or type(value).__name__ in ("NAType", "NaTType"):
        return "null"
    return str(value)


def _counter_text(name: str, items: list[Any], top: int) -> str:
    try:
        counter = Counter(items)
    except TypeError as error:
        raise InspectionError(f"{name} holds values that cannot be counted ({error}).") from None
    pairs = [(shorten(_SAMPLE_REPR.repr(v), 80), c) for v, c in counter.most_common(top)]
    header = f"value_counts of {name}: {len(items):,} values, {len(counter):,} distinct"
    rest = sum(c for _, c in counter.most_common()[top:])
    return _counts_text(header, pairs, len(counter), rest)


def _counts_text(header: str, pairs: list[tuple[str, int]], distinct: int, rest: int) -> str:
    width = max((len(v[:80]) for v, _ in pairs), default=0)
    lines = [header, *(f"{v[:80].ljust(width)}  {c:,}" for v, c in pairs)]
    if distinct > len(pairs):
        lines.append(f"… {distinct - len(pairs):,} more distinct values ({rest:,} rows)")
    return "\n".join(lines)


# -- cells -------------------------------------------------------------------------------


def read_cell(cell: CellRecord | None, number: int, last: int) -> str:
    """The code, outputs and error of cell ``In[number]``."""
    if cell is None:
        cells = f"cells run so far are In [1] to In [{last}]" if last >= 1 else "no cell has run"
        raise InspectionError(f"There is no cell In [{number}]: {cells}.")
    parts = [f"In [{cell.execution_count}]:", cell.source.strip("\n") or "(empty)"]
    if cell.outputs:
        parts += [f"Out [{cell.execution_count}]:", "\n".join(o.rstrip("\n") for o in cell.outputs)]
    if cell.error:
        parts += [f"Error in [{cell.execution_count}]:", cell.error.rstrip("\n")]
    if not cell.outputs and not cell.error:
        parts.append("(no output)")
    return "\n".join(parts)


def _matching_line(text: str, needle: str) -> str | None:
    lowered = needle.casefold()
    for line in text.splitlines():
        at = line.casefold().find(lowered)
        if at >= 0:
            line = line.strip()
            at = line.casefold().find(lowered)
            if len(line) <= _MATCH_CHARS:
                return line
            begin = max(0, min(at - _MATCH_CHARS // 3, len(line) - _MATCH_CHARS))
            return ("…" if begin else "") + line[begin : begin + _MATCH_CHARS] + "…"
    return None


def _cell_matches(cell: CellRecord, needle: str) -> list[str]:
    found = []
    for where, text in (
        ("code", cell.source),
        ("output", "\n".join(cell.outputs)),
        ("error", cell.error or ""),
    ):
        line = _matching_line(text, needle)
        if line is not None:
            found.append(f"In [{cell.execution_count}] {where}: {line}")
    return found


def search_notebook(snapshot: NotebookSnapshot, text: str) -> str:
    """Cells whose code, output or error contain ``text`` (any case), and Markdown cells."""
    needle = text.strip()
    if not needle:
        raise InspectionError("Give some text to search for.")
    matches = [m for cell in snapshot.cells for m in _cell_matches(cell, needle)]
    for count, markdown in snapshot.markdown_cells:
        line = _matching_line(markdown, needle)
        if line is not None:
            where = f"above In [{count}]" if count >= 0 else "not next to a cell run this session"
            matches.append(f"Markdown ({where}): {line}")
    scope = "" if snapshot.notebook_path else " (the notebook file is unknown: no Markdown)"
    if not matches:
        return f"No cell contains {needle!r}{scope}."
    header = f"{counted(len(matches), 'match', 'matches')} for {needle!r}{scope}:"
    shown = matches[:_MAX_MATCHES]
    more = len(matches) - len(shown)
    return "\n".join([header, *shown, *([f"… and {more:,} more"] if more else [])])


def last_error(snapshot: NotebookSnapshot) -> str:
    """The last traceback of the session."""
    return snapshot.last_error or "No error has been raised in this session."
