"""The rows of a batch's input, and its answers put back in the input's shape.

A list (or tuple) gives a list; a pandas Series or DataFrame gives a Series aligned on its
index, or with a schema a DataFrame whose columns are the schema's fields. A row that
failed or was never reached is ``None`` (a missing value in pandas), never an error string.
pandas is imported only when the data is pandas'.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError

__all__ = ["Rows", "is_dask", "is_pandas", "rows_of", "shape_records", "shape_values"]

Kind = Literal["list", "series", "frame"]


@dataclass(frozen=True)
class Rows:
    """An input as rows: each row's template fields, and how to rebuild the shape."""

    kind: Kind
    fields: tuple[str, ...]
    records: list[dict[str, Any]]
    labels: list[Any]
    index: Any = None  # the pandas index, for pandas input

    def __len__(self) -> int:
        return len(self.records)


def _module(data: Any) -> str:
    return type(data).__module__.split(".")[0]


def is_pandas(data: Any) -> bool:
    return _module(data) == "pandas" and type(data).__name__ in ("Series", "DataFrame")


def is_dask(data: Any) -> bool:
    """A Dask DataFrame or Series (dask.dataframe, classic or dask-expr)."""
    return _module(data) in ("dask", "dask_expr") and hasattr(data, "map_partitions")


def is_frame(data: Any) -> bool:
    return type(data).__name__ == "DataFrame"


def rows_of(data: Any, wanted: Collection[str] | None = None) -> Rows:
    """The rows of a list, tuple, pandas Series or DataFrame; anything else is refused.

    ``wanted``: the fields the template uses. A DataFrame's rows then hold only those
    columns (``fields`` still names them all, for messages): a wide frame is not copied
    into a dict per row for a template that reads one column.
    """
    if is_pandas(data):
        return _frame_rows(data, wanted) if is_frame(data) else _series_rows(data)
    if isinstance(data, list | tuple):
        records = [{"item": item, "index": i} for i, item in enumerate(data)]
        return Rows("list", ("item", "index"), records, list(range(len(data))))
    raise ConfigError(
        f"ormagic.map takes a list, a pandas Series or DataFrame, or a Dask collection, "
        f"not {type(data).__name__}."
    )


def _series_rows(series: Any) -> Rows:
    labels = list(series.index)
    items = series.tolist()
    records = [{"item": item, "index": label} for item, label in zip(items, labels, strict=True)]
    return Rows("series", ("item", "index"), records, labels, series.index)


def frame_fields(columns: Sequence[Any]) -> tuple[str, ...]:
    names = tuple(str(column) for column in columns)
    return names if "index" in names else (*names, "index")


def _frame_rows(frame: Any, wanted: Collection[str] | None) -> Rows:
    names = [str(column) for column in frame.columns]
    labels = list(frame.index)
    read = frame
    if wanted is not None:
        keep = [i for i, name in enumerate(names) if name in wanted]
        read = frame.iloc[:, keep]
        names = [names[i] for i in keep]
    records = []
    for label, values in zip(labels, read.itertuples(index=False, name=None), strict=True):
        record = {"index": label}
        record.update(zip(names, values, strict=True))
        records.append(record)
    return Rows("frame", frame_fields(frame.columns), records, labels, frame.index)


def shape_values(rows: Rows, values: Sequence[Any], columns: Mapping[str, str] | None) -> Any:
    """The answers in the input's shape: ``values`` holds one answer (or None) per row.

    ``columns`` (a schema's fields and their pandas dtypes) turns pandas output into a
    DataFrame of those columns; a row without an answer is missing in every column.
    """
    if rows.kind == "list":
        return list(values)
    import pandas as pd

    if columns is None:
        return pd.Series(list(values), index=rows.index, dtype=object)
    records = [value if isinstance(value, Mapping) else {} for value in values]
    frame = pd.DataFrame(records, index=rows.index, columns=list(columns))
    return frame.astype(dict(columns))


def shape_records(rows: Rows, records: Sequence[Mapping[str, Any]]) -> Any:
    """The report in the input's shape: a list of dicts, or a DataFrame on its index."""
    if rows.kind == "list":
        return [dict(record) for record in records]
    import pandas as pd

    return pd.DataFrame.from_records(list(records), index=rows.index)
