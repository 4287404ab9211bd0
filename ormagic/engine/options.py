"""The settings a question is asked with: lasting :class:`Defaults` and one question's
:class:`AskOptions`, checked in one place before anything changes.

Precedence: an option given for one question (a ``%%chat`` flag, an ``ormagic.ask``
argument), then the lasting default (``%config ChatMagics.NAME`` in a notebook, or
``ormagic.configure``), then the environment (``OPENROUTER_API_KEY``,
``OPENROUTER_BASE_URL``, ``ORMAGIC_MODEL``), then ormagic's own default.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..client.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_REFERER,
    DEFAULT_TITLE,
    PROVIDER_SORTS,
    REASONING_EFFORTS,
    ClientSettings,
    Secret,
)
from ..context.block import ContextMode
from ..errors import ConfigError

__all__ = ["PROVIDER_SORTS", "AskOptions", "Checked", "Defaults"]


@dataclass
class Defaults:
    """The lasting settings of an engine; ``ChatMagics``' traits of the same names."""

    # (in the order %chat config lists them)
    model: str | None = None
    reasoning: str | None = None
    context: str = "auto"
    context_budget: int | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float | None = None
    system: str | None = None
    show_reasoning: bool = True
    max_cost: float | None = None
    base_url: str | None = None
    api_key: Secret | None = None
    referer: str = DEFAULT_REFERER
    title: str = DEFAULT_TITLE
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    max_retries: int = 2
    resume: bool = True
    # tool calling: on by default; rounds of calls per question before a last answer
    tools: bool = True
    max_tool_rounds: int = 8

    def __repr__(self) -> str:
        # the key is a Secret, which never shows itself; the rest is harmless
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"Defaults({shown})"

    def update(self, **changes: Any) -> None:
        """Set some settings by name; an unknown name is a :class:`ConfigError`."""
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ConfigError(f"Unknown setting {name!r}; settings: {', '.join(sorted(known))}")
            if name == "api_key" and value is not None and not isinstance(value, Secret):
                value = Secret(str(value)) if str(value).strip() else None
            setattr(self, name, value)

    def model_or_env(self, env: Mapping[str, str] | None = None) -> str:
        """The default model: the setting, else ``ORMAGIC_MODEL``, else DeepSeek V4 Flash."""
        env = os.environ if env is None else env
        return self.model or env.get("ORMAGIC_MODEL", "").strip() or DEFAULT_MODEL

    def client_settings(self, env: Mapping[str, str] | None = None) -> ClientSettings:
        """What the HTTP client needs: these settings over the environment."""
        from_env = ClientSettings.from_env(env)
        return ClientSettings(
            api_key=self.api_key if self.api_key else from_env.api_key,
            base_url=(self.base_url or from_env.base_url).rstrip("/") or DEFAULT_BASE_URL,
            referer=self.referer,
            title=self.title,
            extra_headers=dict(self.headers),
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_retries=self.max_retries,
        )

    def key_source(self, env: Mapping[str, str] | None = None) -> str:
        """Where the API key comes from, for display: never the key itself."""
        env = os.environ if env is None else env
        if self.api_key:
            return "set with %config ChatMagics.api_key"
        if env.get("OPENROUTER_API_KEY", "").strip():
            return "set from OPENROUTER_API_KEY"
        return "not set (set OPENROUTER_API_KEY)"


@dataclass(frozen=True)
class AskOptions:
    """One question's options; ``None`` means "the lasting default"."""

    conversation: str = "default"
    model: str | None = None
    reasoning: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    context: str | None = None
    new: bool = False
    fix: bool = False
    interpolate: bool = True
    fallbacks: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    provider_sort: str | None = None
    allow_fallbacks: bool = True
    cell_id: str | None = None
    tools: bool | None = None  # None: Defaults.tools; False: --no-tools


@dataclass(frozen=True)
class Checked:
    """:class:`AskOptions` resolved against the defaults, every value known to be usable."""

    options: AskOptions
    model: str
    reasoning: str | None
    max_tokens: int
    temperature: float | None
    context: ContextMode
    provider: Mapping[str, Any] | None
    tools: bool = True
    max_tool_rounds: int = 8

    @property
    def conversation(self) -> str:
        return self.options.conversation


def check(options: AskOptions, defaults: Defaults) -> Checked:
    """Resolve ``options`` against ``defaults`` and check every value; change nothing.

    Raises :class:`ConfigError` with one line saying what to change.
    """
    if not options.conversation.strip():
        raise ConfigError("The conversation name is empty.")
    reasoning = options.reasoning or defaults.reasoning
    if reasoning is not None and reasoning not in REASONING_EFFORTS:
        raise ConfigError(
            f"Reasoning must be one of {', '.join(REASONING_EFFORTS)}, not {reasoning!r}."
        )
    max_tokens = options.max_tokens if options.max_tokens is not None else defaults.max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ConfigError("--max-tokens must be a positive number.")
    temperature = options.temperature if options.temperature is not None else defaults.temperature
    if temperature is not None and not (math.isfinite(temperature) and 0 <= temperature <= 2):
        raise ConfigError(f"--temperature must be between 0 and 2, not {temperature:g}.")
    if options.provider_sort is not None and options.provider_sort not in PROVIDER_SORTS:
        raise ConfigError(f"--provider-sort must be one of {', '.join(PROVIDER_SORTS)}.")
    try:
        context = ContextMode.parse(options.context or defaults.context)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    model = (options.model or "").strip() or defaults.model_or_env()
    rounds = defaults.max_tool_rounds
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ConfigError("max_tool_rounds must be 0 or more (0: no tool calls).")
    return Checked(
        options=options,
        model=model,
        reasoning=reasoning,
        max_tokens=max_tokens,
        temperature=temperature,
        context=context,
        provider=_provider(options),
        tools=(defaults.tools if options.tools is None else options.tools) and rounds > 0,
        max_tool_rounds=rounds,
    )


def _provider(options: AskOptions) -> Mapping[str, Any] | None:
    """OpenRouter's ``provider`` routing object (docs/openrouter-api.md §2.3)."""
    provider: dict[str, Any] = {}
    if options.providers:
        provider["order"] = list(options.providers)
    if options.provider_sort:
        provider["sort"] = options.provider_sort
    if not options.allow_fallbacks:
        provider["allow_fallbacks"] = False
    return provider or None
