"""The live part of a notebook view: outputs that stream, paced redraws.

A :class:`LiveBlocks` shows streaming text as a run of outputs: finished Markdown blocks are
sent once as outputs of their own and only the open block is redrawn, so what a redraw
re-sends does not grow with the answer. A :class:`Pacer` decides when a redraw is due.
Jupyter is reached only through a :class:`Publisher` (display, update, clear), handed in.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .blocks import split_blocks
from .escape import escape_text

__all__ = [
    "MAX_LIVE_OUTPUTS",
    "Bundle",
    "Clock",
    "LiveBlocks",
    "Pacer",
    "Publisher",
    "answer_split",
    "pre_html",
    "reasoning_split",
]

Bundle = Mapping[str, Any]
Clock = Callable[[], float]

# A piece of finished answer becomes its own output once it is at least this large and
# this share of what is already committed, so the open part (re-sent on each redraw) stays
# small. JupyterLab hides a cell's outputs beyond 50: at MAX_LIVE_OUTPUTS the live pieces
# are merged into one output (the reasoning panel and the footer make 47). Pieces grow
# with the answer, so merges get rarer and all of them together re-send about half the
# answer at most.
_MIN_PIECE_CHARS = 400
_MIN_PIECE_SHARE = 1 / 60
MAX_LIVE_OUTPUTS = 45
# An open code fence longer than this is cut at a line end and re-opened, so a redraw never
# re-sends more than about this much (the fence is merged again in the final output).
_MAX_OPEN_FENCE_CHARS = 1500
# Any other open block (a long list or table, a paragraph without blank lines) is cut as
# well once it is this long: at a line end (a table is re-opened with its header), else
# at a space, else anywhere. The live view may show a seam there; the final output is
# rendered whole. This bounds what one redraw renders and sends, so a 10 MB answer costs
# linear time, not quadratic.
_MAX_OPEN_CHARS = 3000
_REASONING_CHUNK_CHARS = 1500
_FENCE_OPEN = re.compile(r"( {0,3})(`{3,}|~{3,})([^\n]*)\n")
_TABLE_ROW = re.compile(r" {0,3}\|")
_TABLE_DELIMITER = re.compile(r" {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")

# word-break: JupyterLab's output <pre> breaks words anywhere (measured); prose wraps at
# spaces, and only an overlong word is broken.
_PRE_STYLE = (
    "white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;margin:0;"
    "font-size:0.9em;line-height:1.35"
)


class Publisher(Protocol):
    """The display operations the notebook view needs (IPython's, or a recorder in tests)."""

    def display(
        self,
        bundle: Bundle,
        *,
        display_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None: ...

    def display_widget(self, widget: Any) -> None: ...

    def update(self, bundle: Bundle, *, display_id: str) -> None: ...

    def clear(self) -> None: ...


class Pacer:
    """Decides when a redraw is due.

    The first draw is immediate. After that the interval between redraws grows with the
    size of what a redraw re-sends, so that re-sent characters per second stay within
    ``traffic_factor`` times the rate at which the answer arrives, clamped between
    ``min_interval`` (at most 10 redraws a second) and ``max_interval``.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        min_interval: float = 0.1,
        max_interval: float = 4.0,
        traffic_factor: float = 1.0,
    ) -> None:
        self._clock = clock
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.traffic_factor = traffic_factor
        self._start = clock()
        self._received = 0
        self._last: float | None = None

    def received(self, chars: int) -> None:
        """Count characters that arrived."""
        self._received += chars

    def due(self, resend_chars: int) -> bool:
        """True when a redraw that re-sends ``resend_chars`` characters may happen now."""
        now = self._clock()
        if self._last is None:
            return True
        rate = self._received / max(now - self._start, 1e-3)
        wanted = resend_chars / max(self.traffic_factor * rate, 1.0)
        interval = min(max(wanted, self.min_interval), self.max_interval)
        return now - self._last >= interval

    def drew(self) -> None:
        """Record that a redraw happened now."""
        self._last = self._clock()


def pre_html(text: str) -> str:
    """Plain text as an escaped, wrapping ``<pre>`` block."""
    return f'<pre style="{_PRE_STYLE}">{escape_text(text)}</pre>'


def _split_open_fence(tail: str) -> tuple[str, str]:
    """Cut an over-long open code fence at a line end: (closed piece, re-opened rest)."""
    if len(tail) <= _MAX_OPEN_FENCE_CHARS:
        return "", tail
    # Only the first line, and only once it is complete: matched against a long run of
    # backticks with no line end, the pattern would backtrack quadratically.
    first_end = tail.find("\n")
    match = _FENCE_OPEN.match(tail, 0, first_end + 1) if first_end >= 0 else None
    if match is None:
        return "", tail
    cut = tail.rfind("\n", match.end(), len(tail))
    if cut <= match.end():
        return "", tail
    indent, fence, _info = match.groups()
    body = tail[: cut + 1]
    if len(body) - match.end() < _MAX_OPEN_FENCE_CHARS // 2:
        return "", tail
    return body + indent + fence + "\n", match.group(0) + tail[cut + 1 :]


class LiveBlocks:
    """Text that streams into a run of outputs: finished pieces stay, the open one is redrawn."""

    def __init__(
        self,
        publisher: Publisher,
        render: Callable[[str], str],
        split: Callable[[str], tuple[str, str]],
    ) -> None:
        self._publisher = publisher
        self._render = render
        self._split = split
        self._open = ""
        # text appended since the last redraw: joined then, so an append costs O(1) however
        # much arrives between two redraws (a fast server can send megabytes)
        self._arrived: list[str] = []
        self._arrived_chars = 0
        self._committed: list[str] = []
        self._committed_chars = 0
        self._display_id: str | None = None
        self._dirty = False
        # rendered size / text size of the last redraw: the pacer weighs what is sent
        self._html_ratio = 1.5
        self.outputs = 0

    @property
    def pending(self) -> int:
        """Estimated characters of HTML a redraw would send: 0 when nothing changed."""
        if not self._dirty:
            return 0
        return int((len(self._open) + self._arrived_chars) * self._html_ratio)

    def append(self, text: str) -> None:
        self._arrived.append(text)
        self._arrived_chars += len(text)
        self._dirty = True

    def _take_arrived(self) -> None:
        if self._arrived:
            self._open += "".join(self._arrived)
            self._arrived.clear()
            self._arrived_chars = 0

    def redraw(self) -> None:
        self._dirty = False
        self._take_arrived()
        head, tail = self._split(self._open)
        if head and len(head) >= max(_MIN_PIECE_CHARS, _MIN_PIECE_SHARE * self._committed_chars):
            self._show(head)
            self._display_id = None
            self._committed.append(head)
            self._committed_chars += len(head)
            self._open = tail
        if self._open:
            self._show(self._open)

    def adopt(self, display_id: str | None) -> None:
        """Draw the first output into an existing display (the waiting line) if given."""
        if display_id is not None and self._display_id is None and self.outputs == 0:
            self._display_id = display_id
            self.outputs = 1

    def merge(self) -> None:
        """Show everything committed as one output, after the caller cleared the outputs."""
        self._display_id = None
        self.outputs = 0
        self._take_arrived()
        if self._committed:
            self._committed = ["".join(self._committed)]
            self._show(self._committed[0])
            self._display_id = None
        if self._open:
            self._show(self._open)

    def _show(self, text: str) -> None:
        html = self._render(text)
        # (+200: the fixed markup of a short piece says little about what text costs)
        self._html_ratio = max(len(html) / (len(text) + 200), 1.0)
        # one <div> per piece: JupyterLab trims an output's last margin, which made the gap
        # between two live pieces smaller than between two paragraphs
        bundle = {"text/html": f"<div>{html}</div>"}
        if self._display_id is None:
            self._display_id = uuid.uuid4().hex
            self._publisher.display(bundle, display_id=self._display_id)
            self.outputs += 1
        else:
            self._publisher.update(bundle, display_id=self._display_id)


def answer_split(text: str) -> tuple[str, str]:
    """Finished blocks and the open rest of a live answer (see :class:`LiveBlocks`)."""
    last_line = max(text.rfind("\n"), text.rfind("\r")) + 1
    if 0 < last_line < len(text) and text[last_line].isalpha():
        # A line that starts with a letter cannot continue a list, a quote or indented
        # code, nor be a reference definition or a fence: once its first letter is
        # here, the blocks before it are finished (split_blocks waits for the whole
        # line, which for a paragraph of prose means the whole paragraph).
        head, _ = split_blocks(text + "\n")
        tail = text[len(head) :]
    else:
        head, tail = split_blocks(text)
    if head:
        return head, tail
    head, tail = _split_open_fence(tail)
    if head:
        return head, tail
    return _cut_long_block(tail)


def _cut_long_block(tail: str) -> tuple[str, str]:
    """An open block over :data:`_MAX_OPEN_CHARS`, cut for the live view."""
    if len(tail) <= _MAX_OPEN_CHARS:
        return "", tail
    cut = _cut_point(tail)
    head, rest = tail[:cut], tail[cut:]
    opener = _open_fence_line(head) if head.endswith("\n") else None
    if opener is not None:  # close the fence in this piece and open it again in the next
        fence = _FENCE_OPEN.match(opener)
        if fence is not None:
            head += fence.group(1) + fence.group(2) + "\n"
            rest = opener + rest
    elif _TABLE_ROW.match(rest):
        rest = _table_header(head) + rest
    return head, rest


def _open_fence_line(text: str) -> str | None:
    """The opening line of a fence still open at the end of ``text``, if any."""
    opener: str | None = None
    for line in text.splitlines(keepends=True):
        fence = _FENCE_OPEN.match(line if line.endswith("\n") else line + "\n")
        if fence is None:
            continue
        if opener is None:
            opener = line if line.endswith("\n") else line + "\n"
        elif _closes(opener, fence):
            opener = None
    return opener


def _closes(opener: str, fence: re.Match[str]) -> bool:
    opened = _FENCE_OPEN.match(opener)
    run = fence.group(2)
    return (
        opened is not None
        and run[0] == opened.group(2)[0]
        and len(run) >= len(opened.group(2))
        and not fence.group(3).strip(" \t")
    )


def _cut_point(text: str) -> int:
    """After the last line end, else the last space, else most of the text."""
    half = len(text) // 2
    for separator in ("\n", " "):
        at = text.rfind(separator, half, len(text) - 1)
        if at >= 0:
            return at + 1
    return len(text) - _MAX_OPEN_CHARS // 2


def _table_header(head: str) -> str:
    """The header and delimiter rows of the table ``head`` ends in ("" if none)."""
    lines = head.splitlines(keepends=True)
    start = len(lines)
    while start > 0 and _TABLE_ROW.match(lines[start - 1]):
        start -= 1
    if len(lines) - start >= 2 and _TABLE_DELIMITER.match(lines[start + 1]):
        return lines[start] + lines[start + 1]
    return ""


def reasoning_split(text: str) -> tuple[str, str]:
    """Reasoning cut into pieces of about :data:`_REASONING_CHUNK_CHARS`."""
    if len(text) < _REASONING_CHUNK_CHARS:
        return "", text
    cut = text.rfind("\n\n", 0, len(text) - 1)
    if cut < _REASONING_CHUNK_CHARS // 2:
        cut = text.rfind("\n", 0, len(text) - 1)
    if cut < _REASONING_CHUNK_CHARS // 2:
        cut = text.rfind(" ", 0, len(text) - 1)
    if cut < _REASONING_CHUNK_CHARS // 2:
        cut = len(text) - 1  # no line end or space at all: cut anywhere
    return text[: cut + 1], text[cut + 1 :]
