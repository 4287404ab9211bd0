"""Your own tools: JSON schemas from type hints and docstrings, refusals, the registry,
and the model's arguments checked against the schema."""

from __future__ import annotations

from typing import Any, Literal, Optional

import pytest

import ormagic
from ormagic.engine.schema import ArgumentError, check_arguments, function_schema, parse_docstring
from ormagic.engine.tools import ToolBox, ToolRegistry, make_tool, user_tools
from ormagic.errors import ConfigError


def monthly_total(
    month: str,
    region: Literal["north", "south"] | None = None,
    limit: int = 10,
    share: float = 0.5,
    exact: bool = False,
    tags: list[str] | None = None,
    weights: dict[str, float] | None = None,
) -> float:
    """Total sales of one month.

    Sums the amount column; returns 0 for a month without sales.

    Args:
        month: The month as YYYY-MM.
        region: Only this region
            (all regions when omitted).
        limit: At most this many rows.
        share: A fraction.
        exact: Whether to round.
        tags: Only rows with these tags.
        weights: Weight per region.

    Returns:
        The total.
    """
    return 0.0


def test_schema_from_hints_and_a_google_docstring() -> None:
    schema = function_schema(monthly_total)
    assert schema.name == "monthly_total"
    assert schema.description == (
        "Total sales of one month.\n\nSums the amount column; returns 0 for a month without sales."
    )
    assert schema.parameters == {
        "type": "object",
        "properties": {
            "month": {"type": "string", "description": "The month as YYYY-MM."},
            "region": {
                "type": ["string", "null"],
                "enum": ["north", "south", None],
                "description": "Only this region (all regions when omitted).",
                "default": None,
            },
            "limit": {"type": "integer", "description": "At most this many rows.", "default": 10},
            "share": {"type": "number", "description": "A fraction.", "default": 0.5},
            "exact": {"type": "boolean", "description": "Whether to round.", "default": False},
            "tags": {
                "type": ["array", "null"],
                "items": {"type": "string"},
                "description": "Only rows with these tags.",
                "default": None,
            },
            "weights": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "number"},
                "description": "Weight per region.",
                "default": None,
            },
        },
        "required": ["month"],
        "additionalProperties": False,
    }


def test_numpy_and_sphinx_docstrings() -> None:
    numpy_doc = """Find outliers.

    Parameters
    ----------
    column : str
        The column
        to check.
    z : float, optional
        The threshold.

    Returns
    -------
    list
    """
    assert parse_docstring(numpy_doc) == (
        "Find outliers.",
        {"column": "The column to check.", "z": "The threshold."},
    )
    sphinx_doc = """Find outliers.

    :param column: The column
        to check.
    :param float z: The threshold.
    :returns: the rows.
    """
    assert parse_docstring(sphinx_doc) == (
        "Find outliers.",
        {"column": "The column to check.", "z": "The threshold."},
    )
    assert parse_docstring(None) == ("", {})


def test_optional_union_and_none_default() -> None:
    def f(a: Optional[int], b: int | str, c: str = None, d: list = None) -> None:  # noqa: UP045, RUF013
        """F."""

    props = function_schema(f).parameters["properties"]
    assert props["a"] == {"type": ["integer", "null"]}
    assert props["b"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert props["c"] == {"type": ["string", "null"], "default": None}
    assert props["d"] == {"type": ["array", "null"], "default": None}
    assert function_schema(f).parameters["required"] == ["a", "b"]


class Point:
    pass


def no_hint(x, y: int) -> None:  # type: ignore[no-untyped-def]
    """No hint."""


def with_args(*values: int) -> None:
    """Variadic."""


def with_object(p: Point) -> None:
    """Takes a class of its own."""


def with_tuple(t: tuple[int, int]) -> None:
    """Takes a tuple."""


def with_any(x: Any) -> None:
    """Takes anything."""


def with_int_keys(d: dict[int, str]) -> None:
    """Int keys."""


async def fetch(url: str) -> str:
    """Async."""
    return url


SUPPORTED = "(use str, int, float, bool, list, dict, Literal[...], Optional[...])."


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (no_hint, f"Cannot make no_hint() a tool: parameter 'x' has no type hint {SUPPORTED}"),
        (
            with_args,
            "Cannot make with_args() a tool: *values cannot be described; name every parameter.",
        ),
        (
            with_object,
            "Cannot make with_object() a tool: parameter 'p': Point cannot be written in JSON "
            + SUPPORTED,
        ),
        (
            with_tuple,
            "Cannot make with_tuple() a tool: parameter 't': tuple cannot be written in JSON "
            + SUPPORTED,
        ),
        (
            with_any,
            "Cannot make with_any() a tool: parameter 'x': Any says nothing to the model; give "
            "a JSON type " + SUPPORTED,
        ),
        (
            with_int_keys,
            "Cannot make with_int_keys() a tool: parameter 'd': dict keys must be str (JSON "
            "object keys are strings) " + SUPPORTED,
        ),
        (
            fetch,
            "Cannot make fetch() a tool: it is async; tools are called synchronously, in the "
            "kernel.",
        ),
        (
            lambda x: x,
            "Cannot make <lambda> a tool: a tool name is 1 to 64 letters, digits, _ or - "
            "(pass name=...).",
        ),
    ],
)
def test_inexpressible_functions_are_refused_with_one_line(fn: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ormagic.tool(fn)
    assert str(info.value) == message
    assert "\n" not in str(info.value)
    assert len(user_tools()) == 0


def test_decorator_forms_and_re_registering_replaces() -> None:
    @ormagic.tool
    def lookup(key: str) -> str:
        """First version."""
        return key

    assert lookup("x") == "x"  # the function is returned unchanged

    @ormagic.tool(name="lookup", description="Second version.")
    def lookup_v2(key: str, default: str = "") -> str:
        return key or default

    with pytest.raises(ConfigError):  # refused (no hint): the registry is unchanged
        ormagic.tool(lambda q: q, name="echo", description="Echo.")
    tools = list(user_tools())
    assert [(t.name, t.description) for t in tools] == [("lookup", "Second version.")]
    assert tools[0].function is lookup_v2


def test_the_call_form_with_a_name() -> None:
    def q(text: str) -> str:
        """Query."""
        return text

    assert ormagic.tool(q, name="query") is q
    assert [t.name for t in user_tools()] == ["query"]


def test_arguments_are_checked_before_the_call() -> None:
    parameters = function_schema(monthly_total).parameters
    assert check_arguments(parameters, {"month": "2024-03", "limit": 5.0, "share": 1}) == {
        "month": "2024-03",
        "limit": 5,  # a whole float from a model that writes every number so
        "share": 1,
    }
    cases = [
        ({}, "missing required argument 'month'"),
        ({"month": 3}, "argument 'month' must be a string, not an integer"),
        (
            {"month": "m", "verbose": True},
            "unexpected argument 'verbose' (the parameters are: "
            "month, region, limit, share, exact, tags, weights)",
        ),
        (
            {"month": "m", "region": "west"},
            'argument \'region\' must be one of "north", "south", null, not "west"',
        ),
        ({"month": "m", "limit": 2.5}, "argument 'limit' must be an integer, not a number"),
        ({"month": "m", "tags": ["a", 1]}, "argument 'tags'[1] must be a string, not an integer"),
        (
            {"month": "m", "weights": {"n": "x"}},
            "argument 'weights'['n'] must be a number, not a string",
        ),
        ([], "the arguments must be a JSON object, not a list"),
    ]
    for arguments, message in cases:
        with pytest.raises(ArgumentError) as info:
            check_arguments(parameters, arguments)
        assert str(info.value) == message


def test_a_toolbox_runs_a_user_tool_and_answers_every_mistake_with_one_line() -> None:
    calls: list[dict[str, Any]] = []

    def total(month: str, limit: int = 10) -> dict[str, Any]:
        """Total."""
        calls.append({"month": month, "limit": limit})
        if month == "bad":
            raise ValueError("no such month\nsecond line of detail")
        return {"month": month, "total": 12.5}

    box = ToolBox([make_tool(total)], secrets=["sk-secret-value-123"])
    assert box.run("total", '{"month": "2024-03"}') == (
        '{"month": "2024-03", "total": 12.5}',
        False,
    )
    assert box.run("totl", "{}") == (
        "Error: there is no tool named 'totl'; the tools are: total.",
        True,
    )
    assert box.run("total", '{"month": "2024-03"') == (
        "Error: the arguments of total are not valid JSON (Expecting ',' delimiter at "
        "character 19); send one JSON object.",
        True,
    )
    assert box.run("total", '{"limit": 3}') == (
        "Error: total: missing required argument 'month'.",
        True,
    )
    assert box.run("total", '{"month": "bad"}') == (
        "Error: total raised ValueError: no such month second line of detail",
        True,
    )
    assert calls == [{"month": "2024-03", "limit": 10}, {"month": "bad", "limit": 10}]


def test_results_are_redacted_and_cut_with_a_note() -> None:
    def dump(n: int) -> str:
        """Dump."""
        return "key=sk-secret-value-123 " + "x" * n + " ghp_" + "a" * 36

    box = ToolBox([make_tool(dump)], secrets=["sk-secret-value-123"])
    small, error = box.run("dump", '{"n": 10}')
    assert (small, error) == ("key=[REDACTED] xxxxxxxxxx [REDACTED]", False)
    big, _ = box.run("dump", '{"n": 50000}')
    assert "sk-secret" not in big and big.startswith("key=[REDACTED] xxx")
    body, note = big.rsplit("\n", 1)
    assert len(body) <= 10_000
    assert "characters left out] …" in body
    assert note == (
        "[The result was cut in the middle to 10,000 characters (about 2,500 tokens); "
        "ask for less, e.g. fewer rows or columns, to see the rest.]"
    )


def test_results_of_other_types() -> None:
    class Described:
        def _repr_llm_(self) -> str:
            return "A described object."

    def give(kind: str) -> Any:
        """Give."""
        return {"none": None, "list": [1, "a"], "obj": Described(), "set": {3}}[kind]

    box = ToolBox([make_tool(give)])
    assert [box.run("give", f'{{"kind": "{k}"}}')[0] for k in ("none", "list", "obj", "set")] == [
        "null",
        '[1, "a"]',
        "A described object.",
        "set, 1 item: {3}",
    ]


def test_a_registry_of_its_own() -> None:
    registry = ToolRegistry()
    registry.register(monthly_total)
    assert registry.get("monthly_total") is not None
    assert registry.remove("monthly_total") and not registry.remove("monthly_total")
    assert len(user_tools()) == 0  # the process's registry is untouched
