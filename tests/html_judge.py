"""Judge HTML as a browser would parse it: html5lib, the HTML5 parsing algorithm in Python.

:func:`html_problems` parses a fragment (entities decoded, attributes split, SVG and
MathML namespaces and the parser's error recovery exactly as the spec says) and lists
everything that would run script or fetch something:

- a script element, in any namespace;
- an event-handler attribute (``on…``), on any element;
- a script URL (``javascript:``, ``vbscript:``, ``data:`` …, read as the URL parser
  reads them: ends stripped, tabs and newlines removed, any case) in any attribute but
  ``title`` (a tooltip's text, which a browser shows and never follows), and a link
  whose scheme is not http(s) or mailto;
- a remote resource load: an element that fetches (``img``, ``iframe``, ``object``,
  ``link``, ``video``, SVG ``image``/``use``…), a fetching attribute (``src``,
  ``srcset``, ``background``, ``poster``, ``xlink:href`` off a link…), or CSS that
  fetches or runs (``url(``, ``@import``, ``expression(``) in a ``style`` attribute or
  element.

It also holds the output to the elements and attributes ormagic writes, so anything
unexpected (a ``<form>``, a ``<meta>``, an ``id`` that could clobber the DOM) is reported
too. No regular expression decides what the HTML means; they only read values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import html5lib

__all__ = ["ELEMENTS", "html_problems"]

# What ormagic's outputs are made of (Markdown rendering, bundles, command tables).
ELEMENTS = frozenset(
    {
        *("p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "hr"),
        *("pre", "code", "span", "div", "em", "strong", "b", "del", "s", "a", "br", "sub"),
        *("table", "thead", "tbody", "tr", "th", "td", "details", "summary", "style"),
    }
)
ATTRIBUTES = frozenset({"href", "rel", "target", "title", "class", "style", "start"})
FETCHING_ELEMENTS = frozenset(
    {
        *("img", "image", "iframe", "frame", "frameset", "embed", "object", "applet"),
        *("video", "audio", "source", "track", "picture", "link", "base", "meta", "input"),
        *("use", "feimage", "portal", "bgsound", "script"),
    }
)
FETCHING_ATTRIBUTES = frozenset(
    {"src", "srcset", "background", "poster", "lowsrc", "dynsrc", "data", "codebase"}
    | {"action", "formaction", "ping", "manifest", "cite", "longdesc", "icon", "xlink:href"}
)
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
SCRIPT_SCHEMES = ("javascript:", "vbscript:", "livescript:", "data:", "mocha:")
RISKY_CSS = re.compile(r"url\s*\(|image-set\s*\(|@import|expression\s*\(|behavior\s*:", re.I)
C0_AND_SPACE = "".join(chr(code) for code in range(0x21))


def html_problems(fragment: str) -> list[str]:
    """Everything in ``fragment`` that a browser would run or fetch (empty: safe)."""
    root = html5lib.parseFragment(fragment, treebuilder="etree", namespaceHTMLElements=False)
    problems: list[str] = []
    for element in _elements(root):
        problems += _element_problems(element)
    return problems


def _elements(root: Any) -> Iterator[Any]:
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag != "DOCUMENT_FRAGMENT":
            yield element


def _local(name: str) -> str:
    """``{namespace}name`` -> ``name``, lower-cased (SVG keeps camelCase in the DOM)."""
    return name.rsplit("}", 1)[-1].lower()


def _element_problems(element: Any) -> list[str]:
    tag = _local(element.tag)
    found = []
    if tag == "script":
        found.append("script element")
    if tag in FETCHING_ELEMENTS:
        found.append(f"<{tag}> (runs or fetches)")
    elif tag not in ELEMENTS:
        found.append(f"unexpected element <{tag}>")
    if tag == "style" and RISKY_CSS.search(element.text or ""):
        found.append(f"stylesheet that fetches or runs: {element.text!r}")
    for raw_name, value in element.attrib.items():
        found += _attribute_problems(tag, _attribute_name(raw_name), value)
    return found


def _attribute_name(raw: str) -> str:
    if raw.startswith("{http://www.w3.org/1999/xlink}"):
        return "xlink:" + _local(raw)
    return _local(raw)


def _attribute_problems(tag: str, name: str, value: str) -> list[str]:
    found = []
    url = _as_url(value)
    if name.startswith("on"):
        found.append(f"event handler {name} on <{tag}>")
    if url.startswith(SCRIPT_SCHEMES) and name != "title":
        found.append(f"script URL in {name} on <{tag}>: {value!r}")
    if name in FETCHING_ATTRIBUTES or (name == "href" and tag != "a"):
        found.append(f"{name} on <{tag}> (fetches)")
    if name == "href" and tag == "a" and not _is_safe_link(url):
        found.append(f"link to {value!r}")
    if name == "style" and RISKY_CSS.search(value):
        found.append(f"style that fetches or runs on <{tag}>: {value!r}")
    if name not in ATTRIBUTES and not name.startswith("on"):
        found.append(f"unexpected attribute {name} on <{tag}>")
    return found


def _as_url(value: str) -> str:
    """As the WHATWG URL parser reads a scheme: ends stripped, tabs/newlines removed."""
    return re.sub(r"[\t\n\r]", "", value).strip(C0_AND_SPACE).lower()


def _is_safe_link(url: str) -> bool:
    """http(s), mailto, or relative (no ":" before the first "/", "?" or "#")."""
    scheme, colon, _rest = url.partition(":")
    if not colon or re.search(r"[/?#]", scheme):
        return True
    return scheme in SAFE_SCHEMES
