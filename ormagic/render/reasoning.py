"""The reasoning panel: an ipywidgets Accordion that streams while the model thinks.

Open while thinking, collapsed once the answer begins, titled with how long the model
thought and how many reasoning tokens it used. Reasoning is untrusted text: it is escaped
into ``<pre>`` blocks, each an HTML widget appended to a VBox (a redraw re-sends only the
open block, as for the answer).

Every ipywidgets widget opens its own ``Layout`` model (about 1 KB of state) and an HTML
widget an ``HTMLStyle`` too, each a comm message of its own: the panel's widgets share
one layout and one style instead, so a reasoning block costs one model, not three.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ..formatting import format_count, format_seconds
from .live import Bundle, Clock, LiveBlocks, Publisher, pre_html, reasoning_split

__all__ = ["ReasoningPanel", "reasoning_title"]


def reasoning_title(seconds: float | None, tokens: int | None) -> str:
    """``"Thought for 4.2 s · 312 tokens"`` (parts omitted when unknown)."""
    if seconds is None:
        return "Thinking…"
    title = f"Thought for {format_seconds(seconds)}"
    if tokens:
        title += f" · {format_count(tokens)} tokens"
    return title


class BoxPublisher:
    """A :class:`Publisher` whose outputs are HTML widgets appended to a box (pieces of
    the reasoning, or of a column's answer). A widget it is asked to display (a column's
    reasoning panel) goes just above the box, in ``parent``."""

    def __init__(
        self,
        box: Any,
        html_factory: Callable[[str], Any],
        parent: Any = None,
        wrap: Callable[[str], str] = str,
    ) -> None:
        self._box = box
        self._make = html_factory
        self._parent = parent
        self._wrap = wrap  # what each piece's HTML is put in
        self._widgets: dict[str, Any] = {}

    def display(
        self,
        bundle: Bundle,
        *,
        display_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        widget = self._make(self._wrap(bundle["text/html"]))
        self._widgets[display_id or uuid.uuid4().hex] = widget
        self._box.children = (*self._box.children, widget)

    def display_widget(self, widget: Any) -> None:
        if self._parent is None:  # pragma: no cover - the reasoning box shows no widgets
            raise NotImplementedError
        children = list(self._parent.children)
        children.insert(children.index(self._box), widget)
        self._parent.children = tuple(children)

    def update(self, bundle: Bundle, *, display_id: str) -> None:
        self._widgets[display_id].value = self._wrap(bundle["text/html"])

    def clear(self) -> None:  # pragma: no cover - LiveBlocks never clears
        raise NotImplementedError

    def close(self) -> None:
        for widget in self._widgets.values():
            close_widget(widget)


class ReasoningPanel:
    """The collapsible reasoning widget: open while thinking, collapsed once answering."""

    def __init__(
        self, widgets: Any, publisher: Publisher, clock: Clock, started: float | None = None
    ) -> None:
        self._clock = clock
        self._widgets = widgets
        self._layout = widgets.Layout()
        self._style: Any = None  # the first HTML widget's, shared by the others
        self._box = widgets.VBox(children=(), layout=self._layout)
        self._accordion = widgets.Accordion(
            children=[self._box], titles=("Thinking…",), selected_index=0, layout=self._layout
        )
        self._inner = BoxPublisher(self._box, self._html)
        self.blocks = LiveBlocks(self._inner, pre_html, reasoning_split)
        # the first reasoning delta's time, so the live title and the final one agree
        self.started = clock() if started is None else started
        self.ended: float | None = None
        self._tokens: int | None = None
        publisher.display_widget(self._accordion)

    def _html(self, value: str) -> Any:
        if self._style is None:
            widget = self._widgets.HTML(value=value, layout=self._layout)
            self._style = widget.style
            return widget
        return self._widgets.HTML(value=value, layout=self._layout, style=self._style)

    def collapse(self, tokens: int | None = None, ended: float | None = None) -> None:
        """Collapse, titled with the thinking time (and reasoning tokens once known)."""
        if self.ended is None:
            self.ended = self._clock() if ended is None else ended
        self._tokens = tokens if tokens is not None else self._tokens
        title = (reasoning_title(self.ended - self.started, self._tokens),)
        if self._accordion.titles == title and self._accordion.selected_index is None:
            return  # nothing changed: send nothing
        with self._accordion.hold_sync():
            self._accordion.titles = title
            self._accordion.selected_index = None

    @property
    def title(self) -> str:
        return str(self._accordion.titles[0])

    @property
    def accordion(self) -> Any:
        return self._accordion

    def close(self) -> None:
        self._inner.close()
        close_widget(self._box)
        close_widget(self._accordion)
        if self._style is not None:
            self._style.close()
        self._layout.close()


def close_widget(widget: Any) -> None:
    """Close a widget and the layout/style models it created (else they stay open)."""
    for part in ("layout", "style"):
        sub = getattr(widget, part, None)
        if sub is not None and hasattr(sub, "close"):
            sub.close()
    widget.close()
