"""Small formatters for what a user reads: tokens, dollars, seconds, tool calls, and
untrusted text made printable."""

from __future__ import annotations

import html
import json
import re

__all__ = [
    "counted",
    "escape_markdown_text",
    "format_cost",
    "format_count",
    "format_seconds",
    "format_short_count",
    "inert_html",
    "inert_pre",
    "printable",
    "tool_call_text",
    "tool_line",
]

# C0 controls but tab and line feed, DEL, and C1 controls (0x9B is a one-byte CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Untrusted text made safe to print in a terminal or a ``text/plain`` output.

    Control characters other than tab and line feed are shown, not obeyed: an escape
    sequence from a model or a server (colours that hide text, an OSC 8 hyperlink, OSC 52
    writing the clipboard, a carriage return that overwrites a line) becomes visible
    text. C0 controls become their Unicode control pictures (``ESC`` -> ``␛``), DEL
    ``␡``, C1 controls ``\\x9b``.
    """
    return _CONTROL.sub(_picture, text)


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else f"\\x{code:02x}"


def format_count(n: int | None) -> str:
    """``1234567`` -> ``"1,234,567"``; ``None`` -> ``"?"``."""
    return "?" if n is None else f"{n:,}"


def counted(n: int, word: str, plural: str | None = None) -> str:
    """A count with its noun: ``1 row``, ``1,234 rows`` (``plural`` when not ``word`` + s)."""
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def format_cost(dollars: float | None) -> str:
    """Dollars with enough digits to be meaningful for tiny per-call costs.

    ``0`` -> ``"$0"``, ``0.0000042`` -> ``"$0.0000042"``, ``0.01234`` -> ``"$0.0123"``,
    ``0.5`` -> ``"$0.50"``, ``12.5`` -> ``"$12.50"``; ``None`` -> ``"cost unknown"``.
    """
    if dollars is None:
        return "cost unknown"
    if dollars == 0:
        return "$0"
    if abs(dollars) >= 1:
        return f"${dollars:,.2f}"
    # three significant digits for small amounts, without scientific notation
    text = f"{dollars:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        digits = mantissa.replace(".", "").replace("-", "")
        zeros = -int(exponent) - 1
        text = ("-" if dollars < 0 else "") + "0." + "0" * zeros + digits
    if abs(dollars) >= 0.01 and len(text.partition(".")[2]) < 2:
        text = f"{dollars:.2f}"  # cents read as cents: $0.50, not $0.5
    return f"${text}"


def format_seconds(seconds: float) -> str:
    """``4.21`` -> ``"4.2 s"``, ``75`` -> ``"1 min 15 s"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_call_text(name: str, arguments: str, value_chars: int = 40) -> str:
    """A call as it reads in a line: ``describe_variable(name="sales")``.

    Each argument's value is its JSON, cut to ``value_chars``; arguments that are not a
    JSON object are shown as written, cut.
    """
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        inner = ", ".join(
            f"{key}={_cut(json.dumps(value, ensure_ascii=False), value_chars)}"
            for key, value in parsed.items()
        )
    else:
        inner = _cut(" ".join(arguments.split()), 2 * value_chars)
    return f"{' '.join(name.split()) or '?'}({inner})"


def tool_line(name: str, arguments: str, result: str, error: bool) -> str:
    """``⚙ describe_variable(name="sales") → 14 lines``, or ``→ Error: …`` (one line)."""
    if error:
        outcome = _cut(" ".join(result.split()), 120)
    else:
        lines = result.count("\n") + 1 if result else 0
        outcome = counted(lines, "line")
    return f"⚙ {tool_call_text(name, arguments)} → {outcome}"


def format_short_count(n: int) -> str:
    """A count at a glance: ``412`` -> ``"412"``, ``4123`` -> ``"4.1k"``,
    ``412345`` -> ``"412k"``, ``1234567`` -> ``"1.2M"``."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


# What HTML, Markdown or a math extractor could act on (a tag, an entity, a link, an
# image, a math delimiter), line ends (JavaScript's too) and other controls: as character
# references, the text is one line that reads the same in every renderer that shows HTML
# and cannot become a link, an image, math or a tag in any other reading.
_INERT = re.compile(r"[&<>\[\]$\\\n\r\u2028\u2029\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def inert_html(text: str) -> str:
    """Untrusted text as HTML text on one line, inert however Markdown around it is read."""
    return _INERT.sub(lambda m: _NAMED.get(m.group()) or f"&#{ord(m.group())};", text)


def inert_pre(text: str) -> str:
    """Untrusted text as a ``<pre>`` block safe in Markdown read any way (one line).

    For Markdown outputs and cells: a raw-HTML block ends at a blank line in CommonMark,
    and what follows would be read as Markdown again; here there is no blank line.
    """
    return f"<pre>{inert_html(text)}</pre>"


# CommonMark: any ASCII punctuation may be backslash-escaped (spec §2.4). All of it is,
# except the characters of the entities that html.escape has already written (& ; < >).
_MD_PUNCTUATION = re.compile(r"([!-%'-/:=?@\[-`{-~])")


def escape_markdown_text(text: str) -> str:
    """Untrusted text as literal text on one Markdown line (a name, an error message).

    HTML is escaped, every Markdown punctuation character is backslash-escaped (so no
    link, image, emphasis or math can form) and line breaks become spaces.
    """
    return _MD_PUNCTUATION.sub(r"\\\1", html.escape(" ".join(text.split()), quote=False))
