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
from markdown_it.helpers import parseLinkDestination
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin

from .texmath import (
    MATH_CLOSERS,
    math_bracket_block,
    math_bracket_inline,
    math_dollar_inline,
)

__all__ = ["escape_text", "neutralise_markdown", "render_html"]


def escape_text(text: str) -> str:
    """Plain text to HTML-safe text (``&``, ``<``, ``>``, ``"`` and ``'`` escaped)."""
    return html.escape(text, quote=True)


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
    with inline styles; ``$...$``, ``$$...$$``, ``\\(...\\)`` and ``\\[...\\]`` reach the
    browser as TeX with their delimiters for MathJax. ``highlight=False`` leaves code
    uncoloured: the live view uses it, since inline styles make code four times larger.
    """
    return str(_parser().render(text, {"highlight": highlight}))


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = _ParseAllLinks("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    # Blank lines are not allowed inside $$ (as in LaTeX), so split_blocks can never cut
    # a display equation in two. dollarmath's inline rule is replaced by our own: with
    # allow_digits=False it reads src[pos - 1] at pos 0, i.e. the paragraph's last char.
    md.use(dollarmath_plugin, allow_labels=False, allow_blank_lines=False)
    md.inline.ruler.disable("math_inline")
    md.inline.ruler.before("escape", "math_dollar", math_dollar_inline)
    md.inline.ruler.before("escape", "math_bracket", math_bracket_inline)
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
    return _code_html(tokens[idx].content, "")


# JupyterLab styles every nested <pre> with the theme's background and no padding, and
# breaks long lines anywhere; our own inline styles win over its stylesheet. Highlighted
# code gets a light box of its own because pygments' colours are made for a light
# background (measured in JupyterLab's dark theme: blue names on #111 were unreadable);
# plain code gets the same box, so live (uncoloured) and final code look alike.
_CODE_BOX = (
    "padding:6px 10px;margin:0.6em 0;border-radius:4px;overflow-x:auto;"
    "white-space:pre;word-break:normal;overflow-wrap:normal;line-height:1.4"
)
_LIGHT_BOX = f"{_CODE_BOX};background:#f6f8fa;color:#1f2328"
# JupyterLab's dark theme gives <code> a dark background of its own: seen as black bars
# on each line inside the light box
_CODE_INNER = "background:none;color:inherit;padding:0;border:0"


def _code_html(code: str, language: str, *, highlight: bool = True) -> str:
    lexer = _lexer(language) if language and highlight else None
    if lexer is None:
        # No guessing: pygments' guess_lexer is slow and often wrong on short snippets.
        attrs = f' class="language-{escapeHtml(language)}"' if language else ""
        return (
            f'<pre style="{_LIGHT_BOX}"><code style="{_CODE_INNER}"{attrs}>'
            f"{escapeHtml(code)}</code></pre>\n"
        )
    from pygments import highlight as pygmentize
    from pygments.formatters import HtmlFormatter

    # Inline styles (noclasses) so no stylesheet is needed in the notebook.
    spans = str(pygmentize(code, lexer, HtmlFormatter(noclasses=True, nowrap=True)))
    return f'<pre style="{_LIGHT_BOX}"><code style="{_CODE_INNER}">{spans}</code></pre>\n'


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

# Content that a renderer ending the fence early (marked closes ``` at "```~~") would
# render as Markdown: a tag, an image or a link.
_RISKY_CODE = re.compile(r"<[A-Za-z/!?]|!\[|\]\s*\(|\]:")
_LT = re.compile(r"(\\*)<")
_IMAGE = re.compile(r"(\\*)!\[")
_LINK_TARGET = re.compile(r"\][ \t]*\(|\]:")
_LOOSE_DESTINATION = re.compile(r"<[^\n>]*>?|\S*")
# Characters a destination without <...> cannot hold (CommonMark, link destination).
_NOT_BARE = re.compile(r"[\s()<>\\]")


def neutralise_markdown(text: str) -> str:
    r"""Markdown that is safe even in a renderer that passes raw HTML through.

    Line ends become ``\n``. Outside fenced code blocks (found by markdown-it's block
    parser): every ``<`` becomes ``&lt;`` (a backslash-escaped ``\<`` too, losing its
    backslash), ``![`` becomes ``\![`` so images turn into links, and link or reference
    destinations with an unsafe scheme become ``#``. This also applies inside inline
    code spans and indented code, so a frontend that disagrees about where code ends
    never sees a tag; the cost is a literal ``&lt;`` (or ``#``) shown there by
    Markdown-only frontends. Fenced code is left as written, but a fence whose content
    holds a tag, image or link is re-fenced with more backticks than any run inside, so
    no renderer can end it early, with an opening line that cannot pass for a closing
    one; a ``<`` in an info string becomes an entity. What stays assumed is that the
    renderer agrees with CommonMark on where list items, quotes and indented code end.
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
    md.use(dollarmath_plugin, allow_labels=False, allow_blank_lines=False)
    md.block.ruler.before("fence", "math_bracket_block", math_bracket_block)
    md.enable("table").disable(["inline", "text_join"])
    return md


def _fences(text: str) -> list[Token]:
    return [t for t in _block_parser().parse(text) if t.type == "fence" and t.map]


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


def _defuse_link_targets(text: str) -> str:
    """Replace unsafe destinations after ``](`` and ``]:`` with ``#``, wherever they are."""
    pieces: list[str] = []
    done = 0
    for match in _LINK_TARGET.finditer(text):
        start = _skip_link_space(text, match.end())
        if start < done:
            continue
        end = _destination_end(text, start)
        replacement = _safe_destination(text[start:end]) if end > start else None
        if replacement is not None:
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


def _destination_end(text: str, start: int) -> int:
    parsed = parseLinkDestination(text, start, len(text))
    if parsed.ok:
        return int(parsed.pos)
    loose = _LOOSE_DESTINATION.match(text, start)
    return loose.end() if loose else start


def _safe_destination(raw: str) -> str | None:
    """What replaces a link destination: ``#`` if unsafe, None to keep it as written.

    A safe ``<url>`` loses its brackets (percent-encoding what a bare destination cannot
    hold), since escaping the ``<`` would otherwise make it a different, relative URL.
    """
    pointy = raw.startswith("<") and raw.endswith(">")
    inner = raw[1:-1] if pointy else raw.lstrip("<")
    # Both readings: CommonMark's (backslash escapes and entities decoded) and a lax
    # renderer's that copies the text into href, where the browser decodes entities.
    if not (_is_safe_url(unescapeAll(inner)) and _is_safe_url(html.unescape(inner))):
        return "#"
    if not pointy:
        return None
    return _NOT_BARE.sub(lambda char: quote(char.group()), stripEscape(inner))


def _neutralise_fence(lines: list[str], fence: Token) -> list[str]:
    marker = fence.markup
    at = lines[0].find(marker)
    info = lines[0][at + len(marker) :]
    new_marker = marker
    if _RISKY_CODE.search(fence.content):
        new_marker = _longer_marker(fence)
        if _fence_closed(lines, fence):
            closing = re.sub(rf"{re.escape(marker[0])}+", new_marker, lines[-1], count=1)
            lines = [*lines[:-1], closing]
        if not info.strip(" \t") or info.lstrip(" \t")[0] in "`~":
            # An opening line that could pass for a closing one (marked accepts "```~~")
            # would end a fence some renderer wrongly still has open and expose this
            # content as Markdown. A leading "&#32;" is trimmed from the info string.
            info = "&#32;" + info
    # The info string is prose to a renderer that does not see a fence here (or splits
    # lines at U+2028); CommonMark decodes its escapes and entities, so its meaning stays.
    # A backtick would end a tilde fence turned into a backtick fence.
    info = _neutralise_prose(info)
    if new_marker[0] != marker[0]:
        info = _escape_chars(info, "`")
    return [lines[0][:at] + new_marker + info, *lines[1:]]


def _escape_chars(text: str, chars: str) -> str:
    """Write each of `chars` as an entity; a backslash escaping one becomes redundant."""
    pattern = rf"(\\*)([{re.escape(chars)}])"
    return re.sub(pattern, lambda m: _unescaped(m.group(1)) + f"&#{ord(m.group(2))};", text)


def _unescaped(slashes: str) -> str:
    return slashes[:-1] if len(slashes) % 2 else slashes


def _longer_marker(fence: Token) -> str:
    """Backticks outnumbering every run inside, so nothing inside can end the fence."""
    longest = max((len(run) for run in re.findall(r"`+", fence.content)), default=0)
    # At least 4 (longer than a usual fence); an existing longer backtick fence is kept.
    kept = len(fence.markup) if fence.markup[0] == "`" else 0
    return "`" * max(4, longest + 1, kept)


def _fence_closed(lines: list[str], fence: Token) -> bool:
    content = fence.content
    content_lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    return len(lines) - 1 - content_lines == 1
