"""What the engine tells whoever shows a turn: the :class:`View` protocol and its summary.

The engine streams events into a view and ends each turn with one :class:`FinalSummary`;
the renderer's notebook and terminal views implement the protocol, and so do the small
views of the Python API. It lives in a module of its own so that the engine does not
import the renderer (and with it the Markdown stack), nor the renderer the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .events import Event, ToolResult

__all__ = ["FinalSummary", "NullView", "View"]


@dataclass(frozen=True)
class FinalSummary:
    """What the view shows under the answer when the turn ends, and the output metadata."""

    footer: str
    status: str | None = None  # e.g. "Interrupted: …" or an error line, shown under the answer
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
