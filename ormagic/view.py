"""What the engine tells whoever shows a turn: the :class:`View` protocol and its summary.

The engine streams events into a view and ends each turn with one :class:`FinalSummary`;
the renderer's notebook and terminal views implement the protocol, and so do the small
views of the Python API. It lives in a module of its own so that the engine does not
import the renderer (and with it the Markdown stack), nor the renderer the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .events import Event, ToolResult

__all__ = ["FinalSummary", "NullSideBySideView", "NullView", "SideBySideView", "View"]


@dataclass(frozen=True)
class FinalSummary:
    """What the view shows under the answer when the turn ends, and the output metadata."""

    footer: str
    status: str | None = None  # e.g. "Interrupted: …" or an error line, shown under the answer
    # goes on the output that holds the answer, whose text/plain is printable(answer): a
    # record may point there instead of repeating the text (engine/resume.py)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    reasoning_tokens: int | None = None
    tool_calls: tuple[ToolResult, ...] = ()  # every call of the exchange, answered, in order


class View(Protocol):
    """What the engine drives: ``start``, events, then ``finish`` or ``abandon`` once."""

    def start(self, model: str) -> None:
        """The request is about to be sent to ``model``."""

    def note(self, text: str) -> None:
        """A one-line note above the answer (e.g. a conversation resumed from the file)."""

    def handle(self, event: Event) -> None:
        """One event of the stream, in order."""

    def finish(self, summary: FinalSummary) -> None:
        """The turn ended after something was shown or recorded."""

    def abandon(self) -> None:
        """The turn ended before anything was shown (an error line follows)."""

    @property
    def started(self) -> bool:
        """True once anything was shown, so that a final summary is due."""


class NullView:
    """A view that shows nothing: for scripts, tests and workers."""

    def __init__(self) -> None:
        self._started = False

    def start(self, model: str) -> None:
        """Nothing to show."""

    def note(self, text: str) -> None:
        """Nothing to show."""

    def handle(self, event: Event) -> None:
        # every kind of the closed set counts the same: something happened
        if not isinstance(event, Event):  # pragma: no cover - the event set is closed
            raise TypeError(f"unknown event {event!r}")
        self._started = True

    def finish(self, summary: FinalSummary) -> None:
        """Nothing to show."""

    def abandon(self) -> None:
        """Nothing to show."""

    @property
    def started(self) -> bool:
        return self._started


# -- several models at once (engine/compare.py) ----------------------------------------


class SideBySideView(Protocol):
    """What the engine drives when several models answer one question: a column each.

    ``start`` once, then events tagged with their column (the index of the model, in the
    order asked), ``idle`` whenever nothing arrived for a moment, then ``finish`` (or
    ``abandon`` when the question failed before anything was asked). An error before a
    model's answer began (a 402, a 5xx) arrives as that column's ``StreamFailed``.
    """

    def start(self, models: Sequence[str]) -> None:
        """The requests are about to be sent, one to each of ``models``."""

    def handle(self, column: int, event: Event) -> None:
        """One event of the model in ``column``, in the order that model sent them."""

    def idle(self) -> None:
        """No event for a moment: draw what a paced redraw held back."""

    def finish(
        self, summaries: Sequence[FinalSummary], chosen: int | None, metadata: Mapping[str, Any]
    ) -> None:
        """Every stream ended: one summary per column; ``chosen`` is the column that
        continues the conversation (None when nothing was recorded); ``metadata`` is the
        output metadata of the whole cell."""

    def abandon(self) -> None:
        """The question failed before any request was sent (an error line follows)."""


class NullSideBySideView:
    """A side-by-side view that shows nothing."""

    def start(self, models: Sequence[str]) -> None:
        """Nothing to show."""

    def handle(self, column: int, event: Event) -> None:
        """Nothing to show."""

    def idle(self) -> None:
        """Nothing to show."""

    def finish(
        self, summaries: Sequence[FinalSummary], chosen: int | None, metadata: Mapping[str, Any]
    ) -> None:
        """Nothing to show."""

    def abandon(self) -> None:
        """Nothing to show."""
