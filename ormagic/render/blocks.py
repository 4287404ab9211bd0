"""Where a streaming answer can be cut into finished Markdown blocks.

The renderer redraws only the open tail of an answer while it streams; the head, once
cut, renders the same whatever text follows (see :func:`split_blocks`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .texmath import MATH_CLOSERS

__all__ = ["split_blocks"]

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")
# Wider than a CommonMark reference definition (any container prefix): if one may be
# there, a link in an earlier block could depend on it, so nothing is cut.
_REFERENCE_DEFINITION = re.compile(
    r"(?:^|(?<=[\r\n]))[ \t>]*(?:(?:[-+*]|\d{1,9}[.)])[ \t]+)?\[[^\]\r\n]+\]:"
)
_LIST_ITEM = re.compile(r"(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
_ITEM_PREFIX = re.compile(r"(?:[-+*]|\d{1,9}[.)]) {1,4}(?=[^ ])")
_THEMATIC_BREAK = re.compile(r"([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_FENCE_OPEN = re.compile(r"(`{3,}|~{3,})(.*)")
_FENCE_CLOSE = re.compile(r"(`{3,}|~{3,})[ \t]*$")


def split_blocks(text: str) -> tuple[str, str]:
    """Split a growing answer into finished top-level blocks and the open rest.

    Returns ``(head, tail)`` with ``head + tail == text``. ``head`` ends right after a
    blank line and before a complete, non-indented line that starts a new top-level
    block, so appending text can no longer change how ``head`` renders. No cut inside
    a fenced code block or a ``$$``/``\\[`` equation, between items of one list, or at
    all when a reference definition may be present. One pass over the lines, so a
    caller that keeps only the tail pays O(len(tail)) per call.

    A reference definition that arrives after a cut cannot reach back: a ``[x]`` already
    in a head stays text there, so render the whole answer once it is complete.
    """
    if _REFERENCE_DEFINITION.search(text):
        return "", text
    scanner = _BlockScanner()
    cut = 0
    after_blank = False
    # Complete lines only: stopping at the last line end keeps the regex from retrying
    # at every position of a long unfinished line (quadratic in its length).
    complete = max(text.rfind("\n"), text.rfind("\r")) + 1
    for match in _LINE.finditer(text, 0, complete):
        line = match.group().rstrip("\r\n")
        if after_blank and scanner.may_cut_before(line):
            cut = match.start()
        scanner.feed(line, after_blank)
        if scanner.unsure:
            break
        after_blank = not line.strip(" \t")
    return text[:cut], text[cut:]


@dataclass
class _OpenFence:
    char: str
    length: int
    column: int
    # Opened inside a list: it may be nested in an item (closed when the item ends) or
    # top-level; when the two readings could disagree, the scanner stops cutting.
    in_list: bool
    item_line: bool


class _BlockScanner:
    """Line-by-line state: open fence, open equation, inside a list, or unsure."""

    def __init__(self) -> None:
        self.fence: _OpenFence | None = None
        self.math: str | None = None
        self.in_list = False
        self.unsure = False

    def may_cut_before(self, line: str) -> bool:
        if self.unsure or self.fence or self.math or not line.strip(" \t"):
            return False
        if line[0] in " \t":
            return False
        return not (self.in_list and _is_list_item(line))

    def feed(self, line: str, after_blank: bool) -> None:
        column, body = _measure(line)
        if self.fence is not None:
            self._feed_fence(column, body)
        elif body:
            self._track_list(column, body, after_blank)
            if self.math is not None:
                self._feed_math(column, body)
            else:
                self._open_block(column, body)

    def _track_list(self, column: int, body: str, after_blank: bool) -> None:
        if column <= 3 and _is_list_item(body):
            self.in_list = True
        elif column == 0 and after_blank:
            self.in_list = False  # a non-indented block after a blank line ends any list

    def _open_block(self, column: int, body: str) -> None:
        prefix = _ITEM_PREFIX.match(body) if column <= 3 and _is_list_item(body) else None
        rest = body[prefix.end() :] if prefix else body
        at = column + (prefix.end() if prefix else 0)
        fence = _FENCE_OPEN.match(rest)
        if fence and (at <= 3 or prefix) and not _backtick_in_info(fence):
            run = fence.group(1)
            item_line = prefix is not None
            self.fence = _OpenFence(run[0], len(run), at, self.in_list, item_line)
        elif rest.startswith(("$$", "\\[")):
            closer = MATH_CLOSERS[rest[:2]]
            if not (len(rest.rstrip()) >= 4 and rest.rstrip().endswith(closer)):
                self.math = closer

    def _feed_math(self, column: int, body: str) -> None:
        if column <= 3 and _FENCE_OPEN.match(body):
            # Was the $$ line an equation or paragraph text? The fence depends on it.
            self.unsure = True
        elif body.rstrip().endswith(self.math or ""):
            self.math = None

    def _feed_fence(self, column: int, body: str) -> None:
        fence = self.fence
        if fence is None or not body:
            return
        loose = fence.in_list and fence.column >= 2  # could be nested in a list item
        if loose and column < fence.column:
            self.unsure = True  # nested reading: the item (and fence) ends here
            return
        close = _FENCE_CLOSE.match(body)
        if not close or close.group(1)[0] != fence.char or len(close.group(1)) < fence.length:
            return
        # CommonMark: a top-level closing fence is indented at most 3 spaces; a nested
        # one at most 3 more than its list item's content.
        limit = fence.column + 3 if fence.item_line else 3
        if column <= limit:
            self.fence = None
        elif loose:
            self.unsure = True


def _measure(line: str) -> tuple[int, str]:
    """The indentation in columns (tabs to 4) and the line without it ("" when blank)."""
    body = line.lstrip(" \t")
    column = len(line[: len(line) - len(body)].expandtabs(4))
    return column, body if body.strip(" \t") else ""


def _is_list_item(body: str) -> bool:
    return bool(_LIST_ITEM.match(body)) and not _THEMATIC_BREAK.match(body)


def _backtick_in_info(fence: re.Match[str]) -> bool:
    # CommonMark: a backtick fence's info string may not contain a backtick.
    return fence.group(1)[0] == "`" and "`" in fence.group(2)
