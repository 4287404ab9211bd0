"""Who serves each model of the fake catalogue: ``GET /models/{author}/{slug}/endpoints``.

The shape follows OpenRouter's ``ListEndpointsResponse`` / ``PublicEndpoint`` (appendix of
docs/openrouter-api.md; OpenRouter SDK reference). Each model's first endpoint is its top
provider and agrees with the model's ``/models`` entry (prices, context length, max
output), as OpenRouter's own listing does. DeepSeek V4 Flash has four providers with
different figures, one of them (Novita) with no latency or throughput data yet, so that a
table and a chart can be tested against exact values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["default_endpoints", "endpoints_body", "hide_performance"]

_TEXT = ("max_tokens", "temperature", "top_p", "stop", "seed")
_REASONING = ("reasoning", "include_reasoning")
_TOOLS = ("tools", "tool_choice")


def _stats(p50: float | None) -> dict[str, float] | None:
    """Percentiles over the last 30 minutes; ``None`` when the provider has no data yet."""
    if p50 is None:
        return None
    return {"p50": p50, "p75": round(p50 * 1.3, 1), "p90": round(p50 * 1.8, 1), "p99": p50 * 3}


def _endpoint(
    model: Mapping[str, Any],
    provider: str,
    tag: str,
    *,
    quantization: str | None,
    context: int | None,
    max_output: int | None,
    prices: tuple[str, str],
    latency_ms: float | None,
    throughput: float | None,
    uptime: float | None,
    params: Sequence[str],
    status: int | None = 0,
) -> dict[str, Any]:
    """One ``PublicEndpoint``. Latency is in milliseconds (time to first token) and
    throughput in tokens per second, as OpenRouter's SDK reference describes them."""
    name = str(model.get("name") or model.get("id"))
    return {
        "name": f"{provider} | {model.get('id')}",
        "model_id": model.get("id"),
        "model_name": name,
        "context_length": context,
        "pricing": {"prompt": prices[0], "completion": prices[1]},
        "provider_name": provider,
        "tag": tag,
        "quantization": quantization,
        "max_completion_tokens": max_output,
        "max_prompt_tokens": None,
        "supported_parameters": list(params),
        "status": status,
        "uptime_last_5m": uptime,
        "uptime_last_30m": uptime,
        "uptime_last_1d": uptime,
        "supports_implicit_caching": False,
        "latency_last_30m": _stats(latency_ms),
        "throughput_last_30m": _stats(throughput),
    }


def _deepseek(model: Mapping[str, Any]) -> list[dict[str, Any]]:
    full = (*_TEXT, *_REASONING, *_TOOLS)
    return [
        _endpoint(
            model,
            "DeepSeek",
            "deepseek",
            quantization="fp8",
            context=1048576,
            max_output=393216,
            prices=("0.00000014", "0.00000028"),
            latency_ms=820.0,
            throughput=61.5,
            uptime=99.2,
            params=full,
        ),
        _endpoint(
            model,
            "DeepInfra",
            "deepinfra/fp4",
            quantization="fp4",
            context=262144,
            max_output=65536,
            prices=("0.0000001", "0.0000003"),
            latency_ms=410.0,
            throughput=142.3,
            uptime=100.0,
            params=full,
        ),
        _endpoint(
            model,
            "Chutes",
            "chutes",
            quantization="fp8",
            context=163840,
            max_output=163840,
            prices=("0.00000008", "0.0000002"),
            latency_ms=2100.0,
            throughput=35.2,
            uptime=91.4,
            params=(*_TEXT, *_REASONING),
            status=-2,
        ),
        _endpoint(
            model,
            "Novita",
            "novita",
            quantization=None,
            context=1048576,
            max_output=131072,
            prices=("0.0000002", "0.0000004"),
            latency_ms=None,  # a new provider: no latency or throughput data yet
            throughput=None,
            uptime=97.5,
            params=full,
        ),
    ]


# the single provider of each other catalogue model: (provider, tag, quantization)
_SINGLE = {
    "meta-llama/llama-3.1-8b-instruct": ("DeepInfra", "deepinfra/bf16", "bf16"),
    "anthropic/claude-sonnet-4.6": ("Anthropic", "anthropic", None),
    "meta-llama/llama-3.3-70b-instruct:free": ("Chutes", "chutes", "fp8"),
    "openai/gpt-5-nano": ("OpenAI", "openai", None),
    "fakeco/mystery-1": ("FakeCo", "fakeco", "unknown"),
}


def _single(model: Mapping[str, Any], provider: str, tag: str, quant: str | None) -> dict[str, Any]:
    pricing = model.get("pricing") or {}
    top = model.get("top_provider") or {}
    params = model.get("supported_parameters") or _TEXT
    return _endpoint(
        model,
        provider,
        tag,
        quantization=quant,
        context=model.get("context_length"),
        max_output=top.get("max_completion_tokens"),
        prices=(str(pricing.get("prompt", "0")), str(pricing.get("completion", "0"))),
        latency_ms=650.0,
        throughput=80.0,
        uptime=99.9,
        params=params,
    )


def default_endpoints(models: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Endpoints by model id for the catalogue ``models`` (the fake's default catalogue)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for model in models:
        model_id = model.get("id")
        if model_id == "deepseek/deepseek-v4-flash":
            found[model_id] = _deepseek(model)
        elif isinstance(model_id, str) and model_id in _SINGLE:
            found[model_id] = [_single(model, *_SINGLE[model_id])]
    return found


def endpoints_body(model: Mapping[str, Any], endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``ListEndpointsResponse`` body for one model."""
    return {
        "data": {
            "id": model.get("id"),
            "name": model.get("name"),
            "created": model.get("created"),
            "description": model.get("description"),
            "architecture": model.get("architecture"),
            "endpoints": endpoints,
        }
    }


def hide_performance(endpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What an unauthenticated request sees: latency and throughput are ``null`` ("only
    visible when authenticated with an API key or cookie", OpenRouter SDK reference)."""
    return [{**e, "latency_last_30m": None, "throughput_last_30m": None} for e in endpoints]
