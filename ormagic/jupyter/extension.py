"""Loading and unloading the extension (``%load_ext ormagic`` / ``%unload_ext ormagic``).

The magics drive the session's default engine, so ``ormagic.ask`` in a cell and
``%%chat`` share conversations, settings and the HTTP client, and ``ormagic.ask`` reads
the same notebook for context.
"""

from __future__ import annotations

from typing import Any

from ..api.hooks import set_publisher_factory
from ..context.capture import uninstall
from ..engine.engine import default_engine, set_default_engine
from .display import JupyterPublisher
from .magic import ChatMagics

__all__ = ["load", "unload"]

_magics: ChatMagics | None = None


def load(shell: Any) -> None:
    """Register ``%%chat`` and ``%chat`` on ``shell``; loading twice keeps everything."""
    global _magics
    if _magics is not None and _magics.shell is shell:
        return
    magics = ChatMagics(shell=shell, engine=default_engine())
    shell.register_magics(magics)
    magics.start_recording()  # IPython < 9.1 keeps no printed output of cells
    magics.engine.notebook = magics.notebook()
    if getattr(shell, "kernel", None) is not None:  # ormagic.map draws its progress bar
        set_publisher_factory(JupyterPublisher)
    _magics = magics


def unload(shell: Any) -> None:
    """Stop recording output, close the HTTP client and forget the session's engine."""
    global _magics
    uninstall(shell)
    set_publisher_factory(None)
    if _magics is not None:
        _magics.engine.close()
        _magics.engine.notebook = None
        _magics = None
    set_default_engine(None)
