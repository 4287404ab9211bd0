"""The engine: conversations, turns, usage, models and files. Plain Python, no IPython.

``engine`` (the :class:`~ormagic.engine.engine.Engine` a script, a test or the magic
drives), ``options`` (one question's validated options and the lasting defaults),
``turn`` (one streamed exchange), ``conversation``, ``usage``, ``models`` and ``export``.
"""
