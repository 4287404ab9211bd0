"""Shared fixtures: the loopback fake OpenRouter server, and real kernels pointed at it.

Function-scoped ``fake_openrouter`` / ``fake_env`` for tests of their own; module-scoped
``server`` and ``kernel`` for the real-kernel modules (a kernel takes a second to start);
``shell``, a real IPython shell with the extension loaded.
A module may set ``API_KEY`` to have its server accept another key. A test that uses
``server`` starts with it reset: no scripted replies or recorded requests left over.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from kernel_support import Kernel, start_kernel

from ormagic.engine.tools import user_tools
from ormagic.testing.fake_openrouter import FAKE_API_KEY, FakeOpenRouter


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


@pytest.fixture
def shell(fake_env: FakeOpenRouter) -> Iterator[InteractiveShell]:
    """A real IPython shell with ``%load_ext ormagic``, pointed at the fake; no tools of
    an earlier test registered."""
    InteractiveShell.clear_instance()
    user_tools().clear()
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ormagic")
    yield ip
    ip.run_line_magic("unload_ext", "ormagic")
    InteractiveShell.clear_instance()
    user_tools().clear()


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[FakeOpenRouter]:
    """One fake OpenRouter for a module (its ``API_KEY`` if it sets one)."""
    with FakeOpenRouter(api_key=getattr(request.module, "API_KEY", FAKE_API_KEY)) as fake:
        yield fake


@pytest.fixture(scope="module")
def kernel(server: FakeOpenRouter) -> Iterator[Kernel]:
    """A real ipykernel with ``%load_ext ormagic`` run, pointed at ``server``."""
    k = start_kernel(server)
    yield k
    k.shutdown()


@pytest.fixture(autouse=True)
def _fresh_server(request: pytest.FixtureRequest) -> None:
    if "server" in request.fixturenames:
        request.getfixturevalue("server").reset()
