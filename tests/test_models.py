"""The model catalogue: parsing /models, choosing, tables, prices and cost."""

from __future__ import annotations

from typing import Any

import pytest

from ormagic.engine.models import (
    ModelCatalog,
    ModelInfo,
    cost_of,
    format_price,
    models_table_html,
    models_table_text,
    parse_models,
    select_models,
)
from ormagic.errors import ConfigError
from ormagic.events import Usage

# Shaped like GET /api/v1/models entries (docs/openrouter-api.md §7): string prices.
FLASH: dict[str, Any] = {
    "id": "deepseek/deepseek-v4-flash",
    "canonical_slug": "deepseek/deepseek-v4-flash-20260424",
    "name": "DeepSeek: DeepSeek V4 Flash",
    "created": 1777000000,
    "description": "MoE with 284B total and 13B active parameters.",
    "context_length": 1048576,
    "pricing": {"prompt": "0.00000014", "completion": "0.00000028"},
    "top_provider": {"context_length": 1048576, "max_completion_tokens": 393216},
    "supported_parameters": ["include_reasoning", "reasoning", "max_tokens"],
    "reasoning": {"effort": ["high", "xhigh"]},
}
MINI: dict[str, Any] = {
    "id": "openai/gpt-4.1-mini",
    "name": "OpenAI: GPT-4.1 Mini",
    "created": 1744000000,
    "context_length": 1047576,
    "pricing": {"prompt": "0.0000004", "completion": "0.0000016"},
    "supported_parameters": ["max_tokens", "tools"],
}
SONNET: dict[str, Any] = {
    "id": "anthropic/claude-sonnet-4.6",
    "name": "Anthropic: Claude Sonnet 4.6",
    "created": 1770000000,
    "context_length": 200000,
    "pricing": {"prompt": "0.000003", "completion": "0.000015"},
    "supported_parameters": ["reasoning", "max_tokens"],
}
FREE: dict[str, Any] = {
    "id": "meta-llama/llama-4-scout:free",
    "name": "Meta: Llama 4 Scout (free)",
    "context_length": 128000,
    "pricing": {"prompt": "0", "completion": "0"},
}
AUTO: dict[str, Any] = {
    "id": "openrouter/auto",
    "name": "Auto Router",
    "created": 1700000000,
    "context_length": None,
    "pricing": {"prompt": "-1", "completion": "-1"},
}


def catalogue() -> list[ModelInfo]:
    return parse_models([FLASH, MINI, SONNET, FREE, AUTO])


def ids(models: list[ModelInfo]) -> list[str]:
    return [m.id for m in models]


# -- parsing ----------------------------------------------------------------------------


def test_parse_reads_the_fields_ormagic_uses() -> None:
    (flash,) = parse_models([FLASH])
    assert flash == ModelInfo(
        id="deepseek/deepseek-v4-flash",
        name="DeepSeek: DeepSeek V4 Flash",
        context_length=1048576,
        prompt_price=0.00000014,
        completion_price=0.00000028,
        reasoning=True,
        created=1777000000,
        raw=FLASH,
        max_output=393216,
        tools=False,
    )
    assert flash.raw["canonical_slug"] == "deepseek/deepseek-v4-flash-20260424"


def test_reasoning_comes_from_the_object_or_the_supported_parameters() -> None:
    with_object = {"id": "a/x", "reasoning": {}, "supported_parameters": []}
    with_param = {"id": "a/y", "supported_parameters": ["reasoning"]}
    with_neither = {"id": "a/z", "supported_parameters": ["include_reasoning"]}
    models = parse_models([with_object, with_param, with_neither])
    assert [m.reasoning for m in models] == [True, True, False]


def test_parse_is_tolerant_of_odd_entries() -> None:
    data: list[Any] = [
        {"name": "no id at all"},
        {"id": "", "name": "empty id"},
        "not an object",
        {
            "id": "odd/model",
            "context_length": "big",
            "created": True,
            "pricing": {"prompt": "abc", "completion": None},
        },
        {"id": "bare/model"},
        {"id": "variable/price", "pricing": {"prompt": "-1", "completion": "nan"}},
    ]
    odd, bare, variable = parse_models(data)
    assert (odd.id, odd.name, odd.context_length, odd.created) == (
        "odd/model",
        "odd/model",
        None,
        None,
    )
    assert (odd.prompt_price, odd.completion_price) == (None, None)
    assert (bare.prompt_price, bare.completion_price, bare.reasoning) == (None, None, False)
    assert (variable.prompt_price, variable.completion_price) == (None, None)


def test_prices_per_million() -> None:
    (flash,) = parse_models([FLASH])
    assert flash.prompt_per_million == pytest.approx(0.14, rel=1e-12)
    assert flash.completion_per_million == pytest.approx(0.28, rel=1e-12)
    (bare,) = parse_models([{"id": "bare/model"}])
    assert bare.prompt_per_million is None
    assert bare.completion_per_million is None


# -- format_price -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_million", "text"),
    [
        (0.14, "$0.14"),
        (0.28, "$0.28"),
        (3, "$3.00"),
        (15.0, "$15.00"),
        (0.075, "$0.075"),
        (0, "free"),
        (None, "?"),
        (-1_000_000, "?"),
        (1234.5, "$1,234.50"),
        (0.0000001, "$0.0000001"),
    ],
)
def test_format_price(per_million: float | None, text: str) -> None:
    assert format_price(per_million) == text


def test_format_price_of_parsed_string_prices_has_no_float_noise() -> None:
    (flash,) = parse_models([FLASH])
    assert format_price(flash.prompt_per_million) == "$0.14"
    assert format_price(flash.completion_per_million) == "$0.28"


# -- select_models ----------------------------------------------------------------------


def test_no_options_keeps_the_catalogue_order() -> None:
    assert ids(select_models(catalogue())) == [
        "deepseek/deepseek-v4-flash",
        "openai/gpt-4.1-mini",
        "anthropic/claude-sonnet-4.6",
        "meta-llama/llama-4-scout:free",
        "openrouter/auto",
    ]


def test_filter_matches_id_or_name_case_insensitively() -> None:
    assert ids(select_models(catalogue(), filter="DEEPSEEK")) == ["deepseek/deepseek-v4-flash"]
    # "claude" is in the id, "Router" in both, "auto router" only in the name
    assert ids(select_models(catalogue(), filter="claude")) == ["anthropic/claude-sonnet-4.6"]
    assert ids(select_models(catalogue(), filter="Router")) == ["openrouter/auto"]
    assert ids(select_models(catalogue(), filter="auto router")) == ["openrouter/auto"]
    assert select_models(catalogue(), filter="nothing-like-this") == []


def test_reasoning_only() -> None:
    assert ids(select_models(catalogue(), reasoning_only=True)) == [
        "deepseek/deepseek-v4-flash",
        "anthropic/claude-sonnet-4.6",
    ]


def test_sort_by_price_cheapest_first_unknown_last() -> None:
    assert ids(select_models(catalogue(), sort="price")) == [
        "meta-llama/llama-4-scout:free",
        "deepseek/deepseek-v4-flash",
        "openai/gpt-4.1-mini",
        "anthropic/claude-sonnet-4.6",
        "openrouter/auto",
    ]


def test_sort_by_context_largest_first_unknown_last() -> None:
    assert ids(select_models(catalogue(), sort="context")) == [
        "deepseek/deepseek-v4-flash",
        "openai/gpt-4.1-mini",
        "anthropic/claude-sonnet-4.6",
        "meta-llama/llama-4-scout:free",
        "openrouter/auto",
    ]


def test_sort_newest_first_unknown_last() -> None:
    assert ids(select_models(catalogue(), sort="newest")) == [
        "deepseek/deepseek-v4-flash",
        "anthropic/claude-sonnet-4.6",
        "openai/gpt-4.1-mini",
        "openrouter/auto",
        "meta-llama/llama-4-scout:free",
    ]


def test_ties_are_broken_by_id() -> None:
    same = [{"id": i, "pricing": {"prompt": "0", "completion": "0"}} for i in ("c/c", "a/a", "b/b")]
    assert ids(select_models(parse_models(same), sort="price")) == ["a/a", "b/b", "c/c"]


def test_filter_reasoning_and_sort_combine() -> None:
    chosen = select_models(catalogue(), filter="a", reasoning_only=True, sort="price")
    assert ids(chosen) == ["deepseek/deepseek-v4-flash", "anthropic/claude-sonnet-4.6"]


def test_unknown_sort_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        select_models(catalogue(), sort="cheapest")  # type: ignore[arg-type]
    assert str(info.value) == "Unknown sort 'cheapest': use price, context or newest."


# -- tables -----------------------------------------------------------------------------


def test_text_table_of_two_models() -> None:
    text = models_table_text(parse_models([FLASH, MINI]))
    assert text == (
        "id                          name                           context  max output"
        "  input $/M  output $/M  reasoning  tools\n"
        "deepseek/deepseek-v4-flash  DeepSeek: DeepSeek V4 Flash  1,048,576     393,216"
        "      $0.14       $0.28  yes        no\n"
        "openai/gpt-4.1-mini         OpenAI: GPT-4.1 Mini         1,047,576           \u2013"
        "      $0.40       $1.60  no         yes"
    )


def test_text_table_shows_missing_figures_as_a_dash_and_keeps_rows_on_one_line() -> None:
    odd = {"id": "odd/model", "name": "Two\nlines", "pricing": {"prompt": "0", "completion": "x"}}
    assert models_table_text(parse_models([odd])) == (
        "id         name       context  max output  input $/M  output $/M  reasoning  tools\n"
        "odd/model  Two lines        \u2013           \u2013       free           \u2013  no"
        "         no"
    )
    assert models_table_text([]) == "No models."


def test_html_table_has_the_same_columns_right_aligned_numbers() -> None:
    table = models_table_html(parse_models([FLASH]))
    right = '<td style="text-align:right">'
    assert table == (
        "<table><thead><tr><th>id</th><th>name</th>"
        '<th style="text-align:right">context</th>'
        '<th style="text-align:right">max output</th>'
        '<th style="text-align:right">input $/M</th>'
        '<th style="text-align:right">output $/M</th>'
        "<th>reasoning</th><th>tools</th></tr></thead><tbody><tr>"
        "<td>deepseek/deepseek-v4-flash</td>"
        '<td title="MoE with 284B total and 13B active parameters.">'
        "DeepSeek: DeepSeek V4 Flash</td>"
        f"{right}1,048,576</td>{right}393,216</td>{right}$0.14</td>{right}$0.28</td>"
        "<td>yes</td><td>no</td></tr></tbody></table>"
    )


def test_html_table_escapes_names_ids_and_descriptions() -> None:
    hostile = {
        "id": "evil/<script>alert(1)</script>",
        "name": "<img src=x onerror=alert(1)>",
        "description": '"><img src=x onerror=alert(2)>',
        "pricing": {"prompt": "0.000001", "completion": "0.000002"},
    }
    table = models_table_html(parse_models([hostile]))
    assert "<img" not in table
    assert "<script" not in table
    assert (
        '<td title="&quot;&gt;&lt;img src=x onerror=alert(2)&gt;">'
        "&lt;img src=x onerror=alert(1)&gt;</td>"
    ) in table
    assert "<td>evil/&lt;script&gt;alert(1)&lt;/script&gt;</td>" in table


def test_empty_html_table() -> None:
    assert models_table_html([]) == "<p>No models.</p>"


# -- cost_of ----------------------------------------------------------------------------


def test_cost_from_prices_when_the_server_sent_none() -> None:
    (flash,) = parse_models([FLASH])
    usage = Usage(prompt_tokens=12, completion_tokens=9, reasoning_tokens=6)
    # 12 x 0.14e-6 + 9 x 0.28e-6; the 6 reasoning tokens are inside the 9 (docs §4.3)
    assert cost_of(usage, flash) == pytest.approx(4.2e-6, rel=1e-12)


def test_server_cost_wins() -> None:
    (flash,) = parse_models([FLASH])
    usage = Usage(prompt_tokens=12, completion_tokens=9, reasoning_tokens=6, cost=0.0000042)
    assert cost_of(usage, flash) == 0.0000042
    assert cost_of(usage, None) == 0.0000042
    assert cost_of(Usage(prompt_tokens=12, completion_tokens=9, cost=0.0), flash) == 0.0


def test_cost_unknown_without_model_or_prices() -> None:
    usage = Usage(prompt_tokens=12, completion_tokens=9)
    assert cost_of(usage, None) is None
    (auto,) = parse_models([AUTO])
    assert cost_of(usage, auto) is None


# -- ModelCatalog -----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingFetch:
    def __init__(self, data: list[dict[str, Any]]) -> None:
        self.data = data
        self.calls = 0

    def __call__(self) -> list[dict[str, Any]]:
        self.calls += 1
        return self.data


def test_catalog_caches_for_ttl_seconds() -> None:
    clock, fetch = FakeClock(), CountingFetch([FLASH, MINI])
    catalog = ModelCatalog(fetch, ttl=300.0, clock=clock)
    assert fetch.calls == 0  # nothing fetched until asked
    assert ids(catalog.models()) == ["deepseek/deepseek-v4-flash", "openai/gpt-4.1-mini"]
    clock.now += 299.9
    catalog.models()
    assert catalog.get("openai/gpt-4.1-mini") is not None
    assert fetch.calls == 1
    clock.now += 0.1
    catalog.models()
    assert fetch.calls == 2
    catalog.models(refresh=True)
    assert fetch.calls == 3
    catalog.models()
    assert fetch.calls == 3


def test_catalog_sees_new_data_after_expiry() -> None:
    clock, fetch = FakeClock(), CountingFetch([FLASH])
    catalog = ModelCatalog(fetch, ttl=60.0, clock=clock)
    assert catalog.get("openai/gpt-4.1-mini") is None
    fetch.data = [FLASH, MINI]
    assert catalog.get("openai/gpt-4.1-mini") is None  # still cached
    clock.now += 60
    mini = catalog.get("openai/gpt-4.1-mini")
    assert mini is not None
    assert mini.name == "OpenAI: GPT-4.1 Mini"


def test_catalog_get_by_id_or_canonical_slug() -> None:
    catalog = ModelCatalog(CountingFetch([FLASH, MINI]), clock=FakeClock())
    flash = catalog.get("deepseek/deepseek-v4-flash")
    assert flash is not None
    assert flash.id == "deepseek/deepseek-v4-flash"
    assert catalog.get("deepseek/deepseek-v4-flash-20260424") == flash
    assert catalog.get("deepseek/unknown") is None


def test_catalog_models_is_a_copy() -> None:
    catalog = ModelCatalog(CountingFetch([FLASH, MINI]), clock=FakeClock())
    catalog.models().clear()
    assert len(catalog.models()) == 2
