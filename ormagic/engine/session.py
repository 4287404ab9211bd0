"""The session's default engine, the one ``ormagic.ask`` and ``%%chat`` share.

Kept apart from :mod:`ormagic.engine.engine`, and light, so that ``%load_ext ormagic`` can
say who configures that engine (the magic: its settings, its notebook) without importing
the engine, which the first question loads. :func:`ormagic.engine.engine.default_engine`
makes the engine and hands it to :func:`adopt`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["adopt", "current", "forget", "on_create"]

# The Engine, typed Any: importing its module here is what this module exists to avoid.
_engine: Any = None
_configure: Callable[[Any], None] | None = None


def current() -> Any:
    """The default engine, or None when none was made yet."""
    return _engine


def adopt(engine: Any) -> None:
    """Make ``engine`` the default one, configured by whoever asked (:func:`on_create`)."""
    global _engine
    _engine = engine
    if engine is not None and _configure is not None:
        _configure(engine)


def on_create(configure: Callable[[Any], None] | None) -> None:
    """Configure the default engine with ``configure``: now if there is one, else when it
    is made. ``None`` stops configuring new ones."""
    global _configure
    _configure = configure
    if configure is not None and _engine is not None:
        configure(_engine)


def forget() -> None:
    """Close the default engine, if one was made, and forget it."""
    global _engine
    engine, _engine = _engine, None
    if engine is not None:
        engine.close()
