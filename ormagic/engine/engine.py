"""The kernel-wide state behind the magics: conversations, usage, model catalogue, clients.

Knows nothing of IPython: the magic owns one :class:`Session` and hands it settings.
"""

from __future__ import annotations

from typing import Any

from ..client.http import OpenRouterClient
from ..client.settings import ClientSettings
from ..errors import OrmagicError
from ..events import Usage
from .conversation import ConversationStore, Turn
from .models import ModelCatalog, ModelInfo
from .usage import UsageLedger

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

    def resolve_costs(self, client: OpenRouterClient) -> int:
        """Look up the cost of turns that streamed no usage (``GET /generation``).

        OpenRouter bills interrupted and dropped generations too, and reports them a moment
        later (docs §7). A lookup that fails (not ready yet, no key, offline) leaves the
        cost unknown; the next ``%chat usage`` tries again. Returns how many were resolved.
        """
        resolved = 0
        for generation_id in self.ledger.unresolved():
            try:
                data = client.get_generation(generation_id)
            except OrmagicError:
                continue
            cost = data.get("total_cost")
            if not isinstance(cost, int | float) or isinstance(cost, bool):
                continue
            usage = usage_from_generation(data, float(cost))
            self.ledger.resolve(generation_id, usage, float(cost))
            for turn in self._turns(generation_id):
                turn.usage, turn.cost = usage, float(cost)
            resolved += 1
        return resolved

    def _turns(self, generation_id: str) -> list[Turn]:
        return [t for c in self.store for t in c.turns if t.generation_id == generation_id]

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()
            self._client = None


def usage_from_generation(data: dict[str, Any], cost: float) -> Usage:
    """Token counts from ``GET /generation`` stats (``tokens_*`` / ``native_tokens_*``)."""

    def count(*keys: str) -> int:
        for key in keys:
            value = data.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return 0

    return Usage(
        prompt_tokens=count("tokens_prompt", "native_tokens_prompt"),
        completion_tokens=count("tokens_completion", "native_tokens_completion"),
        reasoning_tokens=count("native_tokens_reasoning"),
        cached_tokens=count("native_tokens_cached"),
        cost=cost,
        raw=data,
    )
