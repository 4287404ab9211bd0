"""Safe Markdown for untrusted model output: HTML to display and Markdown to save.

Everything a model writes is untrusted. JupyterLab marks the outputs of executed cells
trusted and does not sanitise them, so an ``<img src=x onerror=...>`` that reaches a
``text/html`` or ``text/markdown`` output runs JavaScript with the user's Jupyter session,
and a Markdown image is fetched (a data leak) as soon as it renders
(docs/jupyter-notes.md, "Security: outputs are trusted"). This module owns two jobs:

- :func:`render_html`: Markdown to an HTML fragment holding no HTML from the input, no
  ``<img>`` and no link with an unsafe scheme; math is left for MathJax.
- :func:`neutralise_markdown`: the answer as Markdown that stays safe in a frontend that
  renders raw HTML, even when that frontend's idea of "code" differs from ours.

The math syntax rules live in :mod:`ormagic._texmath`; where a streaming answer can be cut
into finished blocks is :mod:`ormagic._blocks`.

Nothing here imports IPython or ipywidgets: the renderer sits on top of this module.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, stripEscape, unescapeAll
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

from ..formatting import escape_markdown_text, inert_html
from .escape import escape_text
from .highlight import BOX_CLASS, highlight_code
from .texmath import (
    MATH_CLOSERS,
    math_bracket_block,
    math_bracket_inline,
    math_dollar_block,
    math_dollar_inline,
)

__all__ = [
    "code_of",
    "escape_markdown_text",
    "escape_text",
    "neutralise_markdown",
    "render_html",
]


# ---------------------------------------------------------------------------------------
# Link schemes

_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
# The WHATWG URL parser strips leading/trailing C0 controls and spaces and removes every
# tab and newline before it reads the scheme (https://url.spec.whatwg.org/#url-parsing),
# which is how "java\nscript:" and "\x01javascript:" still run.
_C0_AND_SPACE = "".join(chr(code) for code in range(0x21))
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"([^:/?#]*):")


def _is_safe_url(url: str) -> bool:
    """True for http(s) and mailto URLs and for relative or fragment references.

    Percent-escapes and HTML entities left in the URL are decoded first, which browsers
    do not do for a scheme: this check is stricter than a browser, never looser.
    """
    cleaned = _TAB_OR_NEWLINE.sub("", html.unescape(unquote(url))).strip(_C0_AND_SPACE)
    scheme = _SCHEME.match(cleaned)
    return scheme is None or scheme.group(1).lower() in _SAFE_SCHEMES


# ---------------------------------------------------------------------------------------
# render_html

_LINK_REL = "noopener noreferrer nofollow"
# MathJax 3 searches each element's text for delimiters and restarts at every element
# boundary (mathjax/MathJax-src ts/handlers/html/HTMLDomStrings.ts, handleContainer), so a
# "$" or "\" in its own <span> can never pair up: text that is not math stays text
# ("$5 and $10") while our math spans keep their delimiters for JupyterLab's MathJax.
_TEX_TRIGGER = re.compile(r"[$\\]")


class _ParseAllLinks(MarkdownIt):
    """markdown-it that parses every link destination; `_secure_links` judges them.

    markdown-it's own ``validateLink`` rejection leaves the raw ``[x](javascript:...)``
    source in the output; accepting here and dropping the ``<a>`` after parsing (with
    the href already entity-decoded and normalised) keeps just the link text.
    """

    def validateLink(self, url: str) -> bool:
        return True


def render_html(text: str, *, highlight: bool = True) -> str:
    """Render untrusted Markdown to a safe HTML fragment.

    CommonMark plus tables and strikethrough. Raw HTML is shown as text; links keep their
    ``href`` only for http, https, mailto and relative targets (opening in a new tab with
    ``rel="noopener noreferrer nofollow"``); images become links labelled ``🖼 alt`` so
    nothing is fetched; fenced code with a known language is highlighted by pygments
    with token classes (:func:`ormagic.render.highlight.stylesheet` gives the
    ``<style>`` they need); ``$...$``, ``$$...$$``, ``\\(...\\)`` and ``\\[...\\]`` reach
    the browser as TeX with their delimiters for MathJax. ``highlight=False`` (the live
    view) leaves code uncoloured in a box styled inline, so that it needs no stylesheet.
    Work is linear in the text (the math rules are; see :mod:`ormagic.render.texmath`).
    """
    return str(_parser().render(text, {"highlight": highlight}))


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = _ParseAllLinks("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    # Blank lines are not allowed inside $$ (as in LaTeX), so split_blocks can never cut
    # a display equation in two.
    md.inline.ruler.before("escape", "math_dollar", math_dollar_inline)
    md.inline.ruler.before("escape", "math_bracket", math_bracket_inline)
    md.block.ruler.before("fence", "math_dollar_block", math_dollar_block)
    md.block.ruler.before("fence", "math_bracket_block", math_bracket_block)
    md.core.ruler.push("secure_links", _secure_links)
    for name, rule in _RENDER_RULES.items():
        md.add_render_rule(name, rule)
    return md


# --- links and images, judged once parsing is done


def _secure_links(state: StateCore) -> None:
    for token in state.tokens:
        if token.type == "inline" and token.children:
            token.children = _secure_inline(token.children)


def _secure_inline(children: list[Token]) -> list[Token]:
    """Drop the ``<a>`` of unsafe links (keeping their text) and turn images into links."""
    out: list[Token] = []
    kept: list[bool] = []  # one entry per open link: is its <a> kept?
    for token in children:
        if token.type == "link_open":
            kept.append(_is_safe_url(str(token.attrGet("href") or "")))
            if kept[-1]:
                _open_in_new_tab(token)
                out.append(token)
        elif token.type == "link_close":
            if not kept or kept.pop():
                out.append(token)
        elif token.type == "image":
            out.extend(_image_as_link(token, inside_link=bool(kept)))
        else:
            out.append(token)
    return out


def _open_in_new_tab(link_open: Token) -> None:
    link_open.attrSet("rel", _LINK_REL)
    link_open.attrSet("target", "_blank")


def _image_as_link(image: Token, *, inside_link: bool) -> list[Token]:
    alt = _plain_text(image.children or []).strip()
    label = Token("text", "", 0, content=f"🖼 {alt}" if alt else "🖼 image")
    src = str(image.attrGet("src") or "")
    if inside_link or not _is_safe_url(src):
        return [label]
    link = Token("link_open", "a", 1, attrs={"href": src})
    title = image.attrGet("title")
    if title:
        link.attrSet("title", title)
    _open_in_new_tab(link)
    return [link, label, Token("link_close", "a", -1)]


def _plain_text(tokens: Sequence[Token]) -> str:
    parts: list[str] = []
    for token in tokens:
        if token.type in ("text", "code_inline", "math_inline"):
            parts.append(token.content)
        elif token.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif token.children:
            parts.append(_plain_text(token.children))
    return "".join(parts)


# --- render rules (signature: self, tokens, idx, options, env)


def _render_text(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return _TEX_TRIGGER.sub(r"<span>\g<0></span>", escapeHtml(tokens[idx].content))


def _render_raw_html(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    # Never produced with html=False; escaped anyway should a future option change that.
    return escapeHtml(tokens[idx].content)


def _render_image(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    # Images are rewritten by _secure_links; this only runs if that rule is bypassed.
    return escapeHtml(_plain_text(tokens[idx].children or []))


def _render_math_inline(
    self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any
) -> str:
    return f'<span class="math">{_math_source(tokens[idx])}</span>'


def _render_math_block(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return f'<div class="math">{_math_source(tokens[idx])}</div>\n'


def _math_source(token: Token) -> str:
    return escapeHtml(token.markup + token.content + MATH_CLOSERS[token.markup])


def _render_fence(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    info = unescapeAll(token.info).strip()
    language = info.split(maxsplit=1)[0] if info else ""
    return _code_html(token.content, language, highlight=env.get("highlight", True))


def _render_code_block(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return _code_html(tokens[idx].content, "", highlight=env.get("highlight", True))


# The live view's code box, styled inline so that a redraw needs no stylesheet: the same
# look as the final output's ``.orm-code`` box (see highlight.py), without the colours.
_LIVE_BOX = (
    "padding:6px 10px;border-radius:4px;overflow-x:auto;white-space:pre;"
    "background:#f6f8fa;color:#1f2328"
)
_LIVE_CODE = "background:none;color:inherit;padding:0"


def _code_html(code: str, language: str, *, highlight: bool = True) -> str:
    attrs = f' class="language-{escapeHtml(language)}"' if language else ""
    if not highlight:
        return (
            f'<pre style="{_LIVE_BOX}"><code style="{_LIVE_CODE}"{attrs}>'
            f"{escapeHtml(code)}</code></pre>\n"
        )
    # No guessing: pygments' guess_lexer is slow and often wrong on short snippets.
    lexer = _lexer(language) if language else None
    body = escapeHtml(code) if lexer is None else highlight_code(code, lexer)
    return f'<pre class="{BOX_CLASS}"><code{attrs}>{body}</code></pre>\n'


@lru_cache(maxsize=128)
def _lexer(language: str) -> Any:
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        # stripnl=False: keep the code's leading and trailing blank lines as written.
        return get_lexer_by_name(language, stripnl=False)
    except ClassNotFound:
        return None


_RENDER_RULES = {
    "text": _render_text,
    "html_block": _render_raw_html,
    "html_inline": _render_raw_html,
    "image": _render_image,
    "math_inline": _render_math_inline,
    "math_inline_double": _render_math_inline,
    "math_block": _render_math_block,
    "fence": _render_fence,
    "code_block": _render_code_block,
}


# ---------------------------------------------------------------------------------------
# neutralise_markdown

# Fence content that would do something if a renderer read it as Markdown instead of
# code: a tag, an image or a link.
_RISKY_CODE = re.compile(r"<[A-Za-z/!?]|!\[|\]\s*\(|\]:")
# (?<!\\): a run of backslashes is tried once, at its start, not at each of its positions
_LT = re.compile(r"(?<!\\)(\\*)<")
_IMAGE = re.compile(r"(?<!\\)(\\*)!\[")
_LINK_TARGET = re.compile(r"\][ \t]*\(|\]:")
# Characters a destination without <...> cannot hold (CommonMark, link destination).
_NOT_BARE = re.compile(r"[\s()<>\\]")
_LANGUAGE = re.compile(r"[^A-Za-z0-9_+#.-]")


def neutralise_markdown(text: str) -> str:
    r"""Markdown that is safe in any renderer, whatever it takes to be code or prose.

    Line ends become ``\n``. Outside fenced code blocks (found by markdown-it's block
    parser): every ``<`` becomes ``&lt;`` (a backslash-escaped ``\<`` too, losing its
    backslash), ``![`` becomes ``\![`` so images turn into links, and link or reference
    destinations with an unsafe scheme become ``#``. This also applies inside inline
    code spans and indented code; the cost is a literal ``&lt;`` (or ``#``) shown there
    by Markdown-only frontends.

    A fenced code block stays a fence when its content could do nothing as Markdown (no
    tag, image or link). One whose content could is written as a single line of HTML,
    ``<pre><code>`` with that content's ``&``, ``<``, brackets, ``$``, backslashes and
    line breaks as character references: it reads the same in every renderer that shows
    HTML, and nothing in it can become live, even in a renderer that disagrees about
    where code starts and ends (a list item ending the fence, marked's looser closing
    fence, or JupyterLab pulling ``$`` and ``\\(`` math out of the text before parsing
    Markdown, which can swallow a fence's opening line). So the result never holds a tag
    from the model under any reading of it, only ``<pre>``/``<code>`` of its own. Linear
    in the text.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd")
    lines = text.split("\n")
    out: list[str] = []
    done = 0
    for fence in _fences(text):
        start, end = fence.map or (0, 0)
        if start > done:
            out.append(_neutralise_prose("\n".join(lines[done:start])))
        out.extend(_neutralise_fence(lines[start:end], fence))
        done = end
    if done < len(lines):
        out.append(_neutralise_prose("\n".join(lines[done:])))
    return "\n".join(out)


@lru_cache(maxsize=1)
def _block_parser() -> MarkdownIt:
    """render_html's block rules without inline parsing: only fence positions matter.

    Math blocks are included because they can hold ``` lines, which are then escaped
    like prose. html=False matches what a frontend sees once every "<" outside fences
    has been escaped: no HTML block can start.
    """
    md = _ParseAllLinks("commonmark", {"html": False})
    md.block.ruler.before("fence", "math_dollar_block", math_dollar_block)
    md.block.ruler.before("fence", "math_bracket_block", math_bracket_block)
    md.enable("table").disable(["inline", "text_join"])
    return md


def _fences(text: str) -> list[Token]:
    return [t for t in _block_parser().parse(text) if t.type == "fence" and t.map]


def code_of(text: str) -> str:
    """The code of every fenced block in ``text`` (nested in lists too), one after another.

    What ``-f code`` and ``--fix`` put in a new cell. The blocks are the ones the answer
    shows as code (a CommonMark parse, linear in the text), so a fence inside a math
    block or a list reads as it renders; a fence never closed (an answer cut short) is
    left out, since its code is unfinished.
    """
    # the lines as markdown-it numbers them (its map): \r\n and \r are line ends, nothing else
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(fence.content.rstrip("\n") for fence in _fences(text) if _closed(fence, lines))


def _closed(fence: Token, lines: list[str]) -> bool:
    """Whether the fence's last line closes it (in a list or a quote too)."""
    start, end = fence.map or (0, 0)
    if end - 1 <= start or end > len(lines):
        return False
    last = lines[end - 1].strip().lstrip("> \t")
    return len(last) >= len(fence.markup) and last == fence.markup[0] * len(last)


def _neutralise_prose(text: str) -> str:
    # Links are judged twice: as written (a "<javascript:...>" destination) and once "<"
    # is escaped, which is the text a renderer will read.
    text = _LT.sub(_escape_lt, _defuse_link_targets(text))
    return _IMAGE.sub(_escape_image, _defuse_link_targets(text))


def _escape_lt(match: re.Match[str]) -> str:
    # "\<" is an escaped "<": the entity says the same without the backslash.
    return _unescaped(match.group(1)) + "&lt;"


def _escape_image(match: re.Match[str]) -> str:
    slashes = match.group(1)
    return match.group() if len(slashes) % 2 else slashes + "\\!["


def _unescaped(slashes: str) -> str:
    return slashes[:-1] if len(slashes) % 2 else slashes


def _neutralise_fence(lines: list[str], fence: Token) -> list[str]:
    marker = fence.markup
    at = lines[0].find(marker)
    prefix, info = lines[0][:at], lines[0][at + len(marker) :]
    if _RISKY_CODE.search(fence.content):
        return [prefix + _code_as_html(fence.content, unescapeAll(fence.info).strip())]
    # The info string is prose to a renderer that does not see a fence here (or splits
    # lines at U+2028); CommonMark decodes its escapes and entities, so its meaning stays.
    return [prefix + marker + _neutralise_prose(info), *lines[1:]]


def _code_as_html(code: str, info: str) -> str:
    """Fence content as one line of inert HTML (see :func:`neutralise_markdown`)."""
    language = _LANGUAGE.sub("", info.split(maxsplit=1)[0]) if info else ""
    attrs = f' class="language-{language}"' if language else ""
    return f"<pre><code{attrs}>{inert_html(code)}</code></pre>"


# --- link destinations, judged wherever "](" or "]:" appears

# A destination's scheme is decided by what precedes its first ":", "/", "?" or "#" (a
# "#" right after "&" may open an entity). One that shows none of them within this many
# characters is unsafe: judging it cannot take longer than that.
_SCHEME_WINDOW = 256
_DECISIVE = re.compile(r"[:/?]|(?<!&)#")
# What parseLinkDestination stops at or counts in a bare destination.
_BARE_SPECIAL = re.compile(r"[ ()\\\x00-\x1f\x7f]")
_POINTY = re.compile(r"<(?:[^\n<>\\]|\\[\s\S])*>")
_LOOSE_POINTY = re.compile(r"<[^\n>]*>?")
_LOOSE_BARE = re.compile(r"\S*")


def _defuse_link_targets(text: str) -> str:
    """Replace unsafe destinations after ``](`` and ``]:`` with ``#``, wherever they are.

    Linear: a destination is judged from at most :data:`_SCHEME_WINDOW` characters, and
    one that is replaced is consumed, so later openers inside it are not judged again.
    """
    pieces: list[str] = []
    done = 0
    for match in _LINK_TARGET.finditer(text):
        start = _skip_link_space(text, match.end())
        if start < done or start >= len(text):
            continue
        verdict = _judge_destination(text, start)
        if verdict is not None:
            replacement, end = verdict
            pieces += [text[done:start], replacement]
            done = end
    return "".join([*pieces, text[done:]])


def _skip_link_space(text: str, pos: int) -> int:
    # CommonMark allows spaces, tabs and at most one line ending before a destination.
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    if pos < len(text) and text[pos] == "\n":
        pos += 1
        while pos < len(text) and text[pos] in " \t":
            pos += 1
    return pos


def _judge_destination(text: str, start: int) -> tuple[str, int] | None:
    """``(replacement, end)`` for the destination at ``start``, or None to keep it.

    As CommonMark reads it (``<...>`` or a bare destination with balanced parentheses);
    where CommonMark sees none, as a lax renderer would copy it into ``href`` (up to
    ``>`` or a space).
    """
    if text[start] == "<":
        pointy = _POINTY.match(text, start)
        if pointy is not None:
            return _judge_pointy(text[start + 1 : pointy.end() - 1]), pointy.end()
        return _judge_loose(text, start + 1, _LOOSE_POINTY, start)
    status, end = _bare_end(text, start, start + _SCHEME_WINDOW)
    if status == "end":
        return None if _is_safe_destination(text[start:end]) else ("#", end)
    if status == "limit" and _is_safe_destination(text[start:end], complete=False):
        return None
    if status == "fail":
        return _judge_loose(text, start, _LOOSE_BARE, start)
    status, end = _bare_end(text, start, len(text))
    loose = _LOOSE_BARE.match(text, start) if status == "fail" else None
    return "#", loose.end() if loose else end


def _judge_pointy(inner: str) -> str:
    """A ``<...>`` destination: ``#`` if unsafe, else the same URL without brackets.

    A safe ``<url>`` loses its brackets (percent-encoding what a bare destination cannot
    hold), since escaping the ``<`` would otherwise make it a different, relative URL.
    """
    if not _is_safe_destination(inner):
        return "#"
    return _NOT_BARE.sub(lambda char: quote(char.group()), stripEscape(inner))


def _judge_loose(
    text: str, url_start: int, pattern: re.Pattern[str], start: int
) -> tuple[str, int] | None:
    """A destination CommonMark rejects, as a lax renderer would take it."""
    window = pattern.match(text, start, min(len(text), url_start + _SCHEME_WINDOW))
    end = window.end() if window else start
    complete = end < url_start + _SCHEME_WINDOW or end >= len(text)
    if _is_safe_destination(text[url_start:end].rstrip(">"), complete=complete):
        return None
    whole = pattern.match(text, start)
    return "#", whole.end() if whole else end


def _bare_end(text: str, start: int, limit: int) -> tuple[str, int]:
    """Where CommonMark's bare destination at ``start`` ends, looking up to ``limit``.

    ``("end", pos)``, ``("fail", pos)`` (not a destination: CommonMark's
    parseLinkDestination, unbalanced or over 32 nested parentheses), or
    ``("limit", limit)`` when it goes on past ``limit``.
    """
    level = 0
    skip = start
    for special in _BARE_SPECIAL.finditer(text, start, limit):
        pos = special.start()
        if pos < skip:
            continue
        char = text[pos]
        if char == "\\":
            if pos + 1 < len(text) and text[pos + 1] == " ":
                return _bare_result(start, pos, level)
            skip = pos + 2
        elif char == "(":
            level += 1
            if level > 32:
                return "fail", pos
        elif char == ")" and level:
            level -= 1
        else:  # a space, a control character or an unbalanced ")"
            return _bare_result(start, pos, level)
    if limit < len(text):
        return "limit", limit
    return _bare_result(start, len(text), level)


def _bare_result(start: int, pos: int, level: int) -> tuple[str, int]:
    return ("end" if pos > start and level == 0 else "fail"), pos


def _is_safe_destination(raw: str, *, complete: bool = True) -> bool:
    """True if ``raw`` (a whole destination, or its first characters) is a safe URL.

    Read both as CommonMark does (backslash escapes and entities decoded) and as a lax
    renderer that copies the text into ``href``, where the browser decodes entities. A
    prefix is judged up to its first decisive character; one without is unsafe.
    """
    if not complete:
        decisive = _DECISIVE.search(raw)
        if decisive is None:
            return False
        raw = raw[: decisive.end()]
    return _is_safe_url(unescapeAll(raw)) and _is_safe_url(html.unescape(raw))
