"""Syntax colours for the final answer: pygments token classes and one small stylesheet.

Inline styles made highlighted code about four times larger than the code, and the final
output carries the answer three times. Here each coloured token is a ``<span class="k">``
(only tokens whose colour differs from the text's: plain names, operators,
punctuation and whitespace stay bare text) and the output carries one ``<style>`` with
the rules for the classes it uses, scoped under ``.orm-code`` so it cannot restyle
anything else on the page.

Where ``<style>`` is stripped (GitHub's notebook view, an untrusted notebook in
JupyterLab), code is still a plain ``<pre><code>`` block: readable, just uncoloured. The
light box and the colours live in the same stylesheet, so a dark theme never gets
pygments' light-background colours without their light background.

pygments is imported on first use: only a final answer with a known language needs it.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import Any

__all__ = ["BOX_CLASS", "highlight_code", "stylesheet"]

BOX_CLASS = "orm-code"
# JupyterLab styles every nested <pre> with the theme's background and no padding, and
# breaks long lines anywhere; the box overrides that. Its <code> gets no background of
# its own (JupyterLab's dark theme gives <code> one: black bars on each line).
_BOX_RULES = (
    f".{BOX_CLASS}{{padding:6px 10px;border-radius:4px;overflow-x:auto;white-space:pre;"
    "background:#f6f8fa;color:#1f2328}"
    f".{BOX_CLASS} code{{background:none;color:inherit;padding:0}}"
)
_SPAN_CLASS = re.compile(r"<span class=([A-Za-z0-9-]+)>")
# Operators keep the text colour (pygments' default makes them grey): "=", "." and "+"
# are the commonest tokens in code, and a span each nearly doubled its size. Whitespace
# has nothing to colour; "err" (a red box round what the lexer did not expect) is noise
# on code a model wrote.
_UNCOLOURED = frozenset({"o", "w", "err"})


def highlight_code(code: str, lexer: Any) -> str:
    """``code`` as escaped HTML, coloured tokens wrapped in spans of pygments classes."""
    classes = _token_classes()
    parts: list[str] = []
    current: str | None = None
    run: list[str] = []
    for ttype, value in lexer.get_tokens(code):
        css = None if value.isspace() else _class_of(ttype, classes)
        if css != current and run:
            parts.append(_span(current, "".join(run)))
            run = []
        current = css
        run.append(value)
    if run:
        parts.append(_span(current, "".join(run)))
    return "".join(parts)


def _span(css: str | None, text: str) -> str:
    escaped = html.escape(text, quote=False)
    # an unquoted class: valid HTML, and no quote to escape in the JSON of the message
    return f"<span class={css}>{escaped}</span>" if css else escaped


def _class_of(ttype: Any, classes: dict[Any, str]) -> str | None:
    while ttype is not None:
        css = classes.get(ttype)
        if css is not None:
            return css
        ttype = ttype.parent
    return None


def stylesheet(fragment: str) -> str:
    """The ``<style>`` element a fragment from :func:`highlight_code` needs ("" if none)."""
    if f'class="{BOX_CLASS}"' not in fragment:
        return ""
    styles = _styles()
    used = sorted({css for css in _SPAN_CLASS.findall(fragment) if css in styles})
    by_style: dict[str, list[str]] = {}
    for css in used:  # one rule per look: ".orm-code .k,.orm-code .kn{...}"
        by_style.setdefault(styles[css], []).append(f".{BOX_CLASS} .{css}")
    rules = "".join(f"{','.join(selectors)}{{{style}}}" for style, selectors in by_style.items())
    return f"<style>{_BOX_RULES}{rules}</style>"


@lru_cache(maxsize=1)
def _formatter() -> Any:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(style="default")


@lru_cache(maxsize=1)
def _token_classes() -> dict[Any, str]:
    """Token type -> class, for the token types the style gives a look of their own."""
    formatter = _formatter()
    styled = _styles()
    return {ttype: css for ttype, css in formatter.ttype2class.items() if css in styled}


@lru_cache(maxsize=1)
def _styles() -> dict[str, str]:
    """Class -> CSS declarations (``color: #008000; font-weight: bold``), compacted."""
    return {
        css: re.sub(r"\s*([:;])\s*", r"\1", style)
        for css, (style, _ttype, _level) in _formatter().class2style.items()
        if style and css not in _UNCOLOURED
    }
