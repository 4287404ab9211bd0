"""ormagic: OpenRouter's models as a first-class part of a Jupyter notebook, and of Python.

In a notebook, ``%load_ext ormagic`` registers the ``%%chat`` cell magic and the ``%chat``
line magic. In any Python process::

    import ormagic
    answer = ormagic.ask("What is 2+2?")
    print(answer.text, answer.cost)
    labels = ormagic.map("Label this ticket: {item}", tickets)  # one prompt over every row

Importing ormagic loads nothing heavy: each name below is imported when first used, and
loading the extension prints nothing and does no network I/O.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

if TYPE_CHECKING:
    from .api.answer import Answer
    from .api.ask import ask, configure, stream
    from .api.batch import batch_report, batch_results, map
    from .api.tools import tool
    from .engine.conversation import Conversation
    from .engine.engine import Engine
    from .errors import (
        APIError,
        ConfigError,
        MissingKeyError,
        OrmagicError,
        StreamError,
        TransportError,
    )

__all__ = [
    "APIError",
    "Answer",
    "ConfigError",
    "Conversation",
    "Engine",
    "MissingKeyError",
    "OrmagicError",
    "StreamError",
    "TransportError",
    "__version__",
    "ask",
    "batch_report",
    "batch_results",
    "configure",
    "conversation",
    "load_ipython_extension",
    "map",
    "stream",
    "tool",
    "unload_ipython_extension",
]

# public name -> the module that defines it, imported on first use
_LAZY = {
    "Answer": "ormagic.api.answer",
    "ask": "ormagic.api.ask",
    "configure": "ormagic.api.ask",
    "stream": "ormagic.api.ask",
    "tool": "ormagic.api.tools",
    "map": "ormagic.api.batch",
    "batch_report": "ormagic.api.batch",
    "batch_results": "ormagic.api.batch",
    "Conversation": "ormagic.engine.conversation",
    "Engine": "ormagic.engine.engine",
    "APIError": "ormagic.errors",
    "ConfigError": "ormagic.errors",
    "MissingKeyError": "ormagic.errors",
    "OrmagicError": "ormagic.errors",
    "StreamError": "ormagic.errors",
    "TransportError": "ormagic.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ormagic' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def conversation(name: str = "default") -> Conversation:
    """The conversation ``name`` of this session; ``.messages`` is what the next turn sends."""
    from .engine.engine import default_engine

    return default_engine().conversation(name)


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%chat`` and ``%chat`` (called by ``%load_ext ormagic``)."""
    from .jupyter.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Close the HTTP client and stop recording output (``%unload_ext ormagic``)."""
    from .jupyter.extension import unload

    unload(ipython)
