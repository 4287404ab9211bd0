"""The read-only built-in tools as pure functions: exact texts for the model."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ormagic.context import inspection
from ormagic.context.inspection import InspectionError, format_bytes
from ormagic.context.snapshot import CellRecord, NotebookSnapshot

SALES = pd.DataFrame(
    {
        "month": ["Jan", "Feb", "Mar", "Apr"],
        "region": ["N", "S", None, "N"],
        "amount": [10.5, 20.0, None, 7.25],
    }
)
TEXT = str(SALES.dtypes["month"])  # "object" before pandas 3, "str" since


class Report:
    """A user object that says what it is."""

    def _repr_llm_(self) -> str:
        return "Quarterly report: 3 sections, draft."


def namespace() -> dict[str, Any]:
    return {
        "sales": SALES,
        "np": np,
        "In": [],
        "Out": {},
        "get_ipython": lambda: None,
        "_": 1,
        "_secret": "hidden",
        "helper": lambda: 1,
        "Point": type("Point", (), {}),
        "total": 38,
        "grid": np.arange(12).reshape(4, 3),
        "items": [3, 1, 3, "a"],
        "config": {"a": 1, "b": [1, 2]},
        "report": Report(),
    }


def test_list_variables_leaves_out_code_and_ipython_names() -> None:
    text = inspection.list_variables(namespace())
    memory = int(SALES.memory_usage(deep=True).sum())
    assert text.splitlines() == [
        "6 variables:",
        f"- sales: DataFrame, 4 rows \u00d7 3 columns, ~{format_bytes(memory)}",
        f"- total: int = 38, ~{sys.getsizeof(38)} B",
        "- grid: ndarray, shape (4, 3), dtype int64, ~96 B",
        f"- items: list, length 4, ~{format_bytes(inspection._memory([3, 1, 3, 'a']))}",
        f"- config: dict, length 2, ~{format_bytes(inspection._memory({'a': 1, 'b': [1, 2]}))}",
        f"- report: Report, ~{sys.getsizeof(Report())} B",
    ]
    assert inspection.list_variables({"np": np, "_x": 1}) == (
        "The notebook has no variables yet (modules, functions and classes not counted)."
    )


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 512, 2048, 5 * 1024**2, 3 * 1024**4)] == [
        "0 B",
        "512 B",
        "2.0 KB",
        "5.0 MB",
        "3072.0 GB",
    ]


def test_describe_a_dataframe() -> None:
    assert inspection.describe_variable(namespace(), "sales") == "\n".join(
        [
            "pandas DataFrame, 4 rows \u00d7 3 columns",
            "columns (dtype, nulls):",
            f"  month: {TEXT}, 0 null",
            f"  region: {TEXT}, 1 null",
            "  amount: float64, 1 null",
            "describe() of the numeric columns:",
            "          amount",
            "count   3.000000",
            "mean   12.583333",
            "std     6.625393",
            "min     7.250000",
            "25%     8.875000",
            "50%    10.500000",
            "75%    15.250000",
            "max    20.000000",
            "head(5):",
            "  month region  amount",
            "0   Jan      N   10.50",
            "1   Feb      S   20.00",
            "2   Mar    NaN     NaN",
            "3   Apr      N    7.25",
        ]
    )


def test_describe_other_objects() -> None:
    ns = namespace()
    assert inspection.describe_variable(ns, "report") == "Quarterly report: 3 sections, draft."
    assert inspection.describe_variable(ns, "items") == "list, 4 items: [3, 1, 3, 'a']"
    assert inspection.describe_variable(ns, "grid") == (
        "numpy ndarray, shape (4, 3), dtype int64, min 0, max 11\n"
        "[[ 0  1  2]\n [ 3  4  5]\n [ 6  7  8]\n [ 9 10 11]]"
    )
    series = pd.Series([1.0, 3.0], name="x")
    assert inspection.describe_variable({"s": series}, "s").endswith(
        "describe():\ncount    2.000000\nmean     2.000000\nstd      1.414214\nmin      1.000000\n"
        "25%      1.500000\n50%      2.000000\n75%      2.500000\nmax      3.000000"
    )


def test_names_are_looked_up_never_evaluated() -> None:
    ns = namespace()
    with pytest.raises(InspectionError) as info:
        inspection.describe_variable(ns, "sale")
    assert str(info.value) == (
        "There is no variable named 'sale'. Did you mean sales? list_variables() lists them."
    )
    for expression in ("sales.shape", "sales['amount']", "__import__('os')", "1+1"):
        with pytest.raises(InspectionError) as info:
            inspection.describe_variable(ns, expression)
        assert str(info.value) == (
            f"{expression!r} is not a variable name: give the bare name of one variable, "
            "without attributes, indexing or expressions."
        )


def test_preview_rows() -> None:
    ns = namespace()
    assert inspection.preview_rows(ns, "sales", 1, 2, ["month", "amount"]) == (
        "sales, rows 1 to 2 of 4:\n  month  amount\n1   Feb    20.0\n2   Mar     NaN"
    )
    assert inspection.preview_rows(ns, "grid", 2, 5) == (
        "grid, rows 2 to 3 of 4:\n[[ 6  7  8]\n [ 9 10 11]]"
    )
    assert inspection.preview_rows(ns, "items") == (
        "items, rows 0 to 3 of 4:\n0: 3\n1: 1\n2: 3\n3: 'a'"
    )
    assert inspection.preview_rows(ns, "config") == (
        "config, items 0 to 1 of 2:\n0: ('a', 1)\n1: ('b', [1, 2])"
    )
    big = pd.DataFrame({"n": range(500)})
    assert inspection.preview_rows({"big": big}, "big", 0, 1000).splitlines()[0] == (
        "big, rows 0 to 99 of 500 (at most 100 rows at a time):"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (("sales", 10), "sales has 4 rows; start 10 is past the end."),
        (("sales", -1), "start must be 0 or more (rows are counted from 0)."),
        (("sales", 0, 0), "rows must be at least 1."),
        (("sales", 0, 5, ["x"]), "sales has no column 'x'; its columns: month, region, amount"),
        (("items", 0, 5, ["a"]), "columns only apply to a DataFrame; items is a list."),
        (("total",), "total is an int, which has no rows; describe_variable shows it."),
    ],
)
def test_preview_rows_mistakes(call: tuple[Any, ...], message: str) -> None:
    with pytest.raises(InspectionError) as info:
        inspection.preview_rows(namespace(), *call)
    assert str(info.value) == message


def test_value_counts() -> None:
    ns = namespace()
    assert inspection.value_counts(ns, "sales", "region") == (
        "value_counts of sales['region']: 4 values, 3 distinct, 1 null\nN     2\nS     1\nnull  1"
    )
    assert inspection.value_counts(ns, "sales", "month", top=2) == (
        "value_counts of sales['month']: 4 values, 4 distinct, 0 null\nJan  1\nFeb  1\n"
        "… 2 more distinct values (2 rows)"
    )
    assert inspection.value_counts(ns, "items", top=1) == (
        "value_counts of items: 4 values, 3 distinct\n3  2\n… 2 more distinct values (2 rows)"
    )
    with pytest.raises(InspectionError, match=r"^sales is a DataFrame: say which column\.$"):
        inspection.value_counts(ns, "sales")
    with pytest.raises(InspectionError, match=r"^total is an int; value_counts needs"):
        inspection.value_counts(ns, "total")
    with pytest.raises(InspectionError, match=r"^top must be at least 1\.$"):
        inspection.value_counts(ns, "items", top=0)


CELLS = (
    CellRecord(3, "import pandas as pd\nsales = pd.read_csv('sales.csv')", (), None, False),
    CellRecord(
        4, "sales.groupby('month').amount.sum()", ("month\nJan 10.5\nFeb 20.0",), None, False
    ),
    CellRecord(
        5, "sales.loc['Mar']", (), "KeyError: 'Mar'\nTraceback (most recent call last): ...", False
    ),
)
SNAPSHOT = NotebookSnapshot(
    cells=CELLS,
    namespace={},
    last_error="Traceback (most recent call last):\n  ...\nKeyError: 'Mar'",
    notebook_path="/work/analysis.ipynb",
    markdown_cells=((4, "## Monthly totals\nMarch is missing from the export."), (-1, "Notes")),
)


def test_read_cell() -> None:
    assert inspection.read_cell(CELLS[1], 4, 5) == (
        "In [4]:\nsales.groupby('month').amount.sum()\nOut [4]:\nmonth\nJan 10.5\nFeb 20.0"
    )
    assert inspection.read_cell(CELLS[0], 3, 5) == (
        "In [3]:\nimport pandas as pd\nsales = pd.read_csv('sales.csv')\n(no output)"
    )
    assert inspection.read_cell(CELLS[2], 5, 5).splitlines()[2:4] == [
        "Error in [5]:",
        "KeyError: 'Mar'",
    ]
    with pytest.raises(InspectionError) as info:
        inspection.read_cell(None, 99, 5)
    assert str(info.value) == "There is no cell In [99]: cells run so far are In [1] to In [5]."


def test_search_notebook() -> None:
    assert inspection.search_notebook(SNAPSHOT, "mar") == (
        "3 matches for 'mar':\n"
        "In [5] code: sales.loc['Mar']\n"
        "In [5] error: KeyError: 'Mar'\n"
        "Markdown (above In [4]): March is missing from the export."
    )
    assert inspection.search_notebook(SNAPSHOT, "nowhere") == "No cell contains 'nowhere'."
    no_file = NotebookSnapshot(CELLS, {}, None, None, ())
    assert inspection.search_notebook(no_file, "zzz") == (
        "No cell contains 'zzz' (the notebook file is unknown: no Markdown)."
    )
    with pytest.raises(InspectionError, match="Give some text"):
        inspection.search_notebook(SNAPSHOT, "  ")


def test_last_error() -> None:
    assert inspection.last_error(SNAPSHOT) == SNAPSHOT.last_error
    empty = NotebookSnapshot((), {}, None, None, ())
    assert inspection.last_error(empty) == "No error has been raised in this session."
