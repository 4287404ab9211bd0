"""TeX math in Markdown: markdown-it rules for ``$``, ``$$``, ``\\(`` and ``\\[`` delimiters.

Each rule emits a ``math_inline`` or ``math_block`` token that keeps its opening
delimiter in ``markup``, so :mod:`ormagic.render.markdown` can hand the browser the TeX
with its delimiters for MathJax. :data:`MATH_CLOSERS` pairs each opener with its closer;
the block splitter (:mod:`ormagic.render.blocks`) uses it too, to never cut inside an
equation.

Model text is attacker-controlled, so every rule is linear by construction: an inline
opener never rescans text an earlier opener already searched (:class:`_Closers`), and a
display equation never looks past the end of its container (a list item, a quote), so a
list whose every item opens ``\\[`` or ``$$`` costs one line per item, not the rest of
the document.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the rules only use the states handed to them: no import at load
    from markdown_it.rules_block import StateBlock
    from markdown_it.rules_inline import StateInline

__all__ = [
    "MATH_CLOSERS",
    "math_bracket_block",
    "math_bracket_inline",
    "math_dollar_block",
    "math_dollar_inline",
]

MATH_CLOSERS = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}


class _Closers:
    """Where the next closing delimiter is, remembered per inline state.

    Inline rules run left to right, so the answer for a later opener is usually the one
    found for an earlier opener: each stretch of text is searched once per delimiter.
    """

    def __init__(self) -> None:
        # delimiter -> (searched from, searched up to, first hit or -1)
        self._seen: dict[str, tuple[int, int, int]] = {}

    def find(self, src: str, closer: str, start: int, limit: int) -> int:
        seen = self._seen.get(closer)
        if seen is not None:
            begin, until, hit = seen
            if begin <= start and hit >= start:
                return hit if hit + len(closer) <= limit else -1
            if begin <= start and hit == -1 and until >= limit:
                return -1
        hit = src.find(closer, start, limit)
        self._seen[closer] = (start, limit, hit)
        return hit


_CLOSERS: weakref.WeakKeyDictionary[StateInline, _Closers] = weakref.WeakKeyDictionary()


def _find_closer(state: StateInline, closer: str, start: int) -> int:
    memo = _CLOSERS.get(state)
    if memo is None:
        memo = _CLOSERS[state] = _Closers()
    return memo.find(state.src, closer, start, state.posMax)


def math_dollar_inline(state: StateInline, silent: bool) -> bool:
    """``$x$`` and ``$$x$$`` inside a paragraph, with pandoc's currency rules.

    The opening ``$`` needs a non-space on its right, the closing one a non-space on its
    left and no digit after it (pandoc, tex_math_dollars); as with dollarmath's
    allow_digits=False, no digit may precede the opening one. "$5 and $10" stays text.
    """
    src, pos = state.src, state.pos
    if src[pos] != "$":
        return False
    double = src.startswith("$$", pos)
    start = pos + (2 if double else 1)
    end = _find_closing_dollar(state, start, double)
    if end is None:
        return False
    if not silent:
        token = state.push("math_inline", "math", 0)
        token.content = src[start:end]
        token.markup = "$$" if double else "$"
    state.pos = end + (2 if double else 1)
    return True


def _find_closing_dollar(state: StateInline, start: int, double: bool) -> int | None:
    src, limit = state.src, state.posMax
    if start >= limit or (not double and (src[start].isspace() or _digit_before(state))):
        return None
    closer = "$$" if double else "$"
    end = _find_closer(state, closer, start + 1)
    while end != -1 and _escaped(src, end):
        end = _find_closer(state, closer, end + 1)
    if end == -1:
        return None
    after = end + (2 if double else 1)
    if not double and (src[end - 1].isspace() or (after < limit and src[after].isdigit())):
        return None
    return end


def _digit_before(state: StateInline) -> bool:
    return state.pos > 0 and state.src[state.pos - 1].isdigit()


def _escaped(src: str, pos: int) -> bool:
    # An odd run of backslashes escapes; the run is walked once per candidate closer,
    # and candidates are found left to right, so each run is walked about once.
    start = pos
    while pos > 0 and src[pos - 1] == "\\":
        pos -= 1
    return (start - pos) % 2 == 1


def math_bracket_inline(state: StateInline, silent: bool) -> bool:
    r"""``\(x\)`` and ``\[x\]`` inside a paragraph (before the escape rule eats the ``\``)."""
    opener = state.src[state.pos : state.pos + 2]
    if opener not in ("\\(", "\\["):
        return False
    start = state.pos + 2
    end = _find_closer(state, MATH_CLOSERS[opener], start)
    if end <= start:
        return False
    if not silent:
        token = state.push("math_inline", "math", 0)
        token.content = state.src[start:end]
        token.markup = opener
    state.pos = end + 2
    return True


def math_bracket_block(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    r"""A display equation starting a line with ``\[`` and ending a line with ``\]``."""
    if state.is_code_block(start):
        return False
    first = _line(state, start)
    if not first.startswith("\\["):
        return False
    last = start if first[2:].rstrip().endswith("\\]") else _closing_line(state, start, end, "\\]")
    if last is None:
        return False
    if not silent:
        body = state.getLines(start, last + 1, state.blkIndent, False).strip()
        token = state.push("math_block", "math", 0)
        token.block = True
        token.content = body[2:-2]
        token.markup = "\\["
        token.map = [start, last + 1]
    state.line = last + 1
    return True


def math_dollar_block(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """A display equation from a line starting ``$$`` to a line ending ``$$``.

    As mdit-py-plugins' dollarmath block rule with ``allow_labels=False`` and
    ``allow_blank_lines=False`` (a blank line ends the search, as in LaTeX), except that
    the search also ends where the container does: an equation opened in one list item
    cannot close in the next.
    """
    if state.is_code_block(start):
        return False
    begin = state.bMarks[start] + state.tShift[start]
    first = _line(state, start)
    if not first.startswith("$$"):
        return False
    stripped = first.strip()
    if len(stripped) > 3 and stripped.endswith("$$"):
        last, close = start, begin + len(first.rstrip()) - 2
    elif len(stripped) > 3 and "$$" in first[2:]:
        return False  # a closing marker inside the line: not a display equation
    else:
        found = _closing_line(state, start, end, "$$")
        if found is None:
            return False
        last = found
        close = state.bMarks[last] + state.tShift[last] + len(_line(state, last).rstrip()) - 2
    if not silent:
        token = state.push("math_block", "math", 0)
        token.block = True
        token.content = _dollar_content(state, start, begin + 2, last, close)
        token.markup = "$$"
        token.map = [start, last + 1]
    state.line = last + 1
    return True


def _line(state: StateBlock, line: int) -> str:
    return state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]


def _closing_line(state: StateBlock, start: int, end: int, closer: str) -> int | None:
    """The first line after ``start`` ending with ``closer``; None at a blank line or
    at a line that is no longer inside the container (less indented than its blocks)."""
    for line in range(start + 1, end):
        if state.isEmpty(line) or state.sCount[line] < state.blkIndent:
            return None
        if _line(state, line).rstrip().endswith(closer):
            return line
    return None


def _dollar_content(state: StateBlock, start: int, begin: int, last: int, close: int) -> str:
    """The equation's body, as dollarmath keeps it: inner lines with their indentation."""
    if start == last:
        return state.src[begin:close]
    parts = [state.src[begin : state.eMarks[start]], "\n"]
    for line in range(start + 1, last):
        parts += [state.src[state.bMarks[line] : state.eMarks[line]], "\n"]
    parts.append(state.src[state.bMarks[last] : close])
    return "".join(parts)
