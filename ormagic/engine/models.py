"""The model catalogue from ``GET /models``: parsing, choosing, tables and cost arithmetic.

Pure engine: the caller supplies the fetch function (the HTTP client) and decides between
HTML and text output. Everything in a ``/models`` entry came from the network, so the
HTML table escapes every value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError
from ..events import Usage
from ..formatting import format_cost, format_count
from .tables import MISSING, html_table, one_line, text_table, yes_no

__all__ = [
    "ModelCatalog",
    "ModelInfo",
    "cost_of",
    "format_price",
    "models_table_html",
    "models_table_text",
    "parse_models",
    "select_models",
]

SortKey = Literal["price", "context", "newest"]

_HEADERS = (
    "id",
    "name",
    "context",
    "max output",
    "input $/M",
    "output $/M",
    "reasoning",
    "tools",
)
_RIGHT_ALIGNED = frozenset({"context", "max output", "input $/M", "output $/M"})


@dataclass(frozen=True)
class ModelInfo:
    """One entry of ``GET /models`` with the fields ormagic uses (docs §7)."""

    id: str
    name: str
    context_length: int | None
    prompt_price: float | None
    """USD per prompt token, parsed from the ``pricing.prompt`` string."""
    completion_price: float | None
    """USD per completion token (reasoning tokens included), from ``pricing.completion``."""
    reasoning: bool
    created: int | None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    max_output: int | None = None
    """Most output tokens, from ``top_provider.max_completion_tokens``."""
    tools: bool = False
    """``tools`` is among its ``supported_parameters``."""

    @property
    def prompt_per_million(self) -> float | None:
        """USD per million prompt tokens, as openrouter.ai shows prices."""
        return None if self.prompt_price is None else self.prompt_price * 1e6

    @property
    def completion_per_million(self) -> float | None:
        """USD per million completion tokens."""
        return None if self.completion_price is None else self.completion_price * 1e6


def api_number(value: object) -> float | None:
    """A finite, non-negative figure from ``/models`` or a model's endpoints, else None.

    Prices are decimal strings in the spec (``"0.00000014"``, docs §7); numbers are
    accepted too. OpenRouter marks variable pricing (the ``openrouter/auto`` router) with
    ``"-1"``: that is not a price.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        price = float(value)
    except ValueError:
        return None
    return price if math.isfinite(price) and price >= 0 else None


def api_int(value: object) -> int | None:
    """An integer from the API (not a bool, not a float), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _has_reasoning(entry: Mapping[str, Any]) -> bool:
    if isinstance(entry.get("reasoning"), Mapping):
        return True
    params = entry.get("supported_parameters")
    return isinstance(params, list) and "reasoning" in params


def _parse_model(entry: Mapping[str, Any]) -> ModelInfo | None:
    model_id = entry.get("id")
    if not isinstance(model_id, str) or not model_id:
        return None
    name = entry.get("name")
    pricing = entry.get("pricing")
    pricing = pricing if isinstance(pricing, Mapping) else {}
    top = entry.get("top_provider")
    top = top if isinstance(top, Mapping) else {}
    params = entry.get("supported_parameters")
    return ModelInfo(
        id=model_id,
        name=name if isinstance(name, str) and name else model_id,
        context_length=api_int(entry.get("context_length")),
        prompt_price=api_number(pricing.get("prompt")),
        completion_price=api_number(pricing.get("completion")),
        reasoning=_has_reasoning(entry),
        created=api_int(entry.get("created")),
        raw=entry,
        max_output=api_int(top.get("max_completion_tokens")),
        tools=isinstance(params, list) and "tools" in params,
    )


def parse_models(data: Sequence[Mapping[str, Any]]) -> list[ModelInfo]:
    """Models from the ``data`` list of ``GET /models``.

    Tolerant, because one odd entry must not hide the catalogue: entries without an
    ``id`` are skipped, and missing or malformed fields become ``None``.
    """
    models = []
    for entry in data:
        if isinstance(entry, Mapping) and (model := _parse_model(entry)) is not None:
            models.append(model)
    return models


def _total_price(model: ModelInfo) -> float | None:
    if model.prompt_price is None or model.completion_price is None:
        return None
    return model.prompt_price + model.completion_price


def _sort_key(sort: SortKey) -> Callable[[ModelInfo], tuple[bool, float, str]]:
    """A key that puts unknown values last and breaks ties by id, for a stable listing."""
    if sort == "price":
        return lambda m: (_total_price(m) is None, _total_price(m) or 0.0, m.id)
    if sort == "context":
        return lambda m: (m.context_length is None, -(m.context_length or 0), m.id)
    if sort == "newest":
        return lambda m: (m.created is None, -(m.created or 0), m.id)
    raise ConfigError(f"Unknown sort {sort!r}: use price, context or newest.")


def select_models(
    models: Sequence[ModelInfo],
    *,
    filter: str | None = None,
    reasoning_only: bool = False,
    sort: SortKey | None = None,
) -> list[ModelInfo]:
    """The models matching ``filter`` (a case-insensitive substring of id or name).

    ``sort``: ``"price"`` (prompt + completion per token, cheapest first), ``"context"``
    (largest first) or ``"newest"``; ``None`` keeps the catalogue's order.
    """
    needle = (filter or "").casefold()
    chosen = [
        m
        for m in models
        if (needle in m.id.casefold() or needle in m.name.casefold())
        and (m.reasoning or not reasoning_only)
    ]
    if sort is not None:
        chosen.sort(key=_sort_key(sort))
    return chosen


def format_price(per_million: float | None) -> str:
    """A price per million tokens: ``0.14`` -> ``"$0.14"``, ``3`` -> ``"$3.00"``,
    ``0.075`` -> ``"$0.075"``, ``0`` -> ``"free"``; ``None`` (or a negative) -> ``"?"``.
    """
    if per_million is None or per_million < 0 or not math.isfinite(per_million):
        return "?"
    if per_million == 0:
        return "free"
    # Six decimals hide float noise (0.00000014 * 1e6 == 0.13999999999999999) while
    # keeping fractions of a cent per million that some models are priced in.
    text = f"{per_million:,.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    if whole == "0" and not fraction:
        return format_cost(per_million)  # below $0.000001/M: show its significant digits
    return f"${whole}.{fraction.ljust(2, '0')}"


def _row(model: ModelInfo) -> tuple[str, ...]:
    return (
        one_line(model.id),
        one_line(model.name),
        _count(model.context_length),
        _count(model.max_output),
        _price_cell(model.prompt_per_million),
        _price_cell(model.completion_per_million),
        yes_no(model.reasoning),
        yes_no(model.tools),
    )


def _count(n: int | None) -> str:
    return MISSING if n is None else format_count(n)


def _price_cell(per_million: float | None) -> str:
    return MISSING if per_million is None else format_price(per_million)


def models_table_text(models: Sequence[ModelInfo]) -> str:
    """An aligned plain-text table: id, name, context, max output, input and output $/M,
    reasoning, tools (the figures ``%chat providers`` shows per provider, for the top one)."""
    if not models:
        return "No models."
    return text_table(_HEADERS, [_row(m) for m in models], _RIGHT_ALIGNED)


def models_table_html(models: Sequence[ModelInfo]) -> str:
    """The same table as HTML; every value escaped, numbers right-aligned.

    The model's description (from the network, escaped) is the name cell's tooltip.
    """
    if not models:
        return "<p>No models.</p>"
    titles = []
    for model in models:
        description = model.raw.get("description")
        titles.append({"name": description} if isinstance(description, str) else {})
    return html_table(_HEADERS, [_row(m) for m in models], _RIGHT_ALIGNED, titles)


def cost_of(usage: Usage, model: ModelInfo | None) -> float | None:
    """The turn's cost in USD: the server's own figure, else computed from ``/models``.

    ``usage.cost`` is what OpenRouter charged (docs §4.3) and wins. Without it, tokens
    times prices; reasoning tokens are part of ``completion_tokens`` and billed as
    output, so they are not added again. ``None`` when neither is known.
    """
    if usage.cost is not None:
        return usage.cost
    if model is None or model.prompt_price is None or model.completion_price is None:
        return None
    return usage.prompt_tokens * model.prompt_price + usage.completion_tokens * (
        model.completion_price
    )


class ModelCatalog:
    """``GET /models``, fetched on demand and kept for ``ttl`` seconds.

    OpenRouter itself caches the list for 300 s (``Cache-Control: public, max-age=300``,
    docs §7), so asking more often only costs time.
    """

    def __init__(
        self,
        fetch: Callable[[], list[dict[str, Any]]],
        *,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._models: list[ModelInfo] | None = None
        self._by_id: dict[str, ModelInfo] = {}
        self._fetched_at = 0.0

    def models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """All models, from the cache unless it is older than ``ttl`` or ``refresh``."""
        now = self._clock()
        if refresh or self._models is None or now - self._fetched_at >= self._ttl:
            models = parse_models(self._fetch())
            self._models, self._fetched_at = models, now
            self._by_id = _index(models)
        return list(self._models)

    def is_cached(self) -> bool:
        """True when the list is cached and fresh: :meth:`get` will not fetch."""
        return self._models is not None and self._clock() - self._fetched_at < self._ttl

    def get(self, model_id: str) -> ModelInfo | None:
        """The model called ``model_id`` (its id or canonical slug); ``None`` if unknown."""
        self.models()
        return self._by_id.get(model_id)


def _index(models: Sequence[ModelInfo]) -> dict[str, ModelInfo]:
    """Models by id, and by canonical slug where that differs (ids win on a clash)."""
    index: dict[str, ModelInfo] = {}
    for model in models:
        slug = model.raw.get("canonical_slug")
        if isinstance(slug, str) and slug:
            index[slug] = model
    index.update((m.id, m) for m in models)
    return index
