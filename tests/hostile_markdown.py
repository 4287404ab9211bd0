"""Markdown renderers as hostile as the frontends that may show ormagic's Markdown.

Each turns Markdown into the HTML a browser would then parse, so that
:func:`html_judge.html_problems` can judge it:

- :func:`trusting` renders CommonMark with raw HTML passed through and every link
  scheme accepted (JupyterLab renders trusted Markdown unsanitised).
- :func:`math_first` first pulls TeX math out of the text, as JupyterLab's renderer does
  before it parses Markdown (so that ``*`` and ``_`` inside math survive), then renders
  the rest trustingly and puts the math back, escaped. A math span runs from an opening
  delimiter (``$``, ``$$``, ``\\(``, ``\\[`` with one or two backslashes,
  ``\\begin{env}``) to the next matching closer and never across a blank line; it can
  swallow a code fence's opening line, which is the attack this reader exists for.
  This is a model of the behaviour, written for these tests, and harsher than the
  original: it does not spare text inside code spans or fences.
- :func:`all_prose` reads every line on its own, as prose: the reading of a renderer
  that agrees with nobody about where code starts and ends.
"""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

__all__ = ["all_prose", "math_first", "trusting"]


class _TrustingMarkdownIt(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        return True


_TRUSTING = _TrustingMarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])

# Openers, and the closer each one waits for.
_MATH_OPENER = re.compile(r"\$\$|\$|\\\\?\(|\\\\?\[|\\begin\{([A-Za-z*]*)\}")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


def trusting(markdown: str) -> str:
    return str(_TRUSTING.render(markdown))


def math_first(markdown: str) -> str:
    """Math pulled out first, the rest rendered trustingly, the math put back escaped."""
    text, spans = _pull_math(markdown)
    rendered = trusting(text)
    return re.sub(r"@@(\d+)@@", lambda m: html.escape(spans[int(m.group(1))]), rendered)


def _pull_math(text: str) -> tuple[str, list[str]]:
    spans: list[str] = []
    out: list[str] = []
    pos = 0
    while (opener := _MATH_OPENER.search(text, pos)) is not None:
        end = _closing(text, opener)
        if end is None:
            out.append(text[pos : opener.end()])
            pos = opener.end()
            continue
        out += [text[pos : opener.start()], f"@@{len(spans)}@@"]
        spans.append(text[opener.start() : end])
        pos = end
    out.append(text[pos:])
    return "".join(out), spans


def _closing(text: str, opener: re.Match[str]) -> int | None:
    """Where the span that ``opener`` opens ends (after its closer), if it closes."""
    token = opener.group()
    if token.startswith("\\begin"):
        closer = f"\\end{{{opener.group(1)}}}"
    else:
        closer = {"(": ")", "[": "]"}.get(token[-1], "")
        closer = token[:-1] + closer if closer else token
    end = text.find(closer, opener.end())
    if end < 0:
        return None
    blank = _BLANK_LINE.search(text, opener.end(), end)
    return None if blank else end + len(closer)


def all_prose(markdown: str) -> str:
    """Every line rendered alone, unindented: nothing is code unless the line says so."""
    return "".join(trusting(line.lstrip()) for line in markdown.split("\n") if line.strip())
