"""The suite's isolation (conftest): a user's environment and an earlier test cannot change
what a test sees."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from conftest import BEHAVIOUR_VARIABLES, forget_session_state, new_shell
from IPython.core.interactiveshell import InteractiveShell
from kernel_support import start_kernel
from processes import python_child

import ormagic
from ormagic.api.hooks import publisher_factory, set_publisher_factory
from ormagic.engine import session
from ormagic.engine.engine import default_engine
from ormagic.engine.options import DEFAULT_MODEL
from ormagic.engine.tools import user_tools
from ormagic.errors import ConfigError
from ormagic.jupyter import extension
from ormagic.testing.fake_openrouter import FakeOpenRouter

ROOT = Path(__file__).resolve().parent.parent


def test_every_variable_ormagic_reads_is_cleaned() -> None:
    read = set()
    for path in (ROOT / "ormagic").rglob("*.py"):
        read |= set(re.findall(r"\b((?:ORMAGIC|OPENROUTER)_[A-Z_]+)\b", path.read_text()))
    assert read and read <= set(BEHAVIOUR_VARIABLES)


def test_a_test_has_its_own_directories_and_none_of_the_users_settings(tmp_path: Path) -> None:
    assert os.environ["IPYTHONDIR"] == str(tmp_path / "ipython")
    assert os.environ["ORMAGIC_CACHE_DIR"] == str(tmp_path / "cache")
    others = set(BEHAVIOUR_VARIABLES) - {"IPYTHONDIR", "ORMAGIC_CACHE_DIR"}
    assert others & set(os.environ) == set()


def test_a_users_settings_do_not_reach_the_tests(tmp_path: Path) -> None:
    # the answer's footer names the default model, the history holds only the test's cells
    env = {
        **os.environ,
        "ORMAGIC_MODEL": "user/own-model",
        "OPENROUTER_API_KEY": "sk-or-v1-users-own",
        "OPENROUTER_BASE_URL": "http://127.0.0.1:9/api/v1",
        "ORMAGIC_CACHE_DIR": str(tmp_path / "users-cache"),
        "IPYTHONDIR": str(tmp_path / "users-ipython"),
    }
    tests = [
        "tests/test_magic_shell.py::test_terminal_output_is_plain_text",
        "tests/test_isolation.py::test_a_test_has_its_own_directories_and_none_of_the_users_settings",
    ]
    result = python_child(
        # its own basetemp: a numbered one would count towards those pytest prunes
        *("-m", "pytest", "-q", "-p", "no:cacheprovider"),
        *("--basetemp", str(tmp_path / "basetemp"), *tests),
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout
    assert not (tmp_path / "users-cache").exists() and not (tmp_path / "users-ipython").exists()


def test_forgetting_the_session_state_leaves_nothing_behind(fake_env: FakeOpenRouter) -> None:
    # what a test can leave behind: the extension loaded on a shell it never unloads, a
    # configured session engine, a registered tool, a notebook publisher, a last batch
    shell = new_shell()
    try:
        shell.run_line_magic("load_ext", "ormagic")

        @ormagic.tool
        def leftover() -> str:
            """Left behind."""
            return ""

        ormagic.configure(model="left/behind")
        ormagic.map("{item}", ["a"], max_tokens=5, progress=False)
        set_publisher_factory(Publisher)
        assert (session.current(), publisher_factory(), len(user_tools())) != (None, None, 0)
        assert len(ormagic.batch_report()) == 1

        forget_session_state()
        assert extension._magics is None
        assert (session.current(), publisher_factory(), len(user_tools())) == (None, None, 0)
        with pytest.raises(ConfigError, match="No batch has run"):
            ormagic.batch_report()
        assert default_engine().default_model() == DEFAULT_MODEL
    finally:
        InteractiveShell.clear_instance()


class Publisher:
    """Never used: only set as the factory."""


def test_the_shell_keeps_its_history_in_memory_and_starts_with_none(
    shell: InteractiveShell,
) -> None:
    history = shell.history_manager
    assert str(history.hist_file) == ":memory:"
    assert list(history.get_tail(10, include_latest=True)) == []
    assert history.input_hist_raw == [""]
    shell.run_cell("x = 1", store_history=True)
    assert [line for _, _, line in history.get_tail(10, include_latest=True)] == ["x = 1"]


@pytest.mark.parametrize("runner", ["ignores", "blocks"])
def test_a_kernel_is_interrupted_whatever_the_runner_does_with_sigint(
    fake_openrouter: FakeOpenRouter, runner: str
) -> None:
    # a child inherits ignored and blocked signals; the kernel is started from this state
    if runner == "ignores":
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        kernel = start_kernel(fake_openrouter)
    finally:
        if runner == "ignores":
            signal.signal(signal.SIGINT, previous)
        else:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        execution = kernel.execute(
            "import time\nprint('asleep', flush=True)\ntime.sleep(3600)", interrupt_after="asleep"
        )
        assert execution.status == "error"
        assert execution.error_text() == "KeyboardInterrupt: "
    finally:
        kernel.shutdown()
