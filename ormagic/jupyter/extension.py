"""Loading and unloading the extension (``%load_ext ormagic`` / ``%unload_ext ormagic``).

The magics drive the session's default engine, so ``ormagic.ask`` in a cell and
``%%chat`` share conversations, settings and the HTTP client, and ``ormagic.ask`` reads
the same notebook for context.
"""

from __future__ import annotations

from typing import Any

from ..api.hooks import set_publisher_factory
from ..engine import session
from .display import JupyterPublisher, in_kernel
from .magic import ChatMagics

__all__ = ["load", "unload"]

_magics: ChatMagics | None = None


def load(shell: Any) -> None:
    """Register ``%%chat`` and ``%chat`` on ``shell``; loading twice keeps everything."""
    global _magics
    if _magics is not None and _magics.shell is shell:
        return
    magics = ChatMagics(shell=shell)
    shell.register_magics(magics)
    magics.start_recording()  # IPython < 9.1 keeps no printed output of cells
    # The session's engine (ormagic.ask's too) is made by the first question, with the
    # magic's settings and notebook; one made before loading gets them now.
    session.on_create(magics.attach)
    if in_kernel(shell):  # ormagic.map draws its progress bar
        set_publisher_factory(JupyterPublisher)
    _magics = magics


def unload(shell: Any) -> None:
    """Stop recording output, close the HTTP client and forget the session's engine."""
    global _magics
    from ..context.capture import uninstall

    uninstall(shell)
    session.on_create(None)
    set_publisher_factory(None)
    if _magics is not None:
        _magics.detach()
        _magics = None
    session.forget()
