"""Plain text to HTML-safe text: the one escape every view needs.

Its own module so that the views and the skin can escape text without importing the
Markdown stack (markdown-it), which the first rendered answer loads.
"""

from __future__ import annotations

import html

__all__ = ["escape_text"]


def escape_text(text: str) -> str:
    """Plain text to HTML-safe text (``&``, ``<``, ``>``, ``"`` and ``'`` escaped)."""
    return html.escape(text, quote=True)
