"""Record what each cell prints, where IPython keeps no record of it (IPython < 9.1).

IPython >= 9.1 keeps every cell's stdout and stderr in ``history_manager.outputs`` and its
error in ``history_manager.exceptions``; older IPython, which is what pip installs on
Python 3.10, keeps neither (docs/jupyter-notes.md, "Notebook context"). There
:func:`install` registers a :class:`Recorder` on the shell's ``pre_run_cell`` and
``post_run_cell`` events (IPython ``core/events.py``):

- ``pre_run_cell`` replaces ``sys.stdout`` and ``sys.stderr`` with a tee that writes
  through to the stream it wraps and keeps a bounded copy: the first and the last 4,000
  characters and a count of all of them, bounded as they are written, so a 3 MB print is
  never held whole ("Pitfalls seen when gathering context"). Every other attribute is the
  wrapped stream's: ipykernel calls ``sys.stdout.set_parent``, ``flush``, ``isatty`` ...
- ``post_run_cell`` puts the exact original objects back, after an error too. A stream
  the cell replaced itself is left as the cell set it. The text is stored under the
  cell's execution count (the newest 1,000 cells), with the cell's error
  (``result.error_in_exec``) as the traceback lines IPython shows.

What the shell itself writes there is left out, as IPython >= 9.1 leaves it out: a
terminal (or plain) IPython < 9.1 prints a result's ``Out[3]: 7``, ``display()`` text and
tracebacks through ``sys.stdout``. The magic names the shell's functions that do so
(``shell_writers``); a write whose caller is one of them is passed through, not recorded.
ipykernel sends those as messages, not through ``sys.stdout``.

A tee that outlives its cell (a ``logging.StreamHandler`` created during a cell keeps the
``sys.stderr`` of that moment) still writes through, and records into whatever cell runs
when it is written to. A write that passes through several tees is recorded once.

The shell is touched here only in :func:`install` and :func:`uninstall`: its events and
whether its history manager has ``outputs``. IPython is never imported.
"""

from __future__ import annotations

import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from types import CodeType
from typing import Any, Literal

from .summaries import OUTPUT_HEAD_CHARS, OUTPUT_TAIL_CHARS, shorten

__all__ = [
    "CapturedError",
    "CapturedText",
    "CellCapture",
    "ErrorFormatter",
    "Recorder",
    "install",
    "uninstall",
]

Channel = Literal["stdout", "stderr"]
ErrorFormatter = Callable[[BaseException], Sequence[str]]

MAX_CELLS = 1000
_CHANNELS: tuple[Channel, ...] = ("stdout", "stderr")
# Many tiny writes (a progress bar, one character at a time) become one chunk now and then.
_MAX_TAIL_CHUNKS = 64
_EVENTS = ("pre_run_cell", "post_run_cell")


@dataclass(frozen=True)
class CapturedText:
    """Text written during one cell: its first and last characters, and how many in all.

    ``head + tail`` is the whole text when nothing was left out (``left_out == 0``).
    """

    channel: str
    head: str
    tail: str
    total: int

    @property
    def left_out(self) -> int:
        """Characters written between ``head`` and ``tail`` that were not kept."""
        return self.total - len(self.head) - len(self.tail)


@dataclass(frozen=True)
class CapturedError:
    """A cell's error as IPython >= 9.1 stores it: ``ename``, ``evalue`` and traceback text."""

    ename: str
    evalue: str
    traceback: CapturedText


@dataclass(frozen=True)
class CellCapture:
    """What one cell printed (each stream in the order first written to) and its error."""

    streams: tuple[CapturedText, ...]
    error: CapturedError | None


class _Bounded:
    """Text kept as it is written: the first ``head_chars`` and the last ``tail_chars``.

    A write only appends (and slices a write longer than what is kept, so a 3 MB print is
    never copied whole); the tail is cut back to ``tail_chars`` once it holds twice that or
    many small chunks. So it never holds more than about three times ``tail_chars``.
    """

    def __init__(
        self, head_chars: int = OUTPUT_HEAD_CHARS, tail_chars: int = OUTPUT_TAIL_CHARS
    ) -> None:
        self._head_room = head_chars
        self._tail_chars = tail_chars
        self._head: list[str] = []
        self._tail: list[str] = []
        self._tail_size = 0
        self.total = 0

    def add(self, text: str) -> None:
        size = len(text)
        self.total += size
        if self._head_room:
            taken = min(size, self._head_room)
            self._head.append(text[:taken])
            self._head_room -= taken
            if taken == size:
                return
            text = text[max(taken, size - self._tail_chars) :]
        elif size > self._tail_chars:
            text = text[size - self._tail_chars :]
        self._tail.append(text)
        self._tail_size += len(text)
        if self._tail_size > 2 * self._tail_chars or len(self._tail) > _MAX_TAIL_CHUNKS:
            kept = self._tail_text()
            self._tail, self._tail_size = [kept], len(kept)

    def _tail_text(self) -> str:
        text = "".join(self._tail)
        return text[len(text) - self._tail_chars :] if len(text) > self._tail_chars else text

    def captured(self, channel: str) -> CapturedText:
        return CapturedText(channel, "".join(self._head), self._tail_text(), self.total)


class _Running:
    """The capture of a cell that is running: the streams it replaced and what they got."""

    def __init__(self, info: Any) -> None:
        self.info = info
        self.originals: dict[Channel, Any] = {}
        self.tees: dict[Channel, _Tee] = {}
        self.texts: dict[Channel, _Bounded] = {}  # in the order first written to

    def restore(self) -> None:
        """Put the original streams back, unless the cell replaced ours with its own."""
        for channel, tee in self.tees.items():
            if getattr(sys, channel) is tee:
                setattr(sys, channel, self.originals[channel])
        self.tees.clear()


# Set while a tee writes, in this thread: a tee wrapping another records the write once.
_WRITING = threading.local()


class _Tee:
    """``sys.stdout`` or ``sys.stderr`` during a cell: writes through, and records.

    No ``__slots__``: code may set attributes on ``sys.stdout`` (IPython >= 9.1 sets
    ``write`` on it for a cell run from a cell), and they belong on the tee.
    """

    def __init__(self, stream: Any, channel: Channel, recorder: Recorder) -> None:
        self._tee_stream = stream
        self._tee_channel = channel
        self._tee_recorder = recorder

    def write(self, text: Any) -> Any:
        if getattr(_WRITING, "active", False):
            return self._tee_stream.write(text)
        _WRITING.active = True
        try:
            written = self._tee_stream.write(text)
        finally:
            _WRITING.active = False
        if isinstance(text, str) and text:
            self._tee_recorder.record(self._tee_channel, text, sys._getframe(1).f_code)
        return written

    def writelines(self, lines: Iterable[Any]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        # Only called for names the tee does not have: set_parent, flush, isatty, fileno ...
        if name.startswith("_tee_"):  # not set yet (copy, pickle): no endless recursion
            raise AttributeError(name)
        return getattr(self._tee_stream, name)

    def __repr__(self) -> str:
        return f"<ormagic tee of {self._tee_stream!r}>"


def _plain_traceback(error: BaseException) -> list[str]:
    """The traceback module's text, for a recorder made without IPython's formatter."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return [text.rstrip("\n")]


def _evalue(error: BaseException) -> str:
    try:
        text = str(error)
    except Exception:  # a user exception's __str__ can fail; the cell's record must not
        return f"<unprintable {type(error).__name__}>"
    return shorten(text, OUTPUT_HEAD_CHARS + OUTPUT_TAIL_CHARS)


class Recorder:
    """Printed output and errors of the cells run since it was registered, by execution count.

    ``format_error`` gives the traceback lines of a cell's error (the magic passes IPython's
    own formatter); without it, or if it fails, the traceback module's text is used.
    Writes made directly by a function whose code is in ``shell_writers`` are not recorded.
    """

    def __init__(
        self,
        *,
        format_error: ErrorFormatter | None = None,
        shell_writers: Collection[CodeType] = frozenset(),
        max_cells: int = MAX_CELLS,
    ) -> None:
        self._format_error = format_error or _plain_traceback
        self._shell_writers = frozenset(shell_writers)
        self._max_cells = max_cells
        self._cells: dict[int, CellCapture] = {}
        self._running: list[_Running] = []  # more than one when a cell runs a cell
        self._lock = threading.Lock()

    def cell(self, execution_count: int) -> CellCapture | None:
        """What cell ``execution_count`` printed and raised; None if nothing was recorded."""
        with self._lock:
            return self._cells.get(execution_count)

    def counts(self) -> tuple[int, ...]:
        """The execution counts of the cells with something recorded, oldest first."""
        with self._lock:
            return tuple(self._cells)

    # ------------------------------------------------------------------ IPython events

    def register(self, events: Any) -> None:
        """Register the callbacks with a shell's ``events`` (IPython ``EventManager``)."""
        events.register("pre_run_cell", self.pre_run_cell)
        events.register("post_run_cell", self.post_run_cell)

    def unregister(self, events: Any) -> None:
        """Unregister the callbacks, and put back the streams of a cell still running."""
        for event in _EVENTS:
            callback = getattr(self, event)
            if callback in events.callbacks.get(event, ()):
                events.unregister(event, callback)
        with self._lock:
            running, self._running = self._running, []
        for capture in reversed(running):
            capture.restore()

    def pre_run_cell(self, info: Any = None) -> None:
        """Put tees in place of ``sys.stdout`` and ``sys.stderr`` for the cell."""
        running = _Running(info)
        for channel in _CHANNELS:
            stream = getattr(sys, channel)
            if stream is None:  # pythonw and some embedders have no console streams
                continue
            running.originals[channel] = stream
            running.tees[channel] = _Tee(stream, channel, self)
            setattr(sys, channel, running.tees[channel])
        with self._lock:
            self._running.append(running)

    def post_run_cell(self, result: Any = None) -> None:
        """Put the streams back and store what the cell printed, and its error."""
        running = self._finish(result)
        if running is None:
            return
        running.restore()
        info = getattr(result, "info", None)
        count = getattr(result, "execution_count", None)
        if not isinstance(count, int) or not getattr(info, "store_history", True):
            return
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        # list() copies at once: another thread may still be adding a stream
        streams = tuple(text.captured(channel) for channel, text in list(running.texts.items()))
        captured_error = self._capture_error(error) if isinstance(error, BaseException) else None
        self._store(count, CellCapture(streams, captured_error))

    def record(self, channel: Channel, text: str, writer: CodeType | None = None) -> None:
        """Keep ``text``, written to ``channel`` by ``writer``, for the running cell (if any)."""
        if writer in self._shell_writers:
            return
        # No lock on this path, which every print takes: the GIL keeps each list and dict
        # operation whole, and a print from another thread just as a cell ends is at worst
        # recorded for that cell or not at all.
        try:
            texts = self._running[-1].texts
        except IndexError:  # no cell is running
            return
        bounded = texts.get(channel)
        if bounded is None:
            bounded = texts[channel] = _Bounded()
        bounded.add(text)

    # ------------------------------------------------------------------ internals

    def _finish(self, result: Any) -> _Running | None:
        with self._lock:
            if not self._running:
                return None
            # IPython triggers post_run_cell for an empty cell without pre_run_cell; a None
            # result (the cell was interrupted before it returned one) ends the newest cell.
            if result is not None and getattr(result, "info", None) is not self._running[-1].info:
                return None
            return self._running.pop()

    def _capture_error(self, error: BaseException) -> CapturedError:
        try:
            lines = [str(line) for line in self._format_error(error)]
        # Formatting runs user code (__str__, _render_traceback_); a failure must not turn
        # into an "Error in callback" message under the user's cell.
        except Exception:
            lines = _plain_traceback(error)
        bounded = _Bounded()
        for index, line in enumerate(lines):
            bounded.add(f"\n{line}" if index else line)
        return CapturedError(type(error).__name__, _evalue(error), bounded.captured("traceback"))

    def _store(self, count: int, capture: CellCapture) -> None:
        with self._lock:
            # pop first: after %reset the numbers start again and the old entry must go
            self._cells.pop(count, None)
            if capture.streams or capture.error is not None:
                self._cells[count] = capture
            while len(self._cells) > self._max_cells:
                del self._cells[next(iter(self._cells))]


_INSTALLED: weakref.WeakKeyDictionary[Any, Recorder] = weakref.WeakKeyDictionary()


def install(
    shell: Any,
    *,
    format_error: ErrorFormatter | None = None,
    shell_writers: Collection[CodeType] = frozenset(),
) -> Recorder | None:
    """Record printed output on ``shell`` where IPython does not; None where it does (>= 9.1).

    The keywords go to :class:`Recorder`. Installing twice on one shell returns the
    recorder installed first.
    """
    if hasattr(getattr(shell, "history_manager", None), "outputs"):
        return None
    recorder = _INSTALLED.get(shell)
    if recorder is None:
        recorder = Recorder(format_error=format_error, shell_writers=shell_writers)
        recorder.register(shell.events)
        _INSTALLED[shell] = recorder
    return recorder


def uninstall(shell: Any) -> None:
    """Undo :func:`install` on ``shell`` (a no-op where nothing was installed)."""
    recorder = _INSTALLED.pop(shell, None)
    if recorder is not None:
        recorder.unregister(shell.events)
