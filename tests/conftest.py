"""Shared fixtures: the loopback fake OpenRouter server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ormagic.testing.fake_openrouter import FakeOpenRouter


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
