"""{name} interpolation: values in, braces never break a prompt."""

from __future__ import annotations

from ormagic.context.interpolate import interpolate


class Point:
    x = 3

    @property
    def broken(self) -> int:
        raise RuntimeError("boom")


NS = {
    "df": "<frame>",
    "xs": [10, 20, 30],
    "d": {"k": "v"},
    "p": Point(),
    "Out": {3: 42},
    "In": ["", "a = 1", "print(a)", "a * 2"],
}


def test_names_items_and_attributes() -> None:
    assert interpolate("see {df}", NS) == "see <frame>"
    assert interpolate("{xs[1]} {xs[-1]} {d['k']} {d[\"k\"]} {p.x}", NS) == "20 30 v v 3"
    assert interpolate("{In[3]} gave {Out[3]}", NS) == "a * 2 gave 42"


def test_undefined_and_failing_lookups_stay_as_written() -> None:
    assert (
        interpolate("{nope} {xs[9]} {d['z']} {p.y} {p.broken} {xs[a]}", NS)
        == "{nope} {xs[9]} {d['z']} {p.y} {p.broken} {xs[a]}"
    )


def test_code_is_untouched_and_double_braces_are_literal() -> None:
    text = "use `{df}` and {{df}}\n```python\nf'{df}'\n```\nthen {df}\n"
    assert interpolate(text, NS) == "use `{df}` and {df}\n```python\nf'{df}'\n```\nthen <frame>\n"


def test_unclosed_fence_protects_the_rest() -> None:
    assert interpolate("```\n{df}\n", NS) == "```\n{df}\n"


def test_no_calls_or_expressions() -> None:
    assert (
        interpolate("{df.upper()} {1+1} {__import__('os')}", NS)
        == "{df.upper()} {1+1} {__import__('os')}"
    )


def test_json_and_dict_literals_survive() -> None:
    assert interpolate('{"a": 1} and {x: y}', NS) == '{"a": 1} and {x: y}'
