"""ormagic: OpenRouter's models as a first-class part of a Jupyter notebook.

``%load_ext ormagic`` registers the ``%%chat`` cell magic and the ``%chat`` line magic.
Loading prints nothing, does no network I/O and imports the heavy modules only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine.conversation import Conversation

__version__ = "0.1.0"
__all__ = ["__version__", "conversation", "load_ipython_extension", "unload_ipython_extension"]

_magics: Any = None


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%chat`` and ``%chat`` (called by ``%load_ext ormagic``)."""
    global _magics
    from .context.capture import install
    from .jupyter.magic import ChatMagics

    if _magics is not None and _magics.shell is ipython:
        return  # loading twice keeps the conversations
    _magics = ChatMagics(shell=ipython)
    ipython.register_magics(_magics)
    # IPython < 9.1 keeps no printed output of cells; None where it does
    _magics.recorder = install(
        ipython, format_error=_magics.format_error, shell_writers=_magics.shell_writers()
    )


def unload_ipython_extension(ipython: Any) -> None:
    """Close the HTTP client and stop recording output (``%unload_ext ormagic``)."""
    global _magics
    from .context.capture import uninstall

    uninstall(ipython)
    if _magics is not None:
        _magics.session.close()
        _magics = None


def conversation(name: str = "default") -> Conversation:
    """The conversation ``name`` of this kernel; ``.messages`` is what the next turn sends."""
    if _magics is None:
        from .engine.conversation import Conversation

        return Conversation(name=name)
    result: Conversation = _magics.session.store.get(name)
    return result
