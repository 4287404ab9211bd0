"""The HTTP layer: OpenRouter's chat API as typed events. Knows nothing of Jupyter.

``settings`` (the environment, the key kept out of every repr), ``sse`` (bytes -> lines ->
SSE events), ``stream`` (SSE events -> the typed events of ``ormagic.events``),
``message`` (the assistant message to send back), ``statuses`` (HTTP status -> the
exception tree of ``ormagic.errors``) and ``http`` (the client itself).
"""
