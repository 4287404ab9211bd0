"""Small formatters for what a user reads: tokens, dollars, seconds, untrusted text."""

from __future__ import annotations

import re

__all__ = ["format_cost", "format_count", "format_seconds", "printable"]

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
