"""Tables of figures from the network, as aligned text (terminals) and escaped HTML.

``%chat models`` and ``%chat providers`` show the same kinds of figures the same way:
numbers right-aligned, a missing figure as an en dash (never ``0``: "no data yet" is not
"free" or "instant"), and every value, which came from the network, on one line in
text and escaped in HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Sequence

__all__ = ["MISSING", "html_table", "one_line", "text_table", "yes_no"]

MISSING = "\u2013"  # an en dash
_WHITESPACE = re.compile(r"\s+")


def one_line(text: str) -> str:
    """Network text on one line, so a newline in a name cannot break a table."""
    return _WHITESPACE.sub(" ", text).strip()


def yes_no(flag: bool | None) -> str:
    """``yes`` / ``no``; :data:`MISSING` when unknown."""
    return MISSING if flag is None else ("yes" if flag else "no")


def text_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[str] = ()
) -> str:
    """Columns two spaces apart; the columns named in ``right`` right-aligned."""
    table = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = []
    for row in table:
        cells = [
            cell.rjust(width) if header in right else cell.ljust(width)
            for cell, width, header in zip(row, widths, headers, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def html_cell(tag: str, text: str, *, right: bool = False, title: str | None = None) -> str:
    """One escaped cell; ``title`` (escaped too) is its tooltip."""
    style = ' style="text-align:right"' if right else ""
    tip = f' title="{html.escape(title)}"' if title else ""
    return f"<{tag}{style}{tip}>{html.escape(text)}</{tag}>"


def html_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    right: Collection[str] = (),
    titles: Sequence[dict[str, str]] | None = None,
) -> str:
    """The same table as HTML; ``titles[i]`` maps a header to row ``i``'s tooltip there."""
    head = "".join(html_cell("th", h, right=h in right) for h in headers)
    body = []
    for i, row in enumerate(rows):
        tips = titles[i] if titles is not None else {}
        cells = "".join(
            html_cell("td", text, right=header in right, title=tips.get(header))
            for text, header in zip(row, headers, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
