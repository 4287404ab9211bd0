"""Read the IPython shell into plain data: the cells run so far, their outputs and errors.

:func:`take_snapshot` is the only code of the context layer that looks at the shell, and
it only reads: ``shell.history_manager`` (IPython >= 9.1 keeps ``input_hist_raw[n]``,
``outputs[n]`` -- a list of ``HistoryOutput(output_type, bundle)`` -- and
``exceptions[n]`` -- ``{"ename", "evalue", "traceback"}``; IPython ``core/history.py``),
``shell.user_ns`` and ``sys.last_value``. The shell is duck-typed; IPython is never
imported here.

Everything copied out is bounded as it is read (at most the first and last 4,000
characters of any one output; a 3 MB print is never joined whole) and stripped of ANSI
escape codes. Rich outputs become a short note (``[image/png WIDTHxHEIGHT]``), never base64.

Older IPython (< 9.1) has no ``history_manager.outputs``: printed output and per cell
errors then come from the recorder the magic passes (``_capture.Recorder``, which records
them as they are written) and results from ``Out[n]`` (``repr``, bounded afterwards).
Without a recorder there is no printed output, and of errors only ``last_error``.

The notebook file, when its path is known (VS Code's ``__vsc_ipynb_file__``, or
jupyter_server's ``JPY_SESSION_NAME``; docs/jupyter-notes.md "Notebook context"), is read
with nbformat for the Markdown cells around the executed code. That is best-effort: any
failure gives no Markdown and no message. The file is never written.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
import sys
import traceback
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .summaries import OUTPUT_HEAD_CHARS, OUTPUT_TAIL_CHARS, elision_marker, shorten

if TYPE_CHECKING:
    from .capture import CapturedError, CapturedText, Recorder

__all__ = [
    "CellRecord",
    "NotebookSnapshot",
    "notebook_path",
    "read_cell",
    "running_cell",
    "strip_ansi",
    "take_snapshot",
]

# A cut moves back (or forward) to whitespace within this distance, so that a key or
# token printed near the cut is never split into a half the redaction patterns miss.
_SOFT_CUT_REACH = 200
# Larger notebooks (usually embedded images) are not parsed: nbformat validates the whole
# file, which would slow down every question for Markdown we could do without.
_MAX_NOTEBOOK_BYTES = 50_000_000

# ECMA-48 CSI and OSC sequences, two-character escapes, and an escape cut off at the end.
_ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[@-Z\\-_]"
    r"|\x1b(?:\[[0-?]*[ -/]*)?\Z"
)
_CHAT_CELL_RE = re.compile(
    r"\A\s*%%chat\b|^[ \t]*%chat\b|run_(?:cell|line)_magic\(\s*['\"]chat['\"]", re.MULTILINE
)
# IPython's repr for objects without a useful text form; beside a rich note it is noise.
_DEFAULT_REPR_RE = re.compile(r"\A<[\w.]+ (?:object|at 0x[0-9a-fA-F]+)[^>]*>\Z")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIMES = "\u00d7"  # the multiplication sign of "640×480"  # noqa: RUF003


@dataclass(frozen=True)
class CellRecord:
    """One executed cell, as plain bounded text."""

    execution_count: int
    source: str
    outputs: tuple[str, ...]
    error: str | None
    is_chat: bool


@dataclass(frozen=True)
class NotebookSnapshot:
    """What the notebook looked like when a question was asked.

    ``markdown_cells`` holds ``(execution_count, markdown)`` pairs: the execution count of
    the executed cell whose source matches the code cell that follows the Markdown in the
    notebook file, or -1 when no executed cell matches (or no code cell follows).
    ``since`` is the ``since`` the snapshot was taken with (None: first question).
    """

    cells: tuple[CellRecord, ...]
    namespace: Mapping[str, Any]
    last_error: str | None
    notebook_path: str | None
    markdown_cells: tuple[tuple[int, str], ...]
    since: int | None = None


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape codes."""
    return _ANSI_RE.sub("", text) if "\x1b" in text else text


def _apply_carriage_returns(text: str) -> str:
    """Keep what a terminal would show: a ``\\r`` inside a line overwrites it (progress bars)."""
    if "\r" not in text:
        return text
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)


def _take_head(chunks: Iterable[str], count: int) -> str:
    taken: list[str] = []
    size = 0
    for chunk in chunks:
        if size >= count:
            break
        taken.append(chunk)
        size += len(chunk)
    return "".join(taken)[:count]


def _take_tail(chunks: Sequence[str], count: int) -> str:
    taken: list[str] = []
    size = 0
    for chunk in reversed(chunks):
        if size >= count:
            break
        taken.append(chunk)
        size += len(chunk)
    text = "".join(reversed(taken))
    return text[len(text) - count :] if len(text) > count else text


def _soft_cut(head: str, tail: str) -> tuple[str, str]:
    space = max(head.rfind(" ", -_SOFT_CUT_REACH), head.rfind("\n", -_SOFT_CUT_REACH))
    if space >= 0:
        head = head[: space + 1]
    match = re.search(r"\s", tail[:_SOFT_CUT_REACH])
    if match:
        tail = tail[match.start() :]
    return head, tail


def _around_marker(head: str, tail: str, total: int) -> str:
    """``head`` and ``tail`` of a ``total``-character text, with the marker between."""
    head, tail = _soft_cut(head, tail)
    return f"{head}\n{elision_marker(total - len(head) - len(tail))}\n{tail}"


def bounded_text(chunks: Sequence[str]) -> str:
    """The text of ``chunks`` with only its first and last 4,000 characters kept.

    Works on the chunks as IPython stored them, so a huge output is never joined whole.
    """
    total = sum(len(chunk) for chunk in chunks)
    limit = OUTPUT_HEAD_CHARS + OUTPUT_TAIL_CHARS
    if total <= limit:
        text = "".join(chunks)
    else:
        head = _take_head(chunks, OUTPUT_HEAD_CHARS)
        tail = _take_tail(chunks, OUTPUT_TAIL_CHARS)
        text = _around_marker(head, tail, total)
    return _apply_carriage_returns(strip_ansi(text))


def _captured_text(captured: CapturedText) -> str:
    """What :func:`bounded_text` gives for the same text, from the recorder's bounded copy."""
    if captured.left_out == 0:
        text = captured.head + captured.tail
    else:
        text = _around_marker(captured.head, captured.tail, captured.total)
    return _apply_carriage_returns(strip_ansi(text))


def _as_chunks(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def _png_size(data: Any) -> tuple[int, int] | None:
    """Width and height from the PNG IHDR chunk (bytes 16-24), decoding only a prefix."""
    if isinstance(data, (list, tuple)):
        data = "".join(d for d in data[:4] if isinstance(d, str))
    if isinstance(data, str):
        prefix = "".join(data[:64].split())[:32]
        try:
            raw = base64.b64decode(prefix[: len(prefix) // 4 * 4])
        except (binascii.Error, ValueError):
            return None
    elif isinstance(data, bytes):
        raw = data[:24] if data.startswith(_PNG_SIGNATURE) else b""
    else:
        return None
    if len(raw) < 24 or not raw.startswith(_PNG_SIGNATURE) or raw[12:16] != b"IHDR":
        return None
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def _rich_notes(bundle: Mapping[str, Any]) -> list[str]:
    notes = []
    for mime, data in bundle.items():
        if mime == "image/png":
            size = _png_size(data)
            notes.append(f"[image/png {size[0]}{_TIMES}{size[1]}]" if size else "[image/png]")
        elif mime.startswith(("image/", "application/", "video/", "audio/")):
            notes.append(f"[{mime}]")
    return notes


def _bundle_text(bundle: Mapping[str, Any]) -> str:
    """Text for a display or result bundle: its text/plain, with notes for rich parts."""
    notes = _rich_notes(bundle)
    plain = ""
    for mime in ("text/plain", "text/markdown", "text/latex"):
        if mime in bundle:
            plain = bounded_text(_as_chunks(bundle[mime]))
            break
    if notes and _DEFAULT_REPR_RE.match(plain.strip()):
        plain = ""
    if not notes and not plain:
        notes = [f"[{mime}]" for mime in bundle if mime != "text/plain"]
    return "\n".join([*notes, plain] if plain else notes)


def _output_text(output: Any) -> str:
    bundle = getattr(output, "bundle", None) or {}
    if getattr(output, "output_type", "") in ("out_stream", "err_stream"):
        return bounded_text(_as_chunks(bundle.get("stream", ())))
    return _bundle_text(bundle)


def _error_text(error: Mapping[str, Any]) -> str:
    lines = [str(line) for line in error.get("traceback") or ()]
    body = bounded_text(["\n".join(lines)])
    return _error_with_body(error.get("ename", "Error"), error.get("evalue", ""), body)


def _captured_error_text(error: CapturedError) -> str:
    return _error_with_body(error.ename, error.evalue, _captured_text(error.traceback))


def _error_with_body(ename: str, evalue: str, body: str) -> str:
    header = strip_ansi(f"{ename}: {evalue}")
    # UsageError's "traceback" is its message alone; do not say it twice.
    if not body.strip() or body.strip() == header.strip():
        return header
    return f"{header}\n{body}"


def _result_outputs(shell: Any, n: int) -> tuple[str, ...]:
    """IPython < 9.1: the result (``Out[n]``); IPython recorded no printed output."""
    out = getattr(shell.history_manager, "output_hist", None) or shell.user_ns.get("Out", {})
    if n not in out:
        return ()
    try:
        text = repr(out[n])
    except Exception:  # a user object's __repr__; the snapshot must not fail on it
        return (f"<unrepresentable {type(out[n]).__name__}>",)
    return (strip_ansi(shorten(text, OUTPUT_HEAD_CHARS + OUTPUT_TAIL_CHARS)),)


def _recorded_cell(shell: Any, n: int, recorder: Recorder) -> tuple[tuple[str, ...], str | None]:
    """Outputs and error of cell ``n`` from the recorder: printed output, then ``Out[n]``."""
    capture = recorder.cell(n)
    if capture is None:
        return _result_outputs(shell, n), None
    printed = (text for text in map(_captured_text, capture.streams) if text)
    error = _captured_error_text(capture.error) if capture.error is not None else None
    return (*printed, *_result_outputs(shell, n)), error


def _history_cell(shell: Any, n: int) -> tuple[tuple[str, ...], str | None]:
    """Outputs and error of cell ``n`` as IPython recorded them (outputs: IPython >= 9.1)."""
    history = shell.history_manager
    recorded = getattr(history, "outputs", None)
    if recorded is None:
        outputs = _result_outputs(shell, n)
    else:
        # .get, not [n]: outputs is a defaultdict and a lookup must not add entries.
        outputs = tuple(text for text in map(_output_text, recorded.get(n, ())) if text)
    error = getattr(history, "exceptions", {}).get(n)
    return outputs, _error_text(error) if error else None


def _cell_record(shell: Any, n: int, recorder: Recorder | None) -> CellRecord:
    source = shell.history_manager.input_hist_raw[n]
    if recorder is not None:
        outputs, error = _recorded_cell(shell, n, recorder)
    else:
        outputs, error = _history_cell(shell, n)
    return CellRecord(
        execution_count=n,
        source=source,
        outputs=outputs,
        error=error,
        is_chat=bool(_CHAT_CELL_RE.search(source)),
    )


def _package_dirs(names: Iterable[str]) -> tuple[str, ...]:
    dirs = []
    for name in names:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            dirs.append(os.path.dirname(path) + os.sep)
    return tuple(dirs)


def _drop_frames(exc: traceback.TracebackException, internal: tuple[str, ...]) -> None:
    """Remove IPython's and ipykernel's own frames: noise to the model (jupyter-notes)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        kept = [f for f in current.stack if not f.filename.startswith(internal)]
        current.stack = traceback.StackSummary.from_list(kept)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        todo.extend(getattr(current, "exceptions", None) or ())


def _last_error() -> str | None:
    value = getattr(sys, "last_value", None)
    if not isinstance(value, BaseException):
        return None
    tb: TracebackType | None = getattr(sys, "last_traceback", None) or value.__traceback__
    exc = traceback.TracebackException(type(value), value, tb)
    _drop_frames(exc, _package_dirs(("IPython", "ipykernel")))
    return bounded_text(["".join(exc.format())]).rstrip("\n")


def notebook_path(namespace: Mapping[str, Any]) -> str | None:
    """The notebook file of the kernel, when it is known and exists."""
    vscode = namespace.get("__vsc_ipynb_file__")
    if isinstance(vscode, str) and vscode:
        return vscode
    session = os.environ.get("JPY_SESSION_NAME", "")
    # Remote VS Code sessions put a non-path name here ("...-jvsc-..."); only a real file counts.
    if session.endswith(".ipynb") and os.path.isfile(session):
        return session
    return None


@functools.lru_cache(maxsize=2)
def _notebook_cells(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    """``(cell_type, source)`` of every cell; cached per file version (path, mtime, size)."""
    import nbformat  # lazy: only needed when a notebook path is known

    with warnings.catch_warnings():
        # nbformat warns about old or unusual notebooks; that is not the user's concern here.
        warnings.simplefilter("ignore")
        notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    return tuple((str(c.get("cell_type", "")), str(c.get("source", ""))) for c in notebook.cells)


def _attach_markdown(
    notebook_cells: Iterable[tuple[str, str]], cells: Sequence[CellRecord]
) -> tuple[tuple[int, str], ...]:
    # A source run several times belongs to its newest run.
    by_source = {cell.source.rstrip(): cell.execution_count for cell in cells}
    pending: list[str] = []
    attached: list[tuple[int, str]] = []
    for cell_type, source in notebook_cells:
        if cell_type == "markdown":
            if source.strip():
                pending.append(bounded_text([source]))
        elif cell_type == "code":
            count = by_source.get(source.rstrip(), -1)
            attached.extend((count, text) for text in pending)
            pending = []
    attached.extend((-1, text) for text in pending)
    return tuple(attached)


def _markdown_cells(path: str | None, cells: Sequence[CellRecord]) -> tuple[tuple[int, str], ...]:
    if path is None:
        return ()
    try:
        stat = os.stat(path)
        if stat.st_size > _MAX_NOTEBOOK_BYTES:
            return ()
        notebook_cells = _notebook_cells(path, stat.st_mtime_ns, stat.st_size)
    # Best-effort context: a missing, unreadable or invalid notebook file (OSError,
    # JSON or nbformat validation errors of many kinds) just means no Markdown.
    except Exception:
        return ()
    return _attach_markdown(notebook_cells, cells)


def running_cell(shell: Any) -> int:
    """The number of the cell that is running now.

    Its input is stored before it runs, so it is the last entry of ``input_hist_raw``.
    (``execution_count`` is no guide: IPython 9 increments it before a magic runs,
    IPython 8 after the cell.)
    """
    return len(shell.history_manager.input_hist_raw) - 1


def take_snapshot(
    shell: Any, *, since: int | None = None, limit: int = 200, recorder: Recorder | None = None
) -> NotebookSnapshot:
    """The executed cells, namespace, last error and notebook Markdown of ``shell``.

    Call it while a cell runs (from a magic): the running cell is left out. Only cells
    numbered above ``since`` (when given) are read, at most ``limit`` of them, the newest.
    ``recorder``, when given, supplies printed output and errors instead of the history
    manager (the magic has one only where IPython < 9.1 records neither).
    """
    newest = running_cell(shell) - 1
    oldest = max(1, newest - limit + 1, (since + 1) if since is not None else 1)
    cells = tuple(_cell_record(shell, n, recorder) for n in range(oldest, newest + 1))
    namespace: Mapping[str, Any] = shell.user_ns
    path = notebook_path(namespace)
    return NotebookSnapshot(
        cells=cells,
        namespace=namespace,
        last_error=_last_error(),
        notebook_path=path,
        markdown_cells=_markdown_cells(path, cells),
        since=since,
    )


def read_cell(shell: Any, number: int, recorder: Recorder | None = None) -> CellRecord | None:
    """Cell ``In[number]`` as plain bounded text; None when no such cell has run.

    The running cell counts (its source is stored before it runs; it has no output yet).
    """
    if not 1 <= number <= running_cell(shell):
        return None
    return _cell_record(shell, number, recorder)
