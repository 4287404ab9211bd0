"""``ormagic.ask`` and ``ormagic.stream``: one question from plain Python.

They use the session's engine (:func:`~ormagic.engine.engine.default_engine`): the same
conversations, settings and HTTP client as ``%%chat`` once the extension is loaded in a
kernel, and an engine of their own in a script. IPython is never imported.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any, overload

from ..engine.compare import compare
from ..engine.engine import Engine, Exchange, default_engine
from ..engine.options import AskOptions
from ..errors import ConfigError
from ..events import Event
from ..view import NullSideBySideView, NullView
from .answer import Answer

__all__ = ["ask", "configure", "stream"]

EventCallback = Callable[[Event], None]
ModelEventCallback = Callable[[str, Event], None]


class _CallbackView(NullView):
    """A view that hands each event to the caller's function, as it is."""

    def __init__(self, on_event: EventCallback | None) -> None:
        super().__init__()
        self._on_event = on_event

    def note(self, text: str) -> None:
        print(text)  # e.g. "Resumed 'default' from analysis.ipynb: 3 turns (saved 2 min ago)."

    def handle(self, event: Event) -> None:
        super().handle(event)
        if self._on_event is not None:
            self._on_event(event)


def _options(
    *,
    conversation: str,
    model: str | None,
    reasoning: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    context: str | None,
    engine: Engine,
    tools: bool | None = None,
) -> AskOptions:
    return AskOptions(
        conversation=conversation,
        model=model,
        reasoning=reasoning,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        context=context if engine.notebook is not None else "none",
        interpolate=False,  # Python has f-strings; braces in a string stay as written
        tools=tools,
    )


class _ModelsCallbackView(NullSideBySideView):
    """A side-by-side view that hands each event to the caller's function, with the id
    of the model it came from."""

    def __init__(self, on_event: ModelEventCallback | None) -> None:
        self._on_event = on_event
        self._models: list[str] = []

    def start(self, models: Sequence[str]) -> None:
        self._models = list(models)

    def handle(self, column: int, event: Event) -> None:
        if self._on_event is not None:
            self._on_event(self._models[column], event)


@overload
def ask(
    prompt: str,
    *,
    conversation: str = "default",
    model: str | None = None,
    reasoning: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    context: str | None = None,
    on_event: EventCallback | None = None,
    tools: bool | None = None,
) -> Answer: ...


@overload
def ask(
    prompt: str,
    *,
    conversation: str = "default",
    model: list[str] | tuple[str, ...],
    reasoning: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    context: str | None = None,
    on_event: ModelEventCallback | None = None,
    tools: bool | None = None,
) -> list[Answer]: ...


def ask(
    prompt: str,
    *,
    conversation: str = "default",
    model: str | list[str] | tuple[str, ...] | None = None,
    reasoning: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    context: str | None = None,
    on_event: Any = None,
    tools: bool | None = None,
) -> Answer | list[Answer]:
    """Ask a question and wait for the answer; the conversation continues next time.

    With a list of models (``model=["a/x", "b/y"]``) they answer side by side, at the
    same time, and ``ask`` returns one :class:`Answer` per model, in that order; the turn
    keeps them all and the conversation continues from the first that answered (see
    ``%chat pick``). ``on_event`` is then called with the model's id and the event. One
    model failing does not stop the others: its answer has ``error`` set.

    ``model``, ``reasoning``, ``system``, ``temperature`` and ``max_tokens`` override the
    lasting defaults for this question (``%config ChatMagics.*`` in a notebook,
    :func:`configure` in a script, then the environment: ``OPENROUTER_API_KEY``,
    ``OPENROUTER_BASE_URL``, ``ORMAGIC_MODEL``). ``context`` (``auto``, ``none``,
    ``all`` or a number of cells) sends notebook context when the extension is loaded in
    this kernel; a script has no notebook. ``on_event`` is called with each stream event
    (``ormagic.events``) as it arrives. ``tools=False`` asks without tools (default: the
    lasting ``tools`` setting, on): the model may call the built-in read-only tools when
    the extension is loaded in this kernel, and the functions registered with
    :func:`ormagic.tool`.

    Raises an :class:`~ormagic.errors.OrmagicError` when the question cannot be sent or
    is refused before the answer begins (no key, a bad value, 401, 402, ...). An error or
    an interrupt after the answer began returns what arrived, with ``error`` or
    ``interrupted`` set, and keeps it in the conversation.
    """
    engine = default_engine()
    models = list(model) if isinstance(model, list | tuple) else None
    one = None if isinstance(model, list | tuple) else model
    if models is not None and tools:
        raise ConfigError("Side by side answers have no tools: leave tools out, or ask one model.")
    options = _options(
        conversation=conversation,
        model=one,
        reasoning=reasoning,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        context=context,
        engine=engine,
        tools=tools,
    )
    if models is not None:
        view = _ModelsCallbackView(on_event)
        compared = compare(engine, prompt, options, models, notebook=engine.notebook, view=view)
        return [Answer.from_result(result) for result in compared.results]
    result = engine.answer(prompt, options, notebook=engine.notebook, view=_CallbackView(on_event))
    return Answer.from_result(result)


def stream(
    prompt: str,
    *,
    conversation: str = "default",
    model: str | None = None,
    reasoning: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    context: str | None = None,
    tools: bool | None = None,
) -> Generator[Event, None, None]:
    """Ask a question and iterate over its events as they arrive (``ormagic.events``).

    The question is checked at once (errors raise here, before iterating); the turn is
    recorded in the conversation when the events end, or when you stop iterating. With
    tools, the events of every round follow each other, with a ``ToolResult`` per call
    and a ``ToolRound`` before each new round.
    """
    engine = default_engine()
    options = _options(
        conversation=conversation,
        model=model,
        reasoning=reasoning,
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        context=context,
        engine=engine,
        tools=tools,
    )
    exchange = engine.exchange(engine.prepare(prompt, options, engine.notebook, notify=print))
    return _events(engine, exchange)


def _events(engine: Engine, exchange: Exchange) -> Generator[Event, None, None]:
    try:
        yield from exchange
    finally:
        exchange.close()
    engine.price(exchange.result)


def configure(**settings: Any) -> None:
    """Set lasting defaults for this session: ``configure(model="openai/gpt-5-nano")``.

    The names are those of ``%config ChatMagics`` (``model``, ``reasoning``,
    ``max_tokens``, ``temperature``, ``system``, ``base_url``, ``api_key``, ...); in a
    notebook prefer ``%config``, which shows them.
    """
    default_engine().defaults.update(**settings)
