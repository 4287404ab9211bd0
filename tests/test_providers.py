"""A model's providers: the endpoints route, the table, sorting, suggestions and the chart."""

from __future__ import annotations

import base64
import io
import struct
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ormagic.client.http import OpenRouterClient
from ormagic.client.settings import ClientSettings, Secret
from ormagic.engine.models import models_table_text, parse_models
from ormagic.engine.providers import (
    ProviderInfo,
    chart_points,
    closest_models,
    fetch_providers,
    parse_endpoints,
    providers_table_html,
    providers_table_text,
    sort_providers,
)
from ormagic.errors import ConfigError, NotFoundError
from ormagic.render.chart import chart_bundle, price_chart_png
from ormagic.testing.fake_openrouter import FakeOpenRouter

FLASH = "deepseek/deepseek-v4-flash"
DASH = "\u2013"

# every figure of the fake's four DeepSeek providers, as a user reads them
FLASH_TABLE = (
    "provider   slug           quant    context  max output  input $/M  output $/M"
    "  latency p50  tok/s p50  uptime  tools  reasoning  status\n"
    "DeepSeek   deepseek       fp8    1,048,576     393,216      $0.14       $0.28"
    "       0.82 s       61.5   99.2%  yes    yes        ok\n"
    "DeepInfra  deepinfra/fp4  fp4      262,144      65,536      $0.10       $0.30"
    "       0.41 s      142.3  100.0%  yes    yes        ok\n"
    "Chutes     chutes         fp8      163,840     163,840      $0.08       $0.20"
    "       2.10 s       35.2   91.4%  no     yes        degraded (-2)\n"
    f"Novita     novita         {DASH}      1,048,576     131,072      $0.20       $0.40"
    f"            {DASH}          {DASH}   97.5%  yes    yes        ok"
)


@pytest.fixture
def client(fake_openrouter: FakeOpenRouter) -> Iterator[OpenRouterClient]:
    settings = ClientSettings(
        api_key=Secret(fake_openrouter.api_key), base_url=fake_openrouter.base_url
    )
    with OpenRouterClient(settings) as c:
        yield c


def providers_of(client: OpenRouterClient, model: str = FLASH) -> list[ProviderInfo]:
    return parse_endpoints(client.get_endpoints(model), model).providers


def names(providers: list[ProviderInfo]) -> list[str]:
    return [p.provider for p in providers]


# -- the fake's route -------------------------------------------------------------------


def test_endpoints_route_shape_and_the_key_unlocks_performance(
    fake_openrouter: FakeOpenRouter,
) -> None:
    url = f"{fake_openrouter.base_url}/models/{FLASH}/endpoints"
    anonymous = httpx.get(url, timeout=5).json()["data"]
    assert (anonymous["id"], anonymous["name"]) == (FLASH, "DeepSeek: DeepSeek V4 Flash")
    assert [e["tag"] for e in anonymous["endpoints"]] == [
        "deepseek",
        "deepinfra/fp4",
        "chutes",
        "novita",
    ]
    # without a key OpenRouter leaves the performance figures out
    assert {e["latency_last_30m"] for e in anonymous["endpoints"]} == {None}
    headers = {"Authorization": f"Bearer {fake_openrouter.api_key}"}
    keyed = httpx.get(url, headers=headers, timeout=5).json()["data"]["endpoints"]
    assert keyed[0]["latency_last_30m"]["p50"] == 820.0
    assert keyed[0]["throughput_last_30m"]["p50"] == 61.5
    assert keyed[3]["latency_last_30m"] is None  # Novita: no data yet
    missing = httpx.get(f"{fake_openrouter.base_url}/models/no/such/endpoints", timeout=5)
    assert missing.status_code == 404


def test_client_sends_the_key_and_reads_every_figure(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    providers = providers_of(client)
    [request] = fake_openrouter.requests
    assert request.path == f"/api/v1/models/{FLASH}/endpoints"
    assert request.headers["authorization"] == f"Bearer {fake_openrouter.api_key}"
    deepseek = providers[0]
    assert (deepseek.provider, deepseek.slug, deepseek.quantization) == (
        "DeepSeek",
        "deepseek",
        "fp8",
    )
    assert (deepseek.context_length, deepseek.max_output) == (1048576, 393216)
    assert (deepseek.prompt_per_million, deepseek.completion_per_million) == pytest.approx(
        (0.14, 0.28)
    )
    assert deepseek.latency == pytest.approx(0.82)  # milliseconds on the wire, seconds here
    assert (deepseek.throughput, deepseek.uptime, deepseek.status) == (61.5, 99.2, 0)
    assert (deepseek.tools, deepseek.reasoning) == (True, True)
    assert (providers[2].tools, providers[2].status) == (False, -2)


def test_a_malformed_id_is_not_found_without_a_request(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    with pytest.raises(NotFoundError):
        client.get_endpoints("sonnet")
    assert fake_openrouter.requests == []


# -- the table --------------------------------------------------------------------------


def test_table_shows_every_figure_exactly(client: OpenRouterClient) -> None:
    assert providers_table_text(providers_of(client)) == FLASH_TABLE


def test_missing_figures_are_a_dash_never_zero() -> None:
    data = {"endpoints": [{"provider_name": "New", "pricing": {}, "latency_last_30m": None}]}
    [row] = providers_table_text(parse_endpoints(data, "a/b").providers).splitlines()[1:]
    assert row.split() == ["New", *[DASH] * 12]
    assert "0" not in row


def test_hostile_names_are_escaped_in_html_and_kept_on_one_line() -> None:
    data = {
        "endpoints": [
            {
                "name": '"><img src=x onerror=alert(2)>',
                "provider_name": "<img src=x onerror=alert(1)>",
                "tag": "evil\nslug",
                "pricing": {"prompt": "0.000001", "completion": "0.000002"},
            }
        ]
    }
    providers = parse_endpoints(data, "a/b").providers
    table = providers_table_html(providers)
    assert "<img" not in table
    assert (
        '<td title="&quot;&gt;&lt;img src=x onerror=alert(2)&gt;">'
        "&lt;img src=x onerror=alert(1)&gt;</td><td>evil slug</td>"
    ) in table
    assert (
        providers_table_text(providers)
        .splitlines()[1]
        .startswith("<img src=x onerror=alert(1)>  evil slug")
    )


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        (None, ["DeepSeek", "DeepInfra", "Chutes", "Novita"]),  # OpenRouter's order
        ("price", ["Chutes", "DeepInfra", "DeepSeek", "Novita"]),  # $0.28, $0.40, $0.42, $0.60
        ("latency", ["DeepInfra", "DeepSeek", "Chutes", "Novita"]),  # no figure: last
        ("throughput", ["DeepInfra", "DeepSeek", "Chutes", "Novita"]),  # no figure: last
        ("uptime", ["DeepInfra", "DeepSeek", "Novita", "Chutes"]),
    ],
)
def test_sorting(client: OpenRouterClient, sort: str | None, order: list[str]) -> None:
    assert names(sort_providers(providers_of(client), sort)) == order


def test_unknown_sort_is_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        sort_providers([], "speed")
    assert str(info.value) == "Unknown sort 'speed': use price, latency, throughput, uptime."


def test_the_models_table_agrees_with_the_top_provider(
    fake_openrouter: FakeOpenRouter, client: OpenRouterClient
) -> None:
    """/models and the endpoints show the same context, max output and prices."""
    models = parse_models(client.get_models())
    model_row = models_table_text([m for m in models if m.id == FLASH]).splitlines()[1].split()
    provider_row = providers_table_text(providers_of(client)).splitlines()[1].split()
    # id, name (4 words), context, max output, input, output, reasoning, tools
    assert model_row[5:9] == provider_row[3:7] == ["1,048,576", "393,216", "$0.14", "$0.28"]
    # provider, slug, quant, ..., latency ("0.82 s": two words), tok/s, uptime, tools, reasoning
    reasoning, tools = model_row[9:]
    assert (reasoning, tools) == (provider_row[12], provider_row[11]) == ("yes", "yes")


# -- unknown models ---------------------------------------------------------------------


def catalogue(client: OpenRouterClient) -> Any:
    return lambda: parse_models(client.get_models())


@pytest.mark.parametrize(
    ("wanted", "line"),
    [
        (
            "deepseek/deepsek-v4",
            "No model 'deepseek/deepsek-v4' on OpenRouter; closest: deepseek/deepseek-v4-flash.",
        ),
        (
            "sonnet",  # no author: never sent, still suggested
            "No model 'sonnet' on OpenRouter; closest: anthropic/claude-sonnet-4.6.",
        ),
        (
            "meta-llama/llama-3.3-70b",
            "No model 'meta-llama/llama-3.3-70b' on OpenRouter; closest: "
            "meta-llama/llama-3.3-70b-instruct:free, meta-llama/llama-3.1-8b-instruct.",
        ),
        ("zzz/qqq", "No model 'zzz/qqq' on OpenRouter (%chat models lists them)."),
    ],
)
def test_unknown_model_names_the_closest_ids(
    client: OpenRouterClient, wanted: str, line: str
) -> None:
    with pytest.raises(ConfigError) as info:
        fetch_providers(client.get_endpoints, wanted, catalogue(client))
    assert str(info.value) == line


def test_closest_models_prefers_containing_then_similar() -> None:
    ids = ["openai/gpt-5-nano", "openai/gpt-5", "anthropic/claude-sonnet-4.6", "x/gpt5"]
    assert closest_models("gpt-5", ids) == ["openai/gpt-5-nano", "openai/gpt-5", "x/gpt5"]
    assert closest_models("", ids) == []


# -- the chart --------------------------------------------------------------------------


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def point_pixels(png: bytes) -> int:
    """How many pixels have the colour of the chart's points (#3b6ea8)."""
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(png), format="png")
    red, green, blue = (pixels[..., i] * 255 for i in range(3))
    return int(((abs(red - 0x3B) < 3) & (abs(green - 0x6E) < 3) & (abs(blue - 0xA8) < 3)).sum())


def test_chart_points_leave_out_providers_without_the_figure(client: OpenRouterClient) -> None:
    providers = providers_of(client)
    points, left_out = chart_points(providers, "throughput")
    assert [(label, round(x, 2), y) for label, x, y in points] == [
        ("DeepSeek", 0.42, 61.5),
        ("DeepInfra", 0.4, 142.3),
        ("Chutes", 0.28, 35.2),
    ]
    assert left_out == ["Novita"]
    latency, _ = chart_points(providers, "latency")
    assert [y for _, _, y in latency] == pytest.approx([0.82, 0.41, 2.1])


def test_chart_is_a_real_png_with_a_point_per_provider(client: OpenRouterClient) -> None:
    points, _ = chart_points(providers_of(client), "throughput")
    bundle = chart_bundle(points, title=f"{FLASH}: providers", measure="throughput")
    assert bundle is not None
    assert (
        bundle["text/plain"] == "[chart: price against throughput for DeepSeek, DeepInfra, Chutes]"
    )
    png = base64.b64decode(bundle["image/png"])
    assert png_size(png) == (640, 360)
    assert len(png) > 10_000  # axes, labels and points, not an empty canvas
    one = price_chart_png(points[:1], title="one", measure="throughput")
    assert one is not None
    # three points draw about three times the pixels of one
    assert 2.5 * point_pixels(one) < point_pixels(png) < 3.5 * point_pixels(one)


def test_chart_of_latency_and_names_that_look_like_maths() -> None:
    points = [("Cheap $5 $ host", 0.3, 0.5), ("^{x}_$", 0.6, 1.5)]
    png = price_chart_png(points, title="a $b title", measure="latency")
    assert png is not None and png_size(png) == (640, 360)


def test_no_chart_without_points_or_without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    assert chart_bundle([], title="t", measure="throughput") is None
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert chart_bundle([("A", 1.0, 2.0)], title="t", measure="throughput") is None
