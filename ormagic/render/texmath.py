"""TeX math in Markdown: markdown-it rules for ``$``, ``$$``, ``\\(`` and ``\\[`` delimiters.

Each rule emits a ``math_inline`` or ``math_block`` token that keeps its opening
delimiter in ``markup``, so :mod:`ormagic._markdown` can hand the browser the TeX with
its delimiters for MathJax. :data:`MATH_CLOSERS` pairs each opener with its closer; the
block splitter (:mod:`ormagic._blocks`) uses it too, to never cut inside an equation.
"""

from __future__ import annotations

from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline

__all__ = ["MATH_CLOSERS", "math_bracket_block", "math_bracket_inline", "math_dollar_inline"]

MATH_CLOSERS = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}


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
    end = src.find("$$" if double else "$", start + 1, limit)
    while end != -1 and _escaped(src, end):
        end = src.find("$$" if double else "$", end + 1, limit)
    if end == -1:
        return None
    after = end + (2 if double else 1)
    if not double and (src[end - 1].isspace() or (after < limit and src[after].isdigit())):
        return None
    return end


def _digit_before(state: StateInline) -> bool:
    return state.pos > 0 and state.src[state.pos - 1].isdigit()


def _escaped(src: str, pos: int) -> bool:
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
    end = state.src.find(MATH_CLOSERS[opener], start, state.posMax)
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
    first = state.src[state.bMarks[start] + state.tShift[start] : state.eMarks[start]]
    if not first.startswith("\\["):
        return False
    last = start if first[2:].rstrip().endswith("\\]") else _bracket_end(state, start, end)
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


def _bracket_end(state: StateBlock, start: int, end: int) -> int | None:
    for line in range(start + 1, end):
        if state.isEmpty(line):
            return None
        text = state.src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]
        if text.rstrip().endswith("\\]"):
            return line
    return None
