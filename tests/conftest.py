"""Shared fixtures: the loopback fake OpenRouter server, and real kernels pointed at it.

Function-scoped ``fake_openrouter`` / ``fake_env`` for tests of their own; module-scoped
``server`` and ``kernel`` for the real-kernel modules (a kernel takes a second to start);
``shell``, a real IPython shell with the extension loaded.
A module may set ``API_KEY`` to have its server accept another key. A test that uses
``server`` starts with it reset: no scripted replies, recorded requests, holds or changed
settings left over.

Nothing a test sees may come from the user's environment or from an earlier test: the
variables that change what ormagic does are removed for the whole session (so kernels,
servers and subprocesses started by module-scoped fixtures inherit a clean environment),
every test gets its own IPython directory and answer cache, and the process-wide state
ormagic keeps (the session's engine, registered tools, the extension's hooks, the last
batch) is forgotten after each test.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from kernel_support import Kernel, start_kernel
from traitlets.config import Config

from ormagic.api import batch as batch_api
from ormagic.api.hooks import set_publisher_factory
from ormagic.engine import session
from ormagic.engine.engine import set_default_engine
from ormagic.engine.tools import user_tools
from ormagic.jupyter import extension
from ormagic.testing.fake_openrouter import FAKE_API_KEY, FakeOpenRouter

# Every variable that changes what ormagic does or where it reads and writes (the
# ORMAGIC_* ones are all those ormagic/ reads: test_isolation.py checks),
# and IPython's directory (profile, startup files, history).
BEHAVIOUR_VARIABLES = (
    "OPENROUTER_API_KEY",
    "OPENROUTER_BASE_URL",
    "ORMAGIC_MODEL",
    "ORMAGIC_CACHE_DIR",
    "JPY_SESSION_NAME",
    "IPYTHONDIR",
    "XDG_CACHE_HOME",
)
_LAST_ERROR_ATTRS = ("last_type", "last_value", "last_traceback", "last_exc")


@pytest.fixture(scope="session", autouse=True)
def _no_user_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's environment without the user's settings: module-scoped fixtures
    (kernels, Jupyter servers, notebooks) start before any function-scoped one."""
    with pytest.MonkeyPatch.context() as patch:
        for name in BEHAVIOUR_VARIABLES:
            patch.delenv(name, raising=False)
        patch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        patch.setenv("ORMAGIC_CACHE_DIR", str(tmp_path_factory.mktemp("ormagic-cache")))
        yield


@pytest.fixture(autouse=True)
def _own_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test: no behaviour variable it did not set itself, its own IPython directory
    and its own answer cache (``tmp_path / "cache"``)."""
    for name in BEHAVIOUR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("ORMAGIC_CACHE_DIR", str(tmp_path / "cache"))


def forget_session_state() -> None:
    """Put ormagic's process-wide state back as after import, through the functions that
    own it: the extension unloaded, no default engine (the old one closed), nothing told
    to configure the next one, no notebook publisher, no user tools, no last batch."""
    magics = extension._magics
    if magics is not None:  # a test that loaded the extension and never unloaded it
        extension.unload(magics.shell)
    session.on_create(None)
    set_default_engine(None)
    set_publisher_factory(None)
    user_tools().clear()
    # ormagic.batch_report() and batch_results() read these; nothing public resets them
    batch_api._last = None
    batch_api._jobs.clear()


@pytest.fixture(autouse=True)
def _fresh_session_state() -> Iterator[None]:
    forget_session_state()
    yield
    forget_session_state()


@pytest.fixture
def fake_openrouter() -> Iterator[FakeOpenRouter]:
    """A fresh fake OpenRouter on a free loopback port, stopped after the test."""
    with FakeOpenRouter() as server:
        yield server


@pytest.fixture
def fake_env(fake_openrouter: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch) -> FakeOpenRouter:
    """The fake, with OPENROUTER_API_KEY / OPENROUTER_BASE_URL pointing at it."""
    monkeypatch.setenv("OPENROUTER_API_KEY", fake_openrouter.api_key)
    monkeypatch.setenv("OPENROUTER_BASE_URL", fake_openrouter.base_url)
    return fake_openrouter


def new_shell() -> InteractiveShell:
    """A fresh IPython shell (the instance) whose history is in memory and empty.

    In memory: nothing of another test or of the user is seen, and no shell is left
    holding a database in a temporary directory (IPython writes to it at exit).
    """
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    # IPython >= 9.1 keeps outputs in a class-level dict shared by every shell: start clean
    ip.history_manager.reset()
    return ip


@pytest.fixture
def shell(fake_env: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A real IPython shell with ``%load_ext ormagic``, pointed at the fake.

    Its history is in memory and starts empty (no other test's cells, none of the
    user's); the ``sys.last_*`` a failing cell sets are put back afterwards.
    """
    for name in _LAST_ERROR_ATTRS:
        monkeypatch.delattr(sys, name, raising=False)
    ip = new_shell()
    ip.run_line_magic("load_ext", "ormagic")
    yield ip
    ip.run_line_magic("unload_ext", "ormagic")
    ip.history_manager.reset()
    InteractiveShell.clear_instance()
    for name in _LAST_ERROR_ATTRS:
        monkeypatch.delattr(sys, name, raising=False)


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[FakeOpenRouter]:
    """One fake OpenRouter for a module (its ``API_KEY`` if it sets one)."""
    with FakeOpenRouter(api_key=getattr(request.module, "API_KEY", FAKE_API_KEY)) as fake:
        yield fake


@pytest.fixture(scope="module")
def kernel(server: FakeOpenRouter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """A real ipykernel with ``%load_ext ormagic`` run, pointed at ``server``, with an
    IPython directory and an answer cache of its own."""
    k = start_kernel(
        server,
        IPYTHONDIR=str(tmp_path_factory.mktemp("kernel-ipython")),
        ORMAGIC_CACHE_DIR=str(tmp_path_factory.mktemp("kernel-cache")),
    )
    yield k
    k.shutdown()


@pytest.fixture(autouse=True)
def _fresh_server(request: pytest.FixtureRequest) -> Iterator[None]:
    """Reset the module's ``server`` before and after each test that uses it (after: a
    request a test held is let go)."""
    if "server" not in request.fixturenames:
        yield
        return
    fake: FakeOpenRouter = request.getfixturevalue("server")
    fake.reset()
    yield
    fake.reset()
