"""Who serves a model and how well: ``GET /models/{author}/{slug}/endpoints``.

The figures behind the "Providers", "Performance" and "Uptime" sections of a model's page
on openrouter.ai (docs/openrouter-api.md, appendix): one :class:`ProviderInfo` per
provider, sortable, as a table (``%chat providers``) and as points for a chart.

Units: prices are USD per token (strings, like ``/models``); ``latency_last_30m`` is time
to first token in **milliseconds** and ``throughput_last_30m`` tokens per second, both
percentiles over the last 30 minutes. (The appendix says seconds for latency; the SDK
reference it cites, ``PercentileStats``, says milliseconds, with 25.5 as its example.)
Uptime is a percentage; ormagic shows the last 30 minutes', the same window as the
performance figures. ``status`` is an open enum of integers (0, -1, -2, -3, -5, -10)
whose meanings are undocumented: 0 is shown as ``ok``, a negative value as degraded.
Every value came from the network: tables escape it (HTML) and keep it on one line.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, NotFoundError, OrmagicError
from .models import ModelInfo, api_int, api_number, format_price
from .tables import MISSING, html_table, one_line, text_table, yes_no

__all__ = [
    "PROVIDER_TABLE_SORTS",
    "ModelProviders",
    "ProviderInfo",
    "chart_points",
    "closest_models",
    "fetch_providers",
    "parse_endpoints",
    "providers_table_html",
    "providers_table_text",
    "sort_providers",
]

PROVIDER_TABLE_SORTS = ("price", "latency", "throughput", "uptime")

_HEADERS = (
    "provider",
    "slug",
    "quant",
    "context",
    "max output",
    "input $/M",
    "output $/M",
    "latency p50",
    "tok/s p50",
    "uptime",
    "tools",
    "reasoning",
    "status",
)
_RIGHT_ALIGNED = frozenset(
    {"context", "max output", "input $/M", "output $/M", "latency p50", "tok/s p50", "uptime"}
)


@dataclass(frozen=True)
class ProviderInfo:
    """One provider of a model (an entry of ``endpoints``)."""

    provider: str
    slug: str | None
    """The ``tag``: what ``--provider`` (``provider.order``) takes."""
    quantization: str | None
    context_length: int | None
    max_output: int | None
    prompt_price: float | None
    """USD per prompt token."""
    completion_price: float | None
    latency: float | None
    """Median time to first token over the last 30 minutes, in seconds."""
    throughput: float | None
    """Median tokens per second over the last 30 minutes."""
    uptime: float | None
    """Percent of requests served over the last 30 minutes."""
    tools: bool | None
    reasoning: bool | None
    status: int | None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def prompt_per_million(self) -> float | None:
        return None if self.prompt_price is None else self.prompt_price * 1e6

    @property
    def completion_per_million(self) -> float | None:
        return None if self.completion_price is None else self.completion_price * 1e6

    @property
    def price_per_million(self) -> float | None:
        """Input plus output per million tokens: what ``--sort price`` and the chart use."""
        if self.prompt_price is None or self.completion_price is None:
            return None
        return (self.prompt_price + self.completion_price) * 1e6


@dataclass(frozen=True)
class ModelProviders:
    """A model and its providers, in the order OpenRouter listed them."""

    model_id: str
    name: str
    providers: list[ProviderInfo]


# -- parsing ----------------------------------------------------------------------------


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _p50(value: object) -> float | None:
    return api_number(value.get("p50")) if isinstance(value, Mapping) else None


def _parse_endpoint(entry: Mapping[str, Any]) -> ProviderInfo:
    pricing = entry.get("pricing")
    pricing = pricing if isinstance(pricing, Mapping) else {}
    params = entry.get("supported_parameters")
    known = isinstance(params, list)
    params = params if isinstance(params, list) else []
    latency_ms = _p50(entry.get("latency_last_30m"))
    return ProviderInfo(
        provider=_text(entry.get("provider_name")) or _text(entry.get("name")) or "?",
        slug=_text(entry.get("tag")),
        quantization=_text(entry.get("quantization")),
        context_length=api_int(entry.get("context_length")),
        max_output=api_int(entry.get("max_completion_tokens")),
        prompt_price=api_number(pricing.get("prompt")),
        completion_price=api_number(pricing.get("completion")),
        latency=None if latency_ms is None else latency_ms / 1000,
        throughput=_p50(entry.get("throughput_last_30m")),
        uptime=api_number(entry.get("uptime_last_30m")),
        tools=("tools" in params) if known else None,
        reasoning=("reasoning" in params) if known else None,
        status=api_int(entry.get("status")),
        raw=entry,
    )


def parse_endpoints(data: Mapping[str, Any], model_id: str) -> ModelProviders:
    """The ``data`` object of the endpoints response; odd entries are tolerated."""
    endpoints = data.get("endpoints")
    entries = endpoints if isinstance(endpoints, list) else []
    return ModelProviders(
        model_id=_text(data.get("id")) or model_id,
        name=_text(data.get("name")) or model_id,
        providers=[_parse_endpoint(e) for e in entries if isinstance(e, Mapping)],
    )


# -- choosing ---------------------------------------------------------------------------


def _sort_key(sort: str) -> Callable[[ProviderInfo], tuple[bool, float, str]]:
    """Best first, missing figures last, ties by provider name (a stable listing)."""
    keys: dict[str, Callable[[ProviderInfo], float | None]] = {
        "price": lambda p: p.price_per_million,
        "latency": lambda p: p.latency,
        "throughput": lambda p: None if p.throughput is None else -p.throughput,
        "uptime": lambda p: None if p.uptime is None else -p.uptime,
    }
    if sort not in keys:
        raise ConfigError(f"Unknown sort {sort!r}: use {', '.join(PROVIDER_TABLE_SORTS)}.")
    figure = keys[sort]

    def key(p: ProviderInfo) -> tuple[bool, float, str]:
        value = figure(p)
        return (value is None, value or 0.0, p.provider.casefold())

    return key


def sort_providers(providers: Sequence[ProviderInfo], sort: str | None) -> list[ProviderInfo]:
    """``price`` (input + output, cheapest first), ``latency`` (lowest first),
    ``throughput`` or ``uptime`` (highest first); ``None`` keeps OpenRouter's order."""
    return list(providers) if sort is None else sorted(providers, key=_sort_key(sort))


def closest_models(wanted: str, ids: Sequence[str], n: int = 3) -> list[str]:
    """Model ids close to ``wanted``: those containing it, then the most similar ones
    (``difflib``), comparing with whole ids and with their part after the author."""
    needle = wanted.strip().casefold()
    if not needle:
        return []
    found = [i for i in ids if needle in i.casefold()]
    by_key: dict[str, str] = {}
    for model_id in ids:
        by_key.setdefault(model_id.casefold(), model_id)
        by_key.setdefault(model_id.partition("/")[2].casefold(), model_id)
    for key in difflib.get_close_matches(needle, list(by_key), n=n * 2, cutoff=0.6):
        found.append(by_key[key])
    return list(dict.fromkeys(found))[:n]


def fetch_providers(
    get_endpoints: Callable[[str], Mapping[str, Any]],
    model_id: str,
    catalogue: Callable[[], Sequence[ModelInfo]],
) -> ModelProviders:
    """The providers of ``model_id``. A model that does not exist is one
    :class:`ConfigError` line naming the closest ids from ``catalogue`` (``/models``)."""
    try:
        return parse_endpoints(get_endpoints(model_id), model_id)
    except NotFoundError:
        pass
    try:
        ids = [m.id for m in catalogue()]
    except OrmagicError:  # the list is a courtesy: without it, the line says less
        ids = []
    closest = closest_models(model_id, ids)
    hint = f"; closest: {', '.join(closest)}" if closest else " (%chat models lists them)"
    raise ConfigError(f"No model {model_id!r} on OpenRouter{hint}.")


def chart_points(
    providers: Sequence[ProviderInfo], measure: str
) -> tuple[list[tuple[str, float, float]], list[str]]:
    """``(label, price $/M, speed)`` per provider with both figures (speed: ``throughput``
    in tokens/s or ``latency`` in s), and the names of those left out for lack of one."""
    names = [one_line(p.provider) for p in providers]
    points, left_out = [], []
    for p, name in zip(providers, names, strict=True):
        speed = p.throughput if measure == "throughput" else p.latency
        price = p.price_per_million
        if speed is None or price is None:
            left_out.append(name)
            continue
        label = f"{name} ({one_line(p.slug)})" if names.count(name) > 1 and p.slug else name
        points.append((label, price, speed))
    return points, left_out


# -- tables -----------------------------------------------------------------------------


def _count(n: int | None) -> str:
    return MISSING if n is None else f"{n:,}"


def _price(per_million: float | None) -> str:
    return MISSING if per_million is None else format_price(per_million)


def _status(status: int | None) -> str:
    if status is None:
        return MISSING
    if status == 0:
        return "ok"
    return f"degraded ({status})" if status < 0 else str(status)


def _row(p: ProviderInfo) -> tuple[str, ...]:
    return (
        one_line(p.provider),
        one_line(p.slug or MISSING),
        one_line(p.quantization or MISSING),
        _count(p.context_length),
        _count(p.max_output),
        _price(p.prompt_per_million),
        _price(p.completion_per_million),
        MISSING if p.latency is None else f"{p.latency:.2f} s",
        MISSING if p.throughput is None else f"{p.throughput:.1f}",
        MISSING if p.uptime is None else f"{p.uptime:.1f}%",
        yes_no(p.tools),
        yes_no(p.reasoning),
        _status(p.status),
    )


def providers_table_text(providers: Sequence[ProviderInfo]) -> str:
    """An aligned plain-text table, one row per provider; a missing figure is :data:`MISSING`."""
    if not providers:
        return "No providers serve this model right now."
    return text_table(_HEADERS, [_row(p) for p in providers], _RIGHT_ALIGNED)


def providers_table_html(providers: Sequence[ProviderInfo]) -> str:
    """The same table as HTML, every value escaped; the endpoint's name is the tooltip."""
    if not providers:
        return "<p>No providers serve this model right now.</p>"
    titles = []
    for p in providers:
        name = p.raw.get("name")
        titles.append({"provider": name} if isinstance(name, str) else {})
    return html_table(_HEADERS, [_row(p) for p in providers], _RIGHT_ALIGNED, titles)
