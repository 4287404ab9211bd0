"""``%%chat --each NAME -o VAR``: the cell's text as a template over every row of ``NAME``.

The skin of ``ormagic.map`` (``ormagic.api.batch.run_map``): the variables come from the
kernel, the answers go back into it (``VAR``, default ``answers``), the progress is a bar
in a notebook and lines in a terminal, and every error is one ``UsageError`` line. No
notebook context is sent per row unless ``--context`` asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..errors import OrmagicError
from .display import JupyterPublisher, in_kernel

if TYPE_CHECKING:
    from ..batch.job import Display

__all__ = ["DEFAULT_OUT", "check_each_flags", "run_each"]

DEFAULT_OUT = "answers"
_ONLY_WITH_EACH = ("concurrency", "schema", "no_cache", "deferred")
# flags of a single question that mean nothing for a batch
_NOT_WITH_EACH = {
    "fix": "--fix",
    "new": "--new",
    "fallback": "--fallback",
    "provider": "--provider",
    "provider_sort": "--provider-sort",
    "no_fallbacks": "--no-fallbacks",
    "no_interpolate": "--no-interpolate",  # {…} are the rows' fields, never variables
    "hide_reasoning": "--hide-reasoning",  # a batch shows no reasoning
    "no_tools": "--no-tools",  # a batch's rows have no tools
}


def check_each_flags(args: Any) -> None:
    """Refuse batch flags without ``--each`` and single-question flags with it."""
    if args.each is None:
        used = [_flag(name) for name in _ONLY_WITH_EACH if getattr(args, name, None)]
        if used:
            raise UsageError(f"{', '.join(used)} only applies with --each NAME.")
        return
    wrong = [flag for name, flag in _NOT_WITH_EACH.items() if getattr(args, name, None)]
    if getattr(args, "format", "markdown") != "markdown":
        wrong.append("-f/--format")
    if getattr(args, "conversation", "default") != "default":
        wrong.append("-c/--conversation")  # rows are no conversation (counted as "batch")
    if wrong:
        raise UsageError(f"--each does not take {', '.join(wrong)}.")


def run_each(magics: Any, args: Any, cell: str) -> None:
    """Run the batch and store its result in the kernel; report how it ended."""
    # imported here: %load_ext stays light (asyncio, SQLite, the batch layer)
    from ..api.batch import MapOptions, run_map, stopped_line
    from ..batch.deferred import DeferredBatch
    from ..batch.job import BatchOutcome

    check_each_flags(args)
    shell = magics.shell
    data = _variable(shell, args.each, "--each")
    options = MapOptions(
        model=_one_model(args.model),
        system=args.system,
        reasoning=args.reasoning,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        schema=_variable(shell, args.schema, "--schema") if args.schema else None,
        concurrency=8 if args.concurrency is None else args.concurrency,
        cache=not args.no_cache,
        deferred=args.deferred,
        context=args.context,
    )
    out = args.out or DEFAULT_OUT
    try:
        template = cell.strip("\n")  # IPython ends the cell with a newline
        result = run_map(magics.engine, template, data, options, _display(shell), magics.notebook())
    except OrmagicError as error:
        raise UsageError(str(error)) from None
    if isinstance(result, BatchOutcome):
        shell.user_ns[out] = result.result()
        if result.interrupted:
            done = sum(1 for value in result.values if value is not None)
            raise UsageError(
                f"Interrupted: {done:,} of {len(result.values):,} rows answered, kept in "
                f"{out} and in the cache; run the cell again to finish the rest."
            )
        if result.stop_reason:  # a rejected key, no credits, max_cost: "Run all" stops
            raise UsageError(
                f"{stopped_line(result)} The answers are in {out} and in the cache: run "
                "the cell again to send the rest."
            )
    elif isinstance(result, DeferredBatch):
        shell.user_ns[out] = result.result
    else:  # a lazy Dask collection
        shell.user_ns[out] = result


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _variable(shell: Any, name: str, flag: str) -> Any:
    if name not in shell.user_ns:
        raise UsageError(f"{flag} {name}: there is no variable {name!r} in this kernel.")
    return shell.user_ns[name]


def _one_model(model: Any) -> str | None:
    """``-m`` may be given once (or, where it is repeatable, several times): one model."""
    if model is None or isinstance(model, str):
        return model
    models = list(model)
    if len(models) > 1:
        raise UsageError("--each runs one model: give a single -m.")
    return models[0] if models else None


def _display(shell: Any) -> Display:
    from ..render.progress import NotebookProgress, TerminalProgress

    if not in_kernel(shell):
        return TerminalProgress()
    return NotebookProgress(JupyterPublisher())
