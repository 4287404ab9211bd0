"""The kernel-wide state behind the magics: conversations, usage, model catalogue, clients.

Knows nothing of IPython: the magic owns one :class:`Session` and hands it settings.
"""

from __future__ import annotations

from ._client import OpenRouterClient
from ._conversation import ConversationStore
from ._errors import OrmagicError
from ._models import ModelCatalog, ModelInfo
from ._settings import ClientSettings
from ._usage import UsageLedger

__all__ = ["Session"]


class Session:
    """Everything a kernel remembers between ``%%chat`` cells."""

    def __init__(self) -> None:
        self.store = ConversationStore()
        self.ledger = UsageLedger()
        # execution count of the latest %%chat cell, per conversation: the next turn's
        # context starts after it
        self.last_chat_cell: dict[str, int] = {}
        self._settings: ClientSettings | None = None
        self._client: OpenRouterClient | None = None
        self.catalog = ModelCatalog(self._fetch_models)

    def client(self, settings: ClientSettings) -> OpenRouterClient:
        """A client for ``settings``, reused while the settings stay the same."""
        if self._client is None or settings != self._settings:
            if self._client is not None:
                self._client.close()
            self._client = OpenRouterClient(settings)
            self._settings = settings
            self.catalog = ModelCatalog(self._fetch_models)
        return self._client

    def _fetch_models(self) -> list[dict[str, object]]:
        if self._client is None:
            raise OrmagicError("No client yet")
        return self._client.get_models()

    def cached_model(self, model_id: str) -> ModelInfo | None:
        """The catalogue entry for ``model_id`` if the catalogue was fetched, without I/O."""
        if not self.catalog.is_cached():
            return None
        return self.catalog.get(model_id)

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()
            self._client = None
