"""The publisher the notebook views draw through: ``IPython.display``.

The renderer reaches Jupyter only through a ``Publisher`` (``ormagic.render.live``); this is
the one the magic hands it in a kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from IPython.display import clear_output, display, update_display

from ..render.live import Bundle

__all__ = ["JupyterPublisher", "in_kernel"]


def in_kernel(shell: Any) -> bool:
    """True in a Jupyter kernel (outputs, widgets), False in terminal IPython (print)."""
    return getattr(shell, "kernel", None) is not None


class JupyterPublisher:
    """:class:`Publisher` backed by ``IPython.display``."""

    def display(
        self,
        bundle: Bundle,
        *,
        display_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        display(dict(bundle), raw=True, display_id=display_id, metadata=dict(metadata or {}))

    def display_widget(self, widget: Any) -> None:
        display(widget)

    def update(
        self, bundle: Bundle, *, display_id: str, metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Replace a display; ``metadata``, when given, replaces its metadata too."""
        extra = {} if metadata is None else {"metadata": dict(metadata)}
        update_display(dict(bundle), raw=True, display_id=display_id, **extra)

    def clear(self) -> None:
        clear_output(wait=True)
