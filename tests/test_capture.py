"""Printed output recorded by ormagic where IPython (< 9.1) keeps none, in a real shell.

Run under IPython < 9.1 (Python 3.10's venv), :func:`install` registers the recorder for
real. IPython >= 9.1 keeps outputs itself and ``install`` does nothing there; the recorder
is then registered on the shell's events by hand, the same way ``install`` would.
"""

from __future__ import annotations

import io
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from IPython.core.history import HistoryManager
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from ormagic.context.capture import (
    MAX_CELLS,
    CapturedText,
    CellCapture,
    Recorder,
    install,
    uninstall,
)
from ormagic.context.snapshot import NotebookSnapshot, take_snapshot
from ormagic.jupyter.notebook import format_error, shell_writers

IPYTHON_KEEPS_OUTPUTS = hasattr(HistoryManager, "outputs")  # IPython >= 9.1
needs_old_ipython = pytest.mark.skipif(
    IPYTHON_KEEPS_OUTPUTS, reason="IPython >= 9.1 keeps outputs: install() does nothing"
)
needs_new_ipython = pytest.mark.skipif(
    not IPYTHON_KEEPS_OUTPUTS, reason="IPython < 9.1 keeps no outputs"
)
_LAST_ERROR_ATTRS = ("last_type", "last_value", "last_traceback", "last_exc")


def fresh_streams(monkeypatch: pytest.MonkeyPatch) -> tuple[io.StringIO, io.StringIO]:
    """New sys.stdout and sys.stderr for the rest of the test, put back whatever it did.

    Called in the test, not in a fixture: pytest's own capture replaces sys.stdout for the
    test call after the fixtures are set up.
    """
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    return out, err


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    for name in _LAST_ERROR_ATTRS:
        monkeypatch.delattr(sys, name, raising=False)
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    ip.history_manager.reset()
    yield ip
    ip.history_manager.reset()
    InteractiveShell.clear_instance()
    for name in _LAST_ERROR_ATTRS:
        monkeypatch.delattr(sys, name, raising=False)


@pytest.fixture
def recorder(shell: InteractiveShell) -> Iterator[Recorder]:
    """The recorder ``%load_ext ormagic`` installs, with the magic's hooks into the shell."""
    hooks = {
        "format_error": lambda error: format_error(shell, error),
        "shell_writers": shell_writers(shell),
    }
    installed = install(shell, **hooks)
    recorder = Recorder(**hooks) if installed is None else installed
    if installed is None:
        recorder.register(shell.events)
    yield recorder
    uninstall(shell)
    recorder.unregister(shell.events)


def run(ip: InteractiveShell, *cells: str) -> None:
    for cell in cells:
        ip.run_cell(cell, store_history=True)


def snapshot_in_cell(ip: InteractiveShell, recorder: Recorder) -> NotebookSnapshot:
    """Take the snapshot from inside a running cell, as the %%chat magic does."""
    ip.user_ns.update(take_snapshot_=take_snapshot, recorder_=recorder)
    ip.run_cell("snap_ = take_snapshot_(get_ipython(), recorder=recorder_)", store_history=True)
    snap: NotebookSnapshot = ip.user_ns.pop("snap_")
    return snap


def stdout(text: str) -> CapturedText:
    return CapturedText("stdout", text, "", len(text))


def stderr(text: str) -> CapturedText:
    return CapturedText("stderr", text, "", len(text))


# --------------------------------------------------------------------------- recording


def test_printed_output_is_recorded_per_cell(
    shell: InteractiveShell, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = fresh_streams(monkeypatch)
    run(shell, "print('one')", "x = 1", "print('two', end='')\nprint('three')")
    assert recorder.cell(1) == CellCapture((stdout("one\n"),), None)
    assert recorder.cell(2) is None
    assert recorder.cell(3) == CellCapture((stdout("twothree\n"),), None)
    # ... and the user saw all of it: the tee writes through
    assert streams[0].getvalue() == "one\ntwothree\n"
    snap = snapshot_in_cell(shell, recorder)
    assert [(c.source, c.outputs) for c in snap.cells] == [
        ("print('one')", ("one\n",)),
        ("x = 1", ()),
        ("print('two', end='')\nprint('three')", ("twothree\n",)),
    ]


def test_stderr_is_recorded_too(
    shell: InteractiveShell, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = fresh_streams(monkeypatch)
    run(
        shell,
        "import sys\nprint('out')\nprint('err', file=sys.stderr)\nprint('out again')",
        "sys.stderr.writelines(['a\\n', 'b\\n'])",
    )
    assert recorder.cell(1) == CellCapture((stdout("out\nout again\n"), stderr("err\n")), None)
    assert recorder.cell(2) == CellCapture((stderr("a\nb\n"),), None)
    assert streams[1].getvalue() == "err\na\nb\n"
    assert [c.outputs for c in snapshot_in_cell(shell, recorder).cells] == [
        ("out\nout again\n", "err\n"),
        ("a\nb\n",),
    ]


def test_a_3mb_print_keeps_head_tail_and_the_exact_marker(
    shell: InteractiveShell, recorder: Recorder
) -> None:
    run(shell, "print('a' * 1_500_000 + 'b' * 1_500_000)")
    # print writes the text and then "\n": 3,000,001 characters, 8,000 of them kept.
    assert recorder.cell(1) == CellCapture(
        (CapturedText("stdout", "a" * 4000, "b" * 3999 + "\n", 3_000_001),), None
    )
    (cell,) = snapshot_in_cell(shell, recorder).cells
    assert cell.outputs == (
        "a" * 4000 + "\n… [2,992,001 characters left out] …\n" + "b" * 3999 + "\n",
    )


class Sink(io.TextIOBase):
    """A stdout that keeps nothing, so that only the recorder could hold the text."""

    def write(self, text: str) -> int:
        return len(text)


def test_output_is_bounded_as_it_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    # Driven by the callbacks directly: inside run_cell, IPython >= 9.1 keeps every chunk
    # itself, which would hide what the recorder holds.
    monkeypatch.setattr(sys, "stdout", Sink())
    recorder = Recorder()
    info = SimpleNamespace(store_history=True)
    recorder.pre_run_cell(info)
    tracemalloc.start()
    try:
        for i in range(1000):
            print(chr(97 + i % 26) * 3000)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        recorder.post_run_cell(
            SimpleNamespace(
                info=info, execution_count=1, error_in_exec=None, error_before_exec=None
            )
        )
    # 3 MB went through; what stays allocated is about the bounded copy (8,000 characters)
    assert held < 100_000
    capture = recorder.cell(1)
    assert capture is not None
    (text,) = capture.streams
    assert (text.head, text.tail, text.total) == (
        "a" * 3000 + "\n" + "b" * 999,
        "k" * 998 + "\n" + "l" * 3000 + "\n",
        3_001_000,
    )


@pytest.mark.parametrize("sizes", [(3999, 2, 4000, 5), (1,) * 9000, (8000, 1), (4001, 3999, 7)])
def test_head_and_tail_are_exactly_the_first_and_last_characters(
    shell: InteractiveShell,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    sizes: tuple[int, ...],
) -> None:
    # Writes that straddle the head's end, many one-character writes, one huge write ...
    streams = fresh_streams(monkeypatch)
    shell.user_ns["sizes"] = sizes
    run(
        shell,
        "import sys\n"
        "for n, size in enumerate(sizes):\n"
        "    sys.stdout.write(''.join(chr(48 + (n * 7 + i) % 75) for i in range(size)))",
    )
    written = streams[0].getvalue()
    assert len(written) == sum(sizes)
    capture = recorder.cell(1)
    assert capture is not None
    (text,) = capture.streams
    if len(written) <= 8000:
        assert (text.head, text.tail) == (written[:4000], written[4000:])
    else:
        assert (text.head, text.tail) == (written[:4000], written[-4000:])
    assert (text.total, text.left_out) == (len(written), max(len(written) - 8000, 0))


def test_a_write_through_two_tees_is_recorded_once_and_later_tees_still_record(
    shell: InteractiveShell, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = fresh_streams(monkeypatch)
    # A logging handler keeps the sys.stderr of its cell (our tee) for good; a cell
    # that wraps sys.stdout puts our tee inside its own object.
    run(
        shell,
        "import logging, sys\n"
        "handler = logging.StreamHandler(sys.stderr)\n"
        "log = logging.getLogger('ormagic-test-capture')\n"
        "log.addHandler(handler)\nlog.propagate = False\n"
        "class Loud:\n"
        "    def __init__(self, inner):\n        self.inner = inner\n"
        "    def write(self, text):\n        return self.inner.write(text.upper())\n"
        "    def flush(self):\n        self.inner.flush()\n"
        "sys.stdout = Loud(sys.stdout)",
        "log.warning('second cell')\nprint('quiet')",
    )
    try:
        # recorded as printed, by the outermost tee
        assert recorder.cell(2) == CellCapture((stderr("second cell\n"), stdout("quiet\n")), None)
        assert streams[1].getvalue() == "second cell\n"
        assert streams[0].getvalue() == "QUIET\n"
    finally:
        shell.user_ns["log"].removeHandler(shell.user_ns["handler"])


class KernelStream(io.StringIO):
    """Stands in for ipykernel's OutStream: methods and attributes beyond TextIO's."""

    def __init__(self) -> None:
        super().__init__()
        self.parents: list[dict[str, Any]] = []
        self.session = "the kernel session"

    def set_parent(self, parent: dict[str, Any]) -> None:
        self.parents.append(parent)

    def isatty(self) -> bool:
        return True


def test_the_tee_forwards_every_other_attribute(
    shell: InteractiveShell, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel_stream = KernelStream()
    monkeypatch.setattr(sys, "stdout", kernel_stream)
    shell.user_ns["kernel_stream"] = kernel_stream
    run(
        shell,
        "import sys\n"
        "sys.stdout.set_parent({'msg_id': 'abc'})\n"
        "facts = (sys.stdout is kernel_stream, sys.stdout.isatty(), sys.stdout.session,"
        " sys.stdout.closed)\n"
        "sys.stdout.flush()\nprint('hello')",
    )
    assert kernel_stream.parents == [{"msg_id": "abc"}]
    assert shell.user_ns["facts"] == (False, True, "the kernel session", False)
    assert kernel_stream.getvalue() == "hello\n"
    assert recorder.cell(1) == CellCapture((stdout("hello\n"),), None)
    assert sys.stdout is kernel_stream


def test_what_the_shell_itself_prints_is_not_the_cells_output(
    shell: InteractiveShell, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = fresh_streams(monkeypatch)
    run(shell, "print('gamma')\n3 + 4", "from IPython.display import display\ndisplay('shown')")
    # A plain shell prints the result and the display on stdout; the user sees them ...
    assert streams[0].getvalue() == "gamma\nOut[1]: 7\n'shown'\n"
    # ... but only the print is the cell's printed output; the result comes from Out[1].
    assert recorder.cell(1) == CellCapture((stdout("gamma\n"),), None)
    assert recorder.cell(2) is None
    assert [c.outputs for c in snapshot_in_cell(shell, recorder).cells] == [("gamma\n", "7"), ()]


# --------------------------------------------------------------------------- restoring


def test_streams_are_restored_after_an_exception(
    shell: InteractiveShell, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = fresh_streams(monkeypatch)
    run(shell, "import sys\nprint('before')\nsys.stderr.write('warned\\n')\n1/0")
    assert sys.stdout is streams[0]
    assert sys.stderr is streams[1]
    capture = recorder.cell(1)
    assert capture is not None
    assert capture.error is not None
    assert (capture.error.ename, capture.error.evalue) == ("ZeroDivisionError", "division by zero")
    assert capture.streams == (stdout("before\n"), stderr("warned\n"))
    # A plain shell prints the traceback on stdout itself: shown, but not the cell's output.
    assert streams[0].getvalue().startswith("before\n")
    assert "ZeroDivisionError" in streams[0].getvalue()


def test_a_cell_that_replaces_stdout_keeps_its_replacement(
    shell: InteractiveShell, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = fresh_streams(monkeypatch)
    run(shell, "import io, sys\nmine = io.StringIO()\nsys.stdout = mine\nprint('to mine')")
    mine = shell.user_ns["mine"]
    assert sys.stdout is mine
    assert recorder.cell(1) is None  # the print went straight to the cell's own stream
    run(shell, "print('next')")
    assert sys.stdout is mine
    assert mine.getvalue() == "to mine\nnext\n"
    assert recorder.cell(2) == CellCapture((stdout("next\n"),), None)
    assert sys.stderr is streams[1]


def test_an_empty_cell_run_inside_a_cell_does_not_end_the_capture(
    shell: InteractiveShell, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = fresh_streams(monkeypatch)
    # IPython triggers post_run_cell for an empty cell without pre_run_cell.
    run(shell, "get_ipython().run_cell('   ')\nprint('still recorded')")
    assert recorder.cell(1) == CellCapture((stdout("still recorded\n"),), None)
    assert sys.stdout is streams[0]


def test_a_cell_without_a_result_restores_the_streams(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = fresh_streams(monkeypatch)
    # ipykernel passes None to post_run_cell when an interrupt cancelled the cell.
    recorder.pre_run_cell(object())
    print("interrupted")
    assert sys.stdout is not streams[0]
    recorder.post_run_cell(None)
    assert (sys.stdout, sys.stderr) == streams
    assert streams[0].getvalue() == "interrupted\n"
    assert recorder.counts() == ()


def test_unregistering_inside_a_cell_puts_the_streams_back(
    shell: InteractiveShell, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = fresh_streams(monkeypatch)
    # %unload_ext ormagic in a cell: post_run_cell is no longer registered when it ends.
    shell.user_ns["recorder_"] = recorder
    run(shell, "recorder_.unregister(get_ipython().events)\nimport sys\nkind = type(sys.stdout)")
    assert shell.user_ns["kind"] is io.StringIO
    assert (sys.stdout, sys.stderr) == streams
    assert recorder.pre_run_cell not in shell.events.callbacks["pre_run_cell"]
    assert recorder.post_run_cell not in shell.events.callbacks["post_run_cell"]


# --------------------------------------------------------------------------- errors


def test_errors_are_recorded_as_ipython_shows_them(
    shell: InteractiveShell, recorder: Recorder
) -> None:
    run(shell, "def f():\n    return 1/0\nf()", "%no_such_magic", "x = (")
    cells = snapshot_in_cell(shell, recorder).cells
    # the shell's own printing of the errors is not recorded as the cells' output
    assert [cell.outputs for cell in cells] == [(), (), ()]
    error = cells[0].error
    assert error is not None
    assert error.startswith("ZeroDivisionError: division by zero\n")
    assert "----> 3 f()" in error
    assert "----> 2     return 1/0" in error
    assert "\x1b" not in error
    assert cells[1].error == "UsageError: Line magic function `%no_such_magic` not found."
    assert cells[2].error is not None
    assert cells[2].error.startswith("SyntaxError: ")
    assert "x = (" in cells[2].error


def test_a_failing_formatter_falls_back_to_the_traceback_module(shell: InteractiveShell) -> None:
    plain = Recorder(format_error=lambda error: [str(1 / 0)])
    plain.register(shell.events)
    try:
        run(shell, "raise KeyError('missing')")
    finally:
        plain.unregister(shell.events)
    capture = plain.cell(1)
    assert capture is not None
    assert capture.error is not None
    assert (capture.error.ename, capture.error.evalue) == ("KeyError", "'missing'")
    assert capture.error.traceback.head.startswith("Traceback (most recent call last):\n")
    assert capture.error.traceback.head.endswith("KeyError: 'missing'")


def test_only_the_newest_cells_are_kept(shell: InteractiveShell) -> None:
    assert MAX_CELLS == 1000
    small = Recorder(max_cells=3)
    small.register(shell.events)
    try:
        run(shell, *(f"print({i})" for i in range(1, 6)))
    finally:
        small.unregister(shell.events)
    assert small.counts() == (3, 4, 5)
    assert [small.cell(n) for n in range(1, 6)] == [
        None,
        None,
        CellCapture((stdout("3\n"),), None),
        CellCapture((stdout("4\n"),), None),
        CellCapture((stdout("5\n"),), None),
    ]


def test_a_cell_not_stored_in_history_is_not_recorded(
    shell: InteractiveShell, recorder: Recorder
) -> None:
    shell.run_cell("print('not in history')", store_history=False)
    run(shell, "y = 2")
    assert recorder.counts() == ()


# --------------------------------------------------------------------------- install


@needs_new_ipython
def test_nothing_is_installed_where_ipython_keeps_outputs(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_streams(monkeypatch)
    before = {event: list(shell.events.callbacks[event]) for event in shell.events.callbacks}
    assert install(shell) is None
    run(shell, "import sys\nkind = type(sys.stdout)")
    assert shell.user_ns["kind"] is io.StringIO
    assert {event: list(shell.events.callbacks[event]) for event in before} == before


@needs_old_ipython
def test_install_registers_and_uninstall_unregisters(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_streams(monkeypatch)
    recorder = install(shell)
    assert isinstance(recorder, Recorder)
    assert install(shell) is recorder
    assert recorder.pre_run_cell in shell.events.callbacks["pre_run_cell"]
    assert recorder.post_run_cell in shell.events.callbacks["post_run_cell"]
    run(shell, "print('recorded')")
    uninstall(shell)
    assert recorder.pre_run_cell not in shell.events.callbacks["pre_run_cell"]
    assert recorder.post_run_cell not in shell.events.callbacks["post_run_cell"]
    run(shell, "import sys\nkind = type(sys.stdout)\nprint('not recorded')")
    assert shell.user_ns["kind"] is io.StringIO
    assert recorder.cell(1) == CellCapture((stdout("recorded\n"),), None)
    assert recorder.cell(2) is None
    uninstall(shell)  # a second uninstall is a no-op


def test_load_ext_installs_only_where_needed_and_unload_removes_it(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    streams = fresh_streams(monkeypatch)
    before = {event: list(shell.events.callbacks[event]) for event in shell.events.callbacks}
    shell.run_line_magic("load_ext", "ormagic")
    try:
        assert streams[0].getvalue() == ""  # loading prints nothing
        run(shell, "print('hello')\n3 + 4")
        run(shell, "%chat context --context all Explain")
        shown = streams[0].getvalue()
        assert shown.startswith("hello\nOut[1]: 7\nContext for the next %%chat: about ")
        assert (
            "In [1]:\n```python\nprint('hello')\n3 + 4\n```\nOut [1]:\n```\nhello\n7\n```" in shown
        )
        added = len(shell.events.callbacks["pre_run_cell"]) - len(before["pre_run_cell"])
        assert added == (0 if IPYTHON_KEEPS_OUTPUTS else 1)
    finally:
        shell.run_line_magic("unload_ext", "ormagic")
    assert {event: list(shell.events.callbacks[event]) for event in before} == before


@needs_old_ipython
def test_the_record_output_trait_switches_recording_off_and_on(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_streams(monkeypatch)
    shell.run_line_magic("load_ext", "ormagic")
    try:
        [recorder] = [
            cb.__self__
            for cb in shell.events.callbacks["pre_run_cell"]
            if isinstance(getattr(cb, "__self__", None), Recorder)
        ]
        run(shell, "%config ChatMagics.record_output = False")
        assert recorder.pre_run_cell not in shell.events.callbacks["pre_run_cell"]
        run(shell, "print('not recorded')")
        run(shell, "%config ChatMagics.record_output = True")
        again = [
            cb.__self__
            for cb in shell.events.callbacks["pre_run_cell"]
            if isinstance(getattr(cb, "__self__", None), Recorder)
        ]
        assert len(again) == 1
        run(shell, "print('recorded again')")
        texts = [c.streams[0].head for c in map(again[0].cell, again[0].counts()) if c.streams]
        assert texts == ["recorded again\n"]
    finally:
        shell.run_line_magic("unload_ext", "ormagic")
