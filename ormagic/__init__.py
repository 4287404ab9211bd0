"""ormagic: OpenRouter's models as a first-class part of a Jupyter notebook.

``%load_ext ormagic`` registers the ``%%chat`` cell magic and the ``%chat`` line magic.
"""

from __future__ import annotations

__version__ = "0.1.0"
