"""When one machine is not enough: the same batch on every partition of a Dask collection.

``ormagic.map(template, ddf)`` returns a lazy Dask Series (a DataFrame with a schema) built
with ``map_partitions``: each partition runs :func:`~ormagic.batch.job.run_batch` on its
worker, ``concurrency`` requests at a time per partition, with the worker's own cache.
The task graph holds the :class:`~ormagic.batch.job.BatchSpec` (template, model, settings,
prices), never the API key: each worker reads ``OPENROUTER_API_KEY`` from its own
environment. ``max_cost`` is shared out evenly between the partitions, each of which
checks its share before sending and stops when it is reached.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from ..client.settings import Secret
from ..errors import BudgetExceededError, MissingKeyError
from .job import BatchSpec, SilentDisplay, run_batch
from .rows import frame_fields, is_frame, rows_of
from .template import check_fields, template_fields

__all__ = ["map_dask", "run_partition"]

_NO_KEY = (
    "No OpenRouter API key on this Dask worker: set OPENROUTER_API_KEY in the workers' "
    "environment (the key never travels in the task graph)."
)


def map_dask(spec: BatchSpec, data: Any) -> Any:
    """A lazy Dask Series (or DataFrame of the schema's fields) of answers, one per row."""
    fields = frame_fields(data.columns) if is_frame(data) else ("item", "index")
    check_fields(spec.template, fields)
    partitions = max(int(data.npartitions), 1)
    if spec.max_cost is not None:
        share = f"max_cost shared by {partitions} partitions" if partitions > 1 else ""
        spec = dataclasses.replace(
            spec, max_cost=spec.max_cost / partitions, budget_note=share or spec.budget_note
        )
    return data.map_partitions(run_partition, spec, meta=_meta(spec))


def run_partition(part: Any, spec: BatchSpec) -> Any:
    """Run on a worker: the partition's answers, aligned on its index."""
    key = os.environ.get("OPENROUTER_API_KEY", "").strip()
    if not key:
        raise MissingKeyError(_NO_KEY)
    outcome = run_batch(
        spec,
        rows_of(part, template_fields(spec.template)),
        key=Secret(key),
        display=SilentDisplay(),
    )
    if outcome.refusal is not None:
        raise BudgetExceededError(outcome.refusal)
    return outcome.result()


def _meta(spec: BatchSpec) -> Any:
    """An empty result with the right columns and dtypes, for Dask's ``meta``."""
    import pandas as pd

    if spec.schema is None:
        return pd.Series([], dtype=object)
    dtypes = spec.schema.dtypes()
    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in dtypes.items()})
