"""Draw the docs' picture of ``%chat providers``, offline.

    .venv/bin/python scripts/providers_chart.py

``docs/images/providers-chart.png`` is the chart the command draws, byte for byte, for the
bundled fake OpenRouter's DeepSeek V4 Flash providers (it needs the ``plot`` extra). The
other pictures in ``docs/images/`` are the browser tests' screenshots.
"""

from __future__ import annotations

import base64
from pathlib import Path

from ormagic.engine.engine import Engine
from ormagic.engine.providers import chart_points, fetch_providers
from ormagic.render.chart import chart_bundle
from ormagic.testing.fake_openrouter import FakeOpenRouter

IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
FLASH = "deepseek/deepseek-v4-flash"


def main() -> int:
    with FakeOpenRouter() as fake:
        engine = Engine(
            env={"OPENROUTER_API_KEY": fake.api_key, "OPENROUTER_BASE_URL": fake.base_url}
        )
        try:
            found = fetch_providers(engine.client().get_endpoints, FLASH, engine.catalog.models)
        finally:
            engine.close()
    points, _ = chart_points(found.providers, "throughput")
    title = f"{FLASH}: price against throughput, per provider"
    bundle = chart_bundle(points, title=title, measure="throughput")
    if bundle is None:
        raise SystemExit("providers_chart: matplotlib is needed (pip install -e '.[plot]')")
    (IMAGES / "providers-chart.png").write_bytes(base64.b64decode(bundle["image/png"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
