"""Numbers as a user reads them."""

from __future__ import annotations

import pytest

from ormagic.formatting import format_cost, format_count, format_seconds


@pytest.mark.parametrize(
    ("dollars", "text"),
    [
        (None, "cost unknown"),
        (0, "$0"),
        (0.0000042, "$0.0000042"),
        (0.000123456, "$0.000123"),
        (0.01234, "$0.0123"),
        (0.5, "$0.50"),
        (0.75, "$0.75"),
        (0.125, "$0.125"),
        (12.5, "$12.50"),
        (1234.5, "$1,234.50"),
    ],
)
def test_format_cost(dollars: float | None, text: str) -> None:
    assert format_cost(dollars) == text


def test_format_count_and_seconds() -> None:
    assert format_count(1048576) == "1,048,576"
    assert format_count(None) == "?"
    assert format_seconds(4.21) == "4.2 s"
    assert format_seconds(75) == "1 min 15 s"
