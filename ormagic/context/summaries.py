"""Short text summaries of Python objects, and the one way ormagic shortens long text.

:func:`summarise` describes a variable the prompt refers to in a few lines the model can
use: shape and dtypes rather than a 10-million-row ``repr``. pandas and numpy are
optional: an object is recognised as a DataFrame, Series or ndarray by its type's module
and name, so neither library is ever imported here (if the object exists, its library is
already loaded).

:func:`shorten` keeps the head and tail of a long text around a marker line
``… [12,345 characters left out] …``; the snapshot and the context block use it too, so
the model always sees the same marker.
"""

from __future__ import annotations

import inspect
import re
import reprlib
import sys
from collections.abc import Callable
from typing import Any

from ..formatting import counted

__all__ = [
    "OUTPUT_HEAD_CHARS",
    "OUTPUT_TAIL_CHARS",
    "cut_middle",
    "elision_marker",
    "shorten",
    "summarise",
]

# Of any one output (a print, a result, a traceback) only the first and the last this many
# characters are kept, as it is read or written.
OUTPUT_HEAD_CHARS = 4000
OUTPUT_TAIL_CHARS = 4000

_ITEM_SAMPLE = 5  # items or keys shown for a container
_HEAD_ROWS = 5  # rows shown for a DataFrame or Series
_HEAD_COLUMNS = 20  # columns shown in a DataFrame's head (its dtypes line lists all)


# a marker and the line breaks that set it apart, which are not content either
_MARKER = re.compile(r"\n?… \[([\d,]+) characters left out\] …\n?")


def elision_marker(count: int) -> str:
    """The marker line put where ``count`` characters were left out."""
    return f"… [{count:,} characters left out] …"


def cut_middle(text: str, max_chars: int) -> tuple[str, int]:
    """``text`` shortened by :func:`shorten`, and how many of its characters were left out.

    Text that an earlier cut already shortened carries markers; a marker cut away again
    adds its own count, so the new marker tells how much of the original is missing.
    """
    if len(text) <= max_chars:
        return text, 0
    # The marker is longest when the count has the most digits; sizing it for the whole
    # text (and what earlier markers stand for) keeps the result within max_chars.
    keep = max_chars - len(elision_marker(len(text) + _hidden(text))) - 2
    if keep <= 0:
        return elision_marker(len(text) + _hidden(text)), len(text) + _hidden(text)
    head, tail = keep - keep // 2, keep // 2
    middle = text[head : len(text) - tail]
    left_out = len(middle) + _hidden(middle)
    return f"{text[:head]}\n{elision_marker(left_out)}\n{text[len(text) - tail :]}", left_out


def _hidden(text: str) -> int:
    """Characters that the markers inside ``text`` stand for, less the markers' own length."""
    return sum(int(m.group(1).replace(",", "")) - len(m.group(0)) for m in _MARKER.finditer(text))


def shorten(text: str, max_chars: int) -> str:
    """``text`` if it fits in ``max_chars``, else its head and tail around a marker line.

    The result is at most ``max_chars`` long, unless ``max_chars`` is smaller than the
    marker line itself: then the marker alone is returned. The head gets the extra
    character when the kept length is odd.
    """
    return cut_middle(text, max_chars)[0]


class _SampleRepr(reprlib.Repr):
    """``reprlib`` with insertion-ordered dicts and a note instead of a failing ``repr``."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = _ITEM_SAMPLE
        self.maxdict = _ITEM_SAMPLE
        self.maxstring = 80
        self.maxother = 80

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        # reprlib sorts dict keys; the user's insertion order is what they recognise.
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in list(x.items())[: self.maxdict]
        ]
        more = ", ..." if len(x) > self.maxdict else ""
        return "{" + ", ".join(items) + more + "}"

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            text = repr(x)
        except Exception:
            return _unrepresentable(x)
        return shorten(text, self.maxother)


_SAMPLE_REPR = _SampleRepr()


def _type_name(obj: Any) -> str:
    cls = type(obj)
    module = getattr(cls, "__module__", "")
    if module in ("builtins", "__main__", ""):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _unrepresentable(obj: Any) -> str:
    return f"<unrepresentable {_type_name(obj)}>"


def _is_type(obj: Any, module_prefix: str, name: str) -> bool:
    """True when ``obj``'s class (or a base) is ``name`` from ``module_prefix``."""
    return any(
        cls.__name__ == name and cls.__module__.split(".")[0] == module_prefix
        for cls in type(obj).__mro__
    )


def _summarise_dataframe(df: Any) -> str:
    rows, cols = df.shape
    dtypes = ", ".join(f"{col} {dtype}" for col, dtype in df.dtypes.items())
    nulls = df.isna().sum()
    null_text = ", ".join(f"{col} {int(n):,}" for col, n in nulls.items() if n) or "none"
    return (
        f"pandas DataFrame, {counted(rows, 'row')} \u00d7 {counted(cols, 'column')}\n"
        f"dtypes: {dtypes}\n"
        f"nulls: {null_text}\n"
        f"head:\n{df.head(_HEAD_ROWS).to_string(max_cols=_HEAD_COLUMNS)}"
    )


def _summarise_series(series: Any) -> str:
    name = "" if series.name is None else f" {series.name!r}"
    return (
        f"pandas Series{name}, length {len(series):,}, dtype {series.dtype}, "
        f"nulls {int(series.isna().sum()):,}\n"
        f"head:\n{series.head(_HEAD_ROWS).to_string()}"
    )


# Beyond this many elements min/max would scan too much memory for a context line.
_MINMAX_LIMIT = 10_000_000


def _summarise_ndarray(array: Any) -> str:
    numpy = sys.modules["numpy"]
    text = f"numpy ndarray, shape {tuple(array.shape)}, dtype {array.dtype}"
    if array.dtype.kind in "biuf" and 0 < array.size <= _MINMAX_LIMIT:
        text += f", min {array.min()}, max {array.max()}"
    values = numpy.array2string(array, threshold=20, edgeitems=3)
    return f"{text}\n{values}"


def _summarise_str(text: str, max_chars: int) -> str:
    header = f"str, {counted(len(text), 'character')}: "
    room = max(max_chars - len(header), 0)
    # Quote only a prefix, so a huge string is never copied whole.
    quoted = repr(text[:room])
    if len(text) <= room and len(quoted) <= room:
        return header + quoted
    return f"{header}{quoted[: max(room - 2, 0)]} …"


def _summarise_container(obj: Any) -> str:
    if isinstance(obj, dict):
        return f"{type(obj).__name__}, {counted(len(obj), 'key')}: {_SAMPLE_REPR.repr(obj)}"
    return f"{type(obj).__name__}, {counted(len(obj), 'item')}: {_SAMPLE_REPR.repr(obj)}"


def _summarise_callable(obj: Callable[..., Any]) -> str:
    try:
        signature = str(inspect.signature(obj))
    except (TypeError, ValueError):
        signature = "(...)"
    kind = "class" if isinstance(obj, type) else "function"
    doc = (inspect.getdoc(obj) or "").strip().splitlines()
    first_line = f"\n{doc[0]}" if doc else ""
    return f"{kind} {getattr(obj, '__qualname__', '?')}{signature}{first_line}"


def _summarise_other(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:
        return _unrepresentable(obj)
    if not isinstance(text, str):
        return _unrepresentable(obj)
    return f"{_type_name(obj)}: {text}"


def _summary(obj: Any, max_chars: int) -> str:
    if _is_type(obj, "pandas", "DataFrame"):
        return _summarise_dataframe(obj)
    if _is_type(obj, "pandas", "Series"):
        return _summarise_series(obj)
    if _is_type(obj, "numpy", "ndarray") and "numpy" in sys.modules:
        return _summarise_ndarray(obj)
    if isinstance(obj, str):
        return _summarise_str(obj, max_chars)
    if isinstance(obj, (list, tuple, set, frozenset, dict)):
        return _summarise_container(obj)
    if inspect.isfunction(obj) or inspect.isclass(obj):
        return _summarise_callable(obj)
    return _summarise_other(obj)


def summarise(obj: Any, max_chars: int = 2000) -> str:
    """A short description of ``obj`` for the model, at most ``max_chars`` long.

    DataFrame: shape, dtypes, null counts per column and ``head()``. Series: length,
    dtype, nulls and head. ndarray: shape, dtype, min/max when numeric, a few values.
    list/tuple/set/dict: type, length and the first few items. str: length and the text,
    cut. Functions and classes: signature and first docstring line. Anything else: type
    name and ``repr``. Never raises: a ``repr`` that fails gives ``<unrepresentable T>``.
    """
    try:
        text = _summary(obj, max_chars)
    # User objects run arbitrary code in __repr__, shape, head() ...; whatever they raise,
    # a context summary must not stop the question from being asked.
    except Exception:
        text = _unrepresentable(obj)
    return shorten(text, max_chars)
