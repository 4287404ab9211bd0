"""Summaries of variables: exact texts for the shapes a user would recognise."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest

from ormagic.context.summaries import elision_marker, shorten, summarise


class Broken:
    """A user class whose repr raises, as defined in a notebook."""

    __module__ = "__main__"

    def __repr__(self) -> NoReturn:
        raise RuntimeError("no repr today")


class Point:
    __module__ = "__main__"

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __repr__(self) -> str:
        return f"Point(x={self.x}, y={self.y})"


def scale(values: list[float], factor: float = 2.0) -> list[float]:
    """Multiply every value by factor.

    More text that the summary leaves out.
    """
    return [v * factor for v in values]


def test_list_shows_length_and_first_items() -> None:
    assert summarise(list(range(1000))) == "list, 1,000 items: [0, 1, 2, 3, 4, ...]"
    assert summarise([]) == "list, 0 items: []"
    assert summarise([7]) == "list, 1 item: [7]"


def test_tuple_and_set() -> None:
    assert summarise((1, "a", None)) == "tuple, 3 items: (1, 'a', None)"
    assert summarise({3, 1, 2}) == "set, 3 items: {1, 2, 3}"


def test_dict_keeps_insertion_order_and_cuts_long_values() -> None:
    value = {"zeta": 1, "alpha": [1, 2], "text": "x" * 200}
    assert summarise(value) == (
        "dict, 3 keys: {'zeta': 1, 'alpha': [1, 2], 'text': '" + "x" * 37 + "..." + "x" * 38 + "'}"
    )
    many = {f"k{i}": i for i in range(50)}
    assert summarise(many) == "dict, 50 keys: {'k0': 0, 'k1': 1, 'k2': 2, 'k3': 3, 'k4': 4, ...}"


def test_nested_containers_stop_after_three_levels() -> None:
    assert summarise([[[[1]]]]) == "list, 1 item: [[[[...]]]]"


def test_str_shows_length_and_text() -> None:
    assert summarise("hello world") == "str, 11 characters: 'hello world'"
    assert summarise("line\nbreak") == "str, 10 characters: 'line\\nbreak'"


def test_long_str_is_cut_within_max_chars() -> None:
    summary = summarise("a" * 10_000, max_chars=100)
    assert summary == "str, 10,000 characters: '" + "a" * 73 + " …"
    assert len(summary) == 100


def test_failing_repr_gives_unrepresentable() -> None:
    assert summarise(Broken()) == "<unrepresentable Broken>"
    assert summarise([1, Broken()]) == "list, 2 items: [1, <unrepresentable Broken>]"


def test_repr_returning_a_non_string_gives_unrepresentable() -> None:
    class Odd:
        def __repr__(self) -> Any:
            return 42

    assert summarise(Odd()) == f"<unrepresentable {__name__}.{Odd.__qualname__}>"


def test_other_objects_show_type_and_repr() -> None:
    assert summarise(Point(1, 2)) == "Point: Point(x=1, y=2)"
    assert summarise(42) == "int: 42"
    assert summarise(None) == "NoneType: None"
    assert summarise(b"abc") == "bytes: b'abc'"


def test_huge_repr_is_cut_with_the_marker() -> None:
    summary = summarise(Point(10**3000, 0), max_chars=200)
    assert len(summary) <= 200
    head, marker, tail = summary.split("\n")
    assert head.startswith("Point: Point(x=1000")
    assert marker == "… [2,855 characters left out] …"
    assert tail.endswith("000, y=0)")
    assert len(head) + len(tail) + 2_855 == len(f"Point: Point(x={10**3000}, y=0)")


def test_functions_and_classes_show_signature_and_first_doc_line() -> None:
    assert summarise(scale) == (
        "function scale(values: 'list[float]', factor: 'float' = 2.0) -> 'list[float]'\n"
        "Multiply every value by factor."
    )
    assert summarise(Point) == "class Point(x: 'int', y: 'int') -> 'None'"


def test_shorten_keeps_head_and_tail_around_the_marker() -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    short = shorten(text, 100)
    assert short == text[:34] + "\n… [933 characters left out] …\n" + text[-33:]
    assert len(short) <= 100
    assert shorten("short", 100) == "short"
    assert shorten(text, 10) == elision_marker(1000)
    assert elision_marker(12345) == "… [12,345 characters left out] …"


def test_dataframe_summary() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, None, 2.0]})
    assert summarise(frame) == (
        "pandas DataFrame, 3 rows \u00d7 2 columns\n"
        "dtypes: a int64, b float64\n"
        "nulls: b 1\n"
        "head:\n"
        "   a    b\n"
        "0  1  0.5\n"
        "1  2  NaN\n"
        "2  3  2.0"
    )


def test_series_summary() -> None:
    pd = pytest.importorskip("pandas")
    series = pd.Series([1.0, None, 3.0], name="v")
    assert summarise(series) == (
        "pandas Series 'v', length 3, dtype float64, nulls 1\nhead:\n0    1.0\n1    NaN\n2    3.0"
    )


def test_ndarray_summary() -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert summarise(array) == (
        "numpy ndarray, shape (3, 4), dtype int64, min 0, max 11\n"
        "[[ 0  1  2  3]\n [ 4  5  6  7]\n [ 8  9 10 11]]"
    )


def test_cutting_again_counts_what_earlier_cuts_left_out() -> None:
    from ormagic.context.summaries import cut_middle, elision_marker

    once, first = cut_middle("a" * 5_000 + "b" * 5_000, 1_000)
    twice, second = cut_middle(once, 300)
    assert first == 10_000 - (len(once) - len(elision_marker(first)) - 2)
    shown = len(twice) - len(elision_marker(second)) - 2
    assert second == 10_000 - shown
    assert twice.count("characters left out") == 1
