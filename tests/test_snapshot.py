"""take_snapshot on a real IPython InteractiveShell: what a later %%chat would see."""

from __future__ import annotations

import base64
import re
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest
from IPython.core.history import HistoryManager
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from ormagic.context.capture import install, uninstall
from ormagic.context.snapshot import CellRecord, NotebookSnapshot, take_snapshot
from ormagic.jupyter.notebook import format_error, shell_writers

# IPython < 9.1 keeps no outputs: there the recorder %load_ext installs records them.
IPYTHON_KEEPS_OUTPUTS = hasattr(HistoryManager, "outputs")
TIMES = "\u00d7"  # the multiplication sign in "640×480"  # noqa: RUF003
_LAST_ERROR_ATTRS = ("last_type", "last_value", "last_traceback", "last_exc")


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A fresh shell with in-memory history; sys.last_* restored afterwards."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    saved = {name: getattr(sys, name) for name in _LAST_ERROR_ATTRS if hasattr(sys, name)}
    for name in _LAST_ERROR_ATTRS:
        if hasattr(sys, name):
            delattr(sys, name)
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    # HistoryManager.outputs is a class-level dict, shared by every shell: start clean.
    ip.history_manager.reset()
    ip.user_ns["take_snapshot"] = take_snapshot
    ip.user_ns["recorder"] = install(
        ip, format_error=lambda error: format_error(ip, error), shell_writers=shell_writers(ip)
    )
    yield ip
    uninstall(ip)
    ip.history_manager.reset()
    InteractiveShell.clear_instance()
    for name in _LAST_ERROR_ATTRS:
        if hasattr(sys, name):
            delattr(sys, name)
    for name, value in saved.items():
        setattr(sys, name, value)


def run(ip: InteractiveShell, *cells: str) -> None:
    for cell in cells:
        ip.run_cell(cell, store_history=True)


def snapshot_in_cell(ip: InteractiveShell, args: str = "") -> NotebookSnapshot:
    """Take the snapshot from inside a running cell, as the %%chat magic does."""
    ip.run_cell(
        f"snap_ = take_snapshot(get_ipython(){args}, recorder=recorder)", store_history=True
    )
    snap: NotebookSnapshot = ip.user_ns.pop("snap_")
    return snap


def png_base64(width: int, height: int) -> str:
    """The start of a PNG: signature and IHDR chunk (enough for the size)."""
    ihdr = struct.pack(">II", width, height) + bytes([8, 6, 0, 0, 0])
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 20
    return base64.b64encode(data).decode()


def test_printed_output_results_and_stderr(shell: InteractiveShell) -> None:
    run(shell, "print('hello')", "1 + 1", "import sys\nprint('oops', file=sys.stderr)", "x = 5")
    snap = snapshot_in_cell(shell)
    assert snap.cells == (
        CellRecord(1, "print('hello')", ("hello\n",), None, False),
        CellRecord(2, "1 + 1", ("2",), None, False),
        CellRecord(3, "import sys\nprint('oops', file=sys.stderr)", ("oops\n",), None, False),
        CellRecord(4, "x = 5", (), None, False),
    )
    assert snap.namespace["x"] == 5
    assert snap.last_error is None
    assert snap.notebook_path is None
    assert snap.markdown_cells == ()


def test_error_with_traceback_without_ansi(shell: InteractiveShell) -> None:
    run(shell, "def f():\n    return 1/0\nf()")
    snap = snapshot_in_cell(shell)
    (cell,) = snap.cells
    assert cell.error is not None
    assert cell.error.startswith("ZeroDivisionError: division by zero\n")
    assert "----> 3 f()" in cell.error
    assert "----> 2     return 1/0" in cell.error
    assert "\x1b" not in cell.error
    assert snap.last_error is not None
    # IPython's own frames (run_code in interactiveshell.py) are gone.
    pattern = (
        r"Traceback \(most recent call last\):\n"
        r'  File "<ipython-input-1-\w+>", line 3, in <module>\n    f\(\)\n'
        # Python 3.11+ underlines the failing expression on a line of its own
        r'  File "<ipython-input-1-\w+>", line 2, in f\n    return 1/0\n(?:.*\n)?'
        r"ZeroDivisionError: division by zero"
    )
    assert re.fullmatch(pattern, snap.last_error), snap.last_error


def test_a_3mb_print_is_bounded_to_head_and_tail(shell: InteractiveShell) -> None:
    run(shell, "print('a' * 1_500_000 + 'b' * 1_500_000)")
    (cell,) = snapshot_in_cell(shell).cells
    # print writes the text and then "\n": 3,000,001 characters, 8,000 of them kept.
    assert cell.outputs == (
        "a" * 4000 + "\n… [2,992,001 characters left out] …\n" + "b" * 3999 + "\n",
    )


def test_ansi_codes_and_progress_bars_are_cleaned(shell: InteractiveShell) -> None:
    run(
        shell,
        "print('\\x1b[31mred\\x1b[0m plain')",
        "print('10%\\r50%\\r100%')\nprint('done')",
    )
    snap = snapshot_in_cell(shell)
    assert [c.outputs for c in snap.cells] == [("red plain\n",), ("100%\ndone\n",)]


@pytest.mark.skipif(not IPYTHON_KEEPS_OUTPUTS, reason="IPython < 9.1 records no display_data")
def test_display_of_a_png_becomes_a_note(shell: InteractiveShell) -> None:
    shell.user_ns["png"] = png_base64(640, 480)
    run(
        shell,
        "from IPython.display import display\n"
        "display({'image/png': png, 'text/plain': '<IPython.core.display.Image object>'},"
        " raw=True)",
        "display({'image/png': png, 'text/plain': '<Figure size 640x480 with 1 Axes>'}, raw=True)",
        "display({'image/png': 'not base64!', 'text/plain': 'broken'}, raw=True)",
    )
    snap = snapshot_in_cell(shell)
    assert [c.outputs for c in snap.cells] == [
        (f"[image/png 640{TIMES}480]",),
        (f"[image/png 640{TIMES}480]\n<Figure size 640x480 with 1 Axes>",),
        ("[image/png]\nbroken",),
    ]
    assert all(png not in str(c) for c in snap.cells for png in [shell.user_ns["png"]])


def test_since_and_limit_choose_the_newest_cells(shell: InteractiveShell) -> None:
    run(shell, "a = 1", "b = 2", "c = 3", "d = 4", "e = 5")
    assert [c.execution_count for c in snapshot_in_cell(shell, ", since=3").cells] == [4, 5]
    assert [c.source for c in snapshot_in_cell(shell, ", limit=2").cells] == [
        "e = 5",
        "snap_ = take_snapshot(get_ipython(), since=3, recorder=recorder)",
    ]
    snap = snapshot_in_cell(shell, ", since=7")
    assert snap.cells == ()
    assert snap.since == 7


def test_chat_cells_are_marked(shell: InteractiveShell) -> None:
    # A stand-in for ormagic's magic, so that the cells run as they would in a notebook.
    shell.register_magic_function(lambda line, cell=None: None, "line_cell", "chat")
    run(shell, "x = 1", "%%chat\nwhat is x?", "%chat history", "y = '%%chat'")
    assert [c.is_chat for c in snapshot_in_cell(shell).cells] == [False, True, True, False]


def write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Sales analysis"),
        nbformat.v4.new_markdown_cell("Load the data first."),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("Then print it."),
        nbformat.v4.new_code_cell("print(x)"),
        nbformat.v4.new_markdown_cell("Never run."),
        nbformat.v4.new_code_cell("x = 2"),
        nbformat.v4.new_markdown_cell("The end."),
    ]
    nbformat.write(notebook, str(path))


EXPECTED_MARKDOWN = (
    (1, "# Sales analysis"),
    (1, "Load the data first."),
    (2, "Then print it."),
    (-1, "Never run."),
    (-1, "The end."),
)


def test_markdown_cells_found_via_jpy_session_name(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "analysis.ipynb"
    write_notebook(path)
    before = path.read_bytes(), path.stat().st_mtime_ns
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    run(shell, "x = 1", "print(x)")
    snap = snapshot_in_cell(shell)
    assert snap.notebook_path == str(path)
    assert snap.markdown_cells == EXPECTED_MARKDOWN
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_markdown_cells_found_via_vscode_variable(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "vscode.ipynb"
    write_notebook(path)
    monkeypatch.setenv("JPY_SESSION_NAME", "remote-jvsc-1234.ipynb")
    shell.user_ns["__vsc_ipynb_file__"] = str(path)
    run(shell, "x = 1", "print(x)")
    snap = snapshot_in_cell(shell)
    assert snap.notebook_path == str(path)
    assert snap.markdown_cells == EXPECTED_MARKDOWN


def test_a_session_name_that_is_not_a_file_gives_no_path(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "remote-jvsc-1234.ipynb")
    snap = snapshot_in_cell(shell)
    assert (snap.notebook_path, snap.markdown_cells) == (None, ())


def test_an_unreadable_notebook_gives_no_markdown(shell: InteractiveShell, tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text("{ this is not json")
    shell.user_ns["__vsc_ipynb_file__"] = str(path)
    run(shell, "x = 1")
    snap = snapshot_in_cell(shell)
    assert (snap.notebook_path, snap.markdown_cells) == (str(path), ())
    assert [c.source for c in snap.cells] == ["x = 1"]
    assert path.read_text() == "{ this is not json"


def test_older_ipython_falls_back_to_out_reprs() -> None:
    # IPython < 9.1: no history_manager.outputs or .exceptions, only Out[n].
    history = SimpleNamespace(
        input_hist_raw=["", "print('hi')", "[1, 2]", "1/0", "take_snapshot(get_ipython())"],
        output_hist={2: [1, 2]},
    )
    namespace: dict[str, Any] = {"Out": history.output_hist}
    old_shell = SimpleNamespace(history_manager=history, user_ns=namespace, execution_count=5)
    snap = take_snapshot(old_shell)
    assert snap.cells == (
        CellRecord(1, "print('hi')", (), None, False),
        CellRecord(2, "[1, 2]", ("[1, 2]",), None, False),
        CellRecord(3, "1/0", (), None, False),
    )
