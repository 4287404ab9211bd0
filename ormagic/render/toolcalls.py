"""Tool calls as the user sees them: one compact line per call that expands to its details.

Live, the calls of a round are a VBox of one-title ``Accordion`` widgets (collapsed, like
the reasoning panel), each titled ``⚙ describe_variable(name="sales") → 14 lines`` and
holding the arguments and the result; while the model is still writing a call, a quiet
line ``⚙ describe_variable(…)`` stands in its place. The final output is a ``<details>``
block of the same lines, which reads well in saved notebooks, nbconvert and on GitHub.

Arguments and results are untrusted text (the model wrote the one, and the other may
quote anything in the notebook): they are escaped into ``<pre>`` blocks; Accordion titles
are plain text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..events import ToolResult
from ..formatting import counted, tool_line
from .escape import escape_text
from .live import Publisher, pre_html
from .reasoning import close_widget

__all__ = ["ToolPanel", "tool_details_html", "tools_bundle"]

_QUIET = "color:#888;font-size:0.9em"


def _pretty_arguments(arguments: str) -> str:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    return json.dumps(parsed, indent=2, ensure_ascii=False)


def _line(call: ToolResult) -> str:
    return tool_line(call.name, call.arguments, call.result, call.error)


def tool_details_html(call: ToolResult) -> str:
    """The arguments and the result of one call, escaped."""
    return (
        f'<div style="{_QUIET}">arguments</div>{pre_html(_pretty_arguments(call.arguments))}'
        f'<div style="{_QUIET}">result{" (an error, sent back to the model)" if call.error else ""}'
        f"</div>{pre_html(call.result)}"
    )


def tools_bundle(calls: Sequence[ToolResult]) -> dict[str, str]:
    """The final output: every call as a line that opens to its arguments and result."""
    count = len(calls)
    names = ", ".join(dict.fromkeys(call.name for call in calls))
    title = f"⚙ {counted(count, 'tool call')}: {names}"
    items = "".join(
        f"<details><summary>{escape_text(_line(call))}</summary>{tool_details_html(call)}</details>"
        for call in calls
    )
    html = (
        f"<details><summary>{escape_text(title)}</summary>"
        f'<div style="margin-left:1em">{items}</div></details>'
    )
    return {"text/html": html, "text/plain": "\n".join(_line(call) for call in calls)}


class ToolPanel:
    """The live calls of one round, shown as soon as the model begins writing the first."""

    def __init__(self, widgets: Any, publisher: Publisher) -> None:
        self._widgets = widgets
        self._box = widgets.VBox(children=())
        self._pending: list[Any] = []  # quiet lines standing in for calls being written
        self._parts: list[Any] = []  # every widget made, to close at the end
        publisher.display_widget(self._box)

    @property
    def box(self) -> Any:
        return self._box

    def begin(self, name: str) -> None:
        """The model began writing a call to ``name``."""
        text = f"⚙ {' '.join(name.split())}(…)"
        line = self._widgets.HTML(value=f'<div style="{_QUIET}">{escape_text(text)}</div>')
        self._pending.append(line)
        self._parts.append(line)
        self._box.children = (*self._box.children, line)

    def result(self, call: ToolResult) -> None:
        """The call ran: its line, collapsed, replaces the stand-in (or is added)."""
        details = self._widgets.HTML(value=tool_details_html(call))
        accordion = self._widgets.Accordion(
            children=[details], titles=(_line(call),), selected_index=None
        )
        self._parts += [details, accordion]
        children = list(self._box.children)
        if self._pending:
            stand_in = self._pending.pop(0)
            children[children.index(stand_in)] = accordion
            self._box.children = tuple(children)
            close_widget(stand_in)
        else:
            self._box.children = (*children, accordion)

    def close(self) -> None:
        for part in self._parts:
            close_widget(part)
        close_widget(self._box)
