"""A model's providers at a glance: price against speed, one labelled point per provider.

Drawn in the kernel as a static PNG, so the saved notebook shows it and no JavaScript of
ours runs, with matplotlib: an optional extra (``pip install 'ormagic[plot]'``), imported
only when a chart is drawn. The figure is drawn on its own Agg canvas, without pyplot, so
the user's pyplot state and backend are left alone. Provider names come from the network:
in a PNG they cannot run anything, but they are drawn with maths parsing off, so a ``$``
in a name is text, not a formula that could fail to parse.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Sequence
from typing import Literal

__all__ = ["PLOT_HINT", "Measure", "chart_bundle", "price_chart_png"]

Measure = Literal["throughput", "latency"]

PLOT_HINT = "For a chart of price against speed: pip install 'ormagic[plot]' (matplotlib)."

_Y_LABELS: dict[Measure, str] = {
    "throughput": "throughput p50 (tokens/s)",
    "latency": "latency p50, time to first token (s)",
}
# where the better providers are: cheaper is left; faster is up, lower latency is down
_BETTER: dict[Measure, tuple[str, float, str]] = {
    "throughput": ("better ↖", 0.98, "top"),
    "latency": ("better ↙", 0.02, "bottom"),
}


def price_chart_png(
    points: Sequence[tuple[str, float, float]], *, title: str, measure: Measure
) -> bytes | None:
    """A PNG of ``(label, price $/M, speed)`` points; ``None`` without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import StrMethodFormatter
    except ImportError:
        return None
    figure = Figure(figsize=(6.4, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    xs = [x for _, x, _ in points]
    ys = [y for _, _, y in points]
    axes.scatter(xs, ys, s=36, color="#3b6ea8", zorder=3)
    for label, x, y in points:
        axes.annotate(
            label,
            (x, y),
            xytext=(5, 4),
            textcoords="offset points",
            fontsize=8,
            parse_math=False,
        )
    axes.set_title(title, fontsize=10, parse_math=False)
    axes.set_xlabel("price, $ per million tokens (input + output)", fontsize=9)
    axes.set_ylabel(_Y_LABELS[measure], fontsize=9)
    axes.xaxis.set_major_formatter(StrMethodFormatter("${x:,.2f}"))
    axes.set_xlim(left=0, right=max(xs, default=1.0) * 1.25 or 1.0)
    axes.set_ylim(bottom=0, top=max(ys, default=1.0) * 1.2 or 1.0)
    axes.grid(True, color="#dddddd", linewidth=0.6, zorder=0)
    text, y, where = _BETTER[measure]
    axes.text(0.98, y, text, transform=axes.transAxes, ha="right", va=where, color="#888888")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # a provider name in a script the bundled font lacks draws as boxes: not an error
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        figure.tight_layout()
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def chart_bundle(
    points: Sequence[tuple[str, float, float]], *, title: str, measure: Measure
) -> dict[str, str] | None:
    """The chart as a display bundle (base64 PNG and a text line); ``None`` without
    matplotlib or without points."""
    if not points:
        return None
    png = price_chart_png(points, title=title, measure=measure)
    if png is None:
        return None
    names = ", ".join(label for label, _, _ in points)
    return {
        "image/png": base64.b64encode(png).decode("ascii"),
        "text/plain": f"[chart: price against {measure} for {names}]",
    }
