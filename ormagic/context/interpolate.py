"""``{name}`` in a prompt -> the value of a kernel variable, without ever breaking a prompt.

Rules (unlike jupyter-ai's ``str.format``, braces never raise):

- ``{name}``, ``{name.attr}``, ``{name[0]}``, ``{name['key']}`` and chains of these are
  replaced by ``convert(expression, value)`` (by default ``str()`` of the value);
  ``{In[3]}`` and ``{Out[3]}`` work as a result.
- A name that is not defined, or a lookup that fails, stays exactly as written.
- Nothing inside fenced code blocks or inline code spans is touched.
- ``{{`` and ``}}`` outside code give literal ``{`` and ``}``.
- Only attribute and item lookups with literal keys happen: no calls, no arbitrary code.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["interpolate"]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:.+?)(?<!`)\1(?!`)", re.DOTALL)
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\[\]{}]+\])*)\}")
_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[([^\[\]]+)\]")
_MISSING = object()


Convert = Callable[[str, Any], str]


def _str(expression: str, value: Any) -> str:
    return str(value)


def interpolate(text: str, namespace: Mapping[str, Any], convert: Convert = _str) -> str:
    """Replace ``{expr}`` references outside code with values from ``namespace``."""
    out: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        match = _FENCE.match(line)
        if fence is not None:
            out.append(line)
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
        elif match:
            fence = match.group(1)
            out.append(line)
        else:
            out.append(_interpolate_line(line, namespace, convert))
    return "".join(out)


def _interpolate_line(line: str, namespace: Mapping[str, Any], convert: Convert) -> str:
    pieces: list[str] = []
    pos = 0
    for span in _CODE_SPAN.finditer(line):
        pieces.append(_substitute(line[pos : span.start()], namespace, convert))
        pieces.append(span.group(0))
        pos = span.end()
    pieces.append(_substitute(line[pos:], namespace, convert))
    return "".join(pieces)


def _substitute(text: str, namespace: Mapping[str, Any], convert: Convert) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        value = _resolve(match.group(1), namespace)
        return token if value is _MISSING else convert(match.group(1), value)

    return _TOKEN.sub(replace, text)


def _resolve(expr: str, namespace: Mapping[str, Any]) -> Any:
    name = re.match(r"[A-Za-z_]\w*", expr)
    assert name is not None  # guaranteed by _TOKEN
    if name.group(0) not in namespace:
        return _MISSING
    value = namespace[name.group(0)]
    for step in _STEP.finditer(expr, name.end()):
        value = _step(value, step)
        if value is _MISSING:
            break
    return value


def _step(value: Any, step: re.Match[str]) -> Any:
    try:
        if step.group(1) is not None:
            return getattr(value, step.group(1))
        key = ast.literal_eval(step.group(2).strip())
        return value[key]
    except Exception:  # a failed lookup leaves the reference as written
        return _MISSING
