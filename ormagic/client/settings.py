"""Client settings, read from the environment, with the API key kept out of every repr."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_MODEL",
    "DEFAULT_REFERER",
    "DEFAULT_TITLE",
    "PROVIDER_SORTS",
    "REASONING_EFFORTS",
    "ClientSettings",
    "Secret",
]

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_MODEL = "deepseek/deepseek-v4-flash"
# OpenRouter's credit pre-check assumes the model's whole output budget when max_tokens
# is absent and can answer 402 on a small balance (docs/openrouter-api.md §2).
DEFAULT_MAX_TOKENS = 16384
DEFAULT_REFERER = "https://github.com/ormagic/ormagic"
DEFAULT_TITLE = "ormagic"
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
PROVIDER_SORTS = ("price", "throughput", "latency")  # provider.sort


class Secret:
    """A string that never shows itself in ``repr``/``str`` (the API key)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself; only the HTTP layer calls this."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class ClientSettings:
    """What the HTTP client needs to reach an OpenAI-compatible chat server."""

    api_key: Secret | None = None
    base_url: str = DEFAULT_BASE_URL
    referer: str = DEFAULT_REFERER
    title: str = DEFAULT_TITLE
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    # Seconds allowed between two chunks; reasoning models can be quiet for a while,
    # though OpenRouter's keep-alive comments arrive in the meantime.
    read_timeout: float = 300.0
    max_retries: int = 2
    backoff_initial: float = 0.5
    backoff_max: float = 8.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientSettings:
        """Settings from ``OPENROUTER_API_KEY`` and ``OPENROUTER_BASE_URL``."""
        env = os.environ if env is None else env
        key = env.get("OPENROUTER_API_KEY", "").strip()
        base = env.get("OPENROUTER_BASE_URL", "").strip() or DEFAULT_BASE_URL
        return cls(api_key=Secret(key) if key else None, base_url=base.rstrip("/"))

    def headers(self) -> dict[str, str]:
        """Attribution and extra headers (OpenRouter app attribution, docs §1)."""
        headers = {}
        if self.referer:
            headers["HTTP-Referer"] = self.referer
        if self.title:
            headers["X-OpenRouter-Title"] = self.title
        headers.update(self.extra_headers)
        return headers
