"""What happened to each row, the running counts the progress bar shows, the summary line.

A row ends ``ok`` (answered now), ``cached`` (answered before, free now), ``failed`` (with
the reason) or ``skipped`` (never sent: interrupted, the cap reached, the batch stopped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..formatting import counted, format_cost, format_seconds, format_short_count

__all__ = [
    "REPORT_COLUMNS",
    "BatchStats",
    "RowResult",
    "summary_line",
]

REPORT_COLUMNS = ("status", "error", "prompt_tokens", "completion_tokens", "cost", "seconds")
_SEP = " · "


@dataclass
class RowResult:
    """One row's (or one distinct prompt's) outcome."""

    status: str = "skipped"
    value: Any = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    seconds: float = 0.0
    model: str | None = None

    def record(self) -> dict[str, Any]:
        """The report's row: status, error, tokens, cost, seconds."""
        return {
            "status": self.status,
            "error": self.error,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class BatchStats:
    """Running counts, written by the batch's loop and read by the progress display.

    ``done`` counts rows answered now, ``cached`` rows answered from the cache; tokens and
    cost are what this run paid for.
    """

    total: int
    to_send: int = 0
    done: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    unknown_cost: int = 0
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.done + self.cached + self.failed

    @property
    def rate(self) -> float:
        """Rows sent and finished per second."""
        sent = self.done + self.failed
        return sent / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        """Time left at the current rate; None before the first answer."""
        left = self.to_send - self.done - self.failed
        return left / self.rate if self.rate > 0 else None

    @classmethod
    def of(cls, results: Sequence[RowResult], elapsed: float = 0.0) -> BatchStats:
        """The totals of a finished batch, one result per input row."""
        stats = cls(total=len(results), elapsed=elapsed)
        for result in results:
            if result.status == "cached":
                stats.cached += 1
            elif result.status == "skipped":
                stats.skipped += 1
            else:
                stats.add(result)
        stats.to_send = stats.total - stats.cached
        return stats

    def add(self, result: RowResult, rows: int = 1) -> None:
        """Count a request that was sent and ended (ok or failed), for ``rows`` input rows."""
        if result.status == "ok":
            self.done += rows
        elif result.status == "failed":
            self.failed += rows
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        if result.cost is not None:
            self.cost += result.cost
        elif result.prompt_tokens or result.completion_tokens:
            self.unknown_cost += 1


def summary_line(stats: BatchStats) -> str:
    """``1,000 rows · 12 failed · 412k in / 38k out · $0.068 · 41 s`` (with what applies)."""
    rows = counted(stats.total, "row")
    parts = [rows]
    if stats.cached:
        parts.append(f"{stats.cached:,} cached")
    if stats.failed:
        parts.append(f"{stats.failed:,} failed")
    if stats.skipped:
        parts.append(f"{stats.skipped:,} not sent")
    tokens_in = format_short_count(stats.prompt_tokens)
    tokens_out = format_short_count(stats.completion_tokens)
    parts.append(f"{tokens_in} in / {tokens_out} out")
    cost = format_cost(stats.cost)
    parts.append(f"{cost} + ?" if stats.unknown_cost else cost)
    parts.append(format_seconds(stats.elapsed))
    parts.extend(stats.notes)
    return _SEP.join(parts)
