"""The account data the fake OpenRouter serves (docs/openrouter-api.md §4.3, §7).

The ``/models`` catalogue, the ``/key`` data, the usage and cost of one answer (priced
from the catalogue) and the stats ``/generation`` reports for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ._frames import Chat, reasoning_text
from ._replies import StreamReply, content_text

__all__ = [
    "default_key_info",
    "default_models",
    "generation_stats",
    "model_prices",
    "reply_usage",
]


def _model(
    model_id: str,
    name: str,
    *,
    context: int | None,
    prices: tuple[str, str],
    params: Sequence[str],
    reasoning: dict[str, Any] | None = None,
    created: int = 1760000000,
    max_output: int | None = None,
) -> dict[str, Any]:
    """One ``GET /models`` entry in OpenRouter's shape (docs §7)."""
    entry: dict[str, Any] = {
        "id": model_id,
        "canonical_slug": model_id,
        "hugging_face_id": None,
        "name": name,
        "created": created,
        "description": f"{name}, as served by the fake OpenRouter.",
        "context_length": context,
        "architecture": {
            "modality": "text->text",
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "tokenizer": "Other",
            "instruct_type": None,
        },
        "pricing": {"prompt": prices[0], "completion": prices[1]},
        "top_provider": {
            "context_length": context,
            "max_completion_tokens": max_output,
            "is_moderated": False,
        },
        "per_request_limits": None,
        "supported_parameters": list(params),
        "default_parameters": {},
        "links": {"details": f"/api/v1/models/{model_id}/endpoints"},
    }
    if reasoning is not None:
        entry["reasoning"] = reasoning
    return entry


_BASIC = ("max_tokens", "temperature", "top_p", "stop", "seed")
_REASONING = ("include_reasoning", "reasoning", *_BASIC)
_TOOLS = ("tools", "tool_choice")  # models.dev: DeepSeek V4 Flash has tool_call = true


def default_models() -> list[dict[str, Any]]:
    """The fake's catalogue: one model for each case a model picker must handle."""
    return [
        _model(
            "deepseek/deepseek-v4-flash",
            "DeepSeek: DeepSeek V4 Flash",
            context=1048576,
            prices=("0.00000014", "0.00000028"),
            params=(*_REASONING, *_TOOLS),
            reasoning={"supported_efforts": ["high", "xhigh"], "default_effort": "high"},
            created=1777000000,
            max_output=393216,  # its top provider's (see _endpoints.py)
        ),
        _model(
            "meta-llama/llama-3.1-8b-instruct",
            "Meta: Llama 3.1 8B Instruct",
            context=131072,
            prices=("0.00000002", "0.00000005"),
            params=_BASIC,
        ),
        _model(
            "anthropic/claude-sonnet-4.6",
            "Anthropic: Claude Sonnet 4.6",
            context=1000000,
            prices=("0.000003", "0.000015"),
            params=(*_REASONING, "reasoning_effort", *_TOOLS),
            reasoning={"supported_efforts": None, "supports_max_tokens": True},
            max_output=64000,
        ),
        _model(
            "meta-llama/llama-3.3-70b-instruct:free",
            "Meta: Llama 3.3 70B Instruct (free)",
            context=65536,
            prices=("0", "0"),
            params=_BASIC,
        ),
        _model(
            "openai/gpt-5-nano",
            "OpenAI: GPT-5 Nano",
            context=400000,
            prices=("0.00000005", "0.0000004"),
            params=(*_REASONING, "reasoning_effort", *_TOOLS),
            max_output=128000,
            # Shape of the real 2026 entry (docs §2.2, CAS-26).
            reasoning={
                "mandatory": True,
                "supported_efforts": ["high", "medium", "low", "minimal"],
                "default_effort": "medium",
            },
        ),
        _model(
            "fakeco/mystery-1",
            "FakeCo: Mystery 1",
            context=None,  # context_length is nullable in the OpenAPI spec
            prices=("0.000001", "0.000002"),
            params=_BASIC,
        ),
    ]


def default_key_info(api_key: str) -> dict[str, Any]:
    """``GET /key`` data (docs §7) for an ordinary, non-management key."""
    return {
        "label": f"{api_key[:12]}...{api_key[-3:]}",
        "limit": 10.0,
        "limit_remaining": 7.25,
        "limit_reset": None,
        "include_byok_in_limit": False,
        "usage": 2.75,
        "usage_daily": 0.5,
        "usage_weekly": 1.0,
        "usage_monthly": 2.75,
        "byok_usage": 0.0,
        "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0,
        "byok_usage_monthly": 0.0,
        "is_free_tier": False,
        "is_management_key": False,
        "is_provisioning_key": False,
        "expires_at": None,
        "rate_limit": {
            "requests": -1,
            "interval": "10s",
            "note": "This field is deprecated and safe to ignore.",
        },
    }


def model_prices(models: list[dict[str, Any]], model_id: str) -> tuple[float, float]:
    """Per-token prices of a catalogue model; a variant suffix falls back to the base id."""
    by_id = {m.get("id"): m for m in models}
    entry = by_id.get(model_id) or by_id.get(model_id.split(":")[0]) or {}
    pricing = entry.get("pricing") or {}
    try:
        return float(pricing.get("prompt", 0)), float(pricing.get("completion", 0))
    except (TypeError, ValueError):
        return 0.0, 0.0


def reply_usage(
    messages: list[dict[str, Any]], reply: StreamReply, prices: tuple[float, float]
) -> dict[str, Any]:
    """The usage object (docs §4.3): tokens estimated as characters // 4."""
    if reply.usage is not None:
        return reply.usage
    reasoning = reasoning_text(reply)
    prompt = max(1, sum(len(content_text(m.get("content"))) for m in messages) // 4)
    calls = sum(len(call.name) + len(call.arguments_text) for call in reply.tool_calls)
    completion = max(1, (len(reply.text) + len(reasoning) + calls) // 4)
    prompt_cost = round(prompt * prices[0], 10)
    completion_cost = round(completion * prices[1], 10)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": round(prompt * prices[0] + completion * prices[1], 10),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": len(reasoning) // 4},
        "cost_details": {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": prompt_cost,
            "upstream_inference_completions_cost": completion_cost,
        },
    }


def generation_stats(
    chat: Chat,
    reply: StreamReply,
    usage: dict[str, Any],
    elapsed: float,
    *,
    streamed: bool,
    cancelled: bool,
) -> dict[str, Any]:
    """The stats ``GET /generation`` reports for one answer (docs §7); times are in ms."""
    finish: str | None = reply.finish
    if cancelled:
        finish = None
    elif reply.error is not None or reply.drop:
        finish = "error"
    details = usage.get("completion_tokens_details") or {}
    data = {
        "id": chat.generation_id,
        "upstream_id": f"up-{chat.generation_id}",
        "created_at": datetime.fromtimestamp(chat.created, timezone.utc).isoformat(),
        "model": chat.model,
        "provider_name": chat.provider,
        "streamed": streamed,
        "cancelled": cancelled,
        "latency": round(elapsed * 1000),
        "generation_time": round(elapsed * 1000),
        "moderation_latency": None,
        "tokens_prompt": usage.get("prompt_tokens"),
        "tokens_completion": usage.get("completion_tokens"),
        "native_tokens_prompt": usage.get("prompt_tokens"),
        "native_tokens_completion": usage.get("completion_tokens"),
        "native_tokens_reasoning": details.get("reasoning_tokens", 0),
        "native_tokens_cached": 0,
        "total_cost": usage.get("cost"),
        "usage": usage.get("cost"),
        "upstream_inference_cost": None,
        "cache_discount": None,
        "is_byok": False,
        "finish_reason": finish,
        "native_finish_reason": finish,
        "origin": "",
        "api_type": "completions",
    }
    return data
