"""How the Python API shows things in a notebook: the extension sets it in a kernel.

A module of its own, light to import, so that ``%load_ext ormagic`` can set it without
loading ``ormagic.map``'s machinery (asyncio, SQLite, the batch layer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..render.live import Publisher

__all__ = ["publisher_factory", "set_publisher_factory"]

_factory: Callable[[], Publisher] | None = None


def set_publisher_factory(factory: Callable[[], Publisher] | None) -> None:
    """How to display in a notebook (the extension sets it in a kernel; None elsewhere)."""
    global _factory
    _factory = factory


def publisher_factory() -> Callable[[], Publisher] | None:
    return _factory
