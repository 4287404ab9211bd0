"""IPython's shell seen as the engine's :class:`~ormagic.engine.notebook.Notebook`.

Also the two things the output recorder (``ormagic.context.capture``, for IPython < 9.1)
needs to know about the shell: how it formats an error, and which of its functions write
to ``sys.stdout`` on their own account.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import CodeType, FunctionType
from typing import Any

from IPython.core.error import UsageError

from ..context.capture import Recorder
from ..context.snapshot import (
    CellRecord,
    NotebookSnapshot,
    notebook_path,
    read_cell,
    running_cell,
    take_snapshot,
)

__all__ = ["ShellNotebook", "cell_id", "format_error", "shell_writers"]


class ShellNotebook:
    """The notebook behind a shell: its variables and executed cells."""

    def __init__(self, shell: Any, recorder: Recorder | None = None) -> None:
        self._shell = shell
        self._recorder = recorder

    @property
    def namespace(self) -> Mapping[str, Any]:
        namespace: Mapping[str, Any] = self._shell.user_ns
        return namespace

    @property
    def path(self) -> str | None:
        return notebook_path(self.namespace)

    def snapshot(self, since: int | None) -> NotebookSnapshot:
        return take_snapshot(self._shell, since=since, recorder=self._recorder)

    def running_cell(self) -> int:
        return running_cell(self._shell)

    def cell(self, number: int) -> CellRecord | None:
        return read_cell(self._shell, number, self._recorder)


def cell_id(shell: Any) -> str | None:
    """The running cell's id, from the execute request's metadata (JupyterLab, Notebook 7)."""
    parent = getattr(shell, "parent_header", None) or {}
    metadata = parent.get("metadata") or {}
    value = metadata.get("cellId") or metadata.get("cell_id")
    return str(value) if value else None


def format_error(shell: Any, error: BaseException) -> list[str]:
    """The traceback lines IPython shows for ``error``, for the recorder (IPython < 9.1).

    The same lines IPython >= 9.1 keeps in ``history_manager.exceptions``
    (IPython ``InteractiveShell._format_exception_for_storage``).
    """
    if type(error) is UsageError:
        return [f"UsageError: {error}"]
    render = getattr(error, "_render_traceback_", None)
    if callable(render):
        return [str(line) for line in render()]
    if isinstance(error, SyntaxError):
        return list(shell.SyntaxTB.structured_traceback(type(error), error, []))
    # tb_offset=1 leaves out IPython's run_code frame, where the error was caught
    return list(
        shell.InteractiveTB.structured_traceback(
            type(error), error, error.__traceback__, tb_offset=1
        )
    )


def shell_writers(shell: Any) -> frozenset[CodeType]:
    """The shell's own functions that write to sys.stdout/stderr, for the recorder.

    A terminal or plain IPython < 9.1 prints results (``Out[3]: 7``), ``display()`` text,
    tracebacks and usage errors through ``sys.stdout``/``sys.stderr`` (IPython
    ``core/displayhook.py``, ``displaypub.py``, ``InteractiveShell._showtraceback``): not
    what the cell printed, and left out by IPython >= 9.1's own recording too.
    """
    owners = (
        (shell.displayhook, ("write_output_prompt", "write_format_data", "finish_displayhook")),
        (shell.display_pub, ("publish", "clear_output")),
        (shell, ("_showtraceback", "show_usage_error")),
    )
    return frozenset(
        function.__code__
        for owner, names in owners
        for cls in type(owner).__mro__
        for name in names
        if isinstance(function := vars(cls).get(name), FunctionType)
    )
