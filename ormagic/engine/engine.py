"""The engine: everything a question needs, for a script, a test, a worker or the magic.

An :class:`Engine` holds the session's state (conversations, the usage ledger, the model
catalogue, one HTTP client) and answers questions::

    engine = Engine()
    result = engine.answer("What is 2+2?", AskOptions(model="openai/gpt-5-nano"))
    result.outcome.text

It knows nothing of IPython: the magic hands it a :class:`~ormagic.engine.notebook.Notebook`
to read context from and a :class:`~ormagic.view.View` to show the answer in.

State changes in one place, :meth:`Engine._commit`, and only once a question was valid and
its answer began: a bad flag, a missing key or an error before the first word leaves every
conversation as it was. What the user saw is recorded before anything that can block
(looking up the price may fetch ``/models``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..client.request import ChatRequest
from ..client.settings import ClientSettings
from ..context.block import ContextBlock
from ..errors import BudgetExceededError, MissingKeyError, OrmagicError
from ..events import Event, Usage
from ..formatting import counted, format_cost
from ..view import FinalSummary, NullView, View
from . import session
from .conversation import Conversation, ConversationStore, Response, Turn, new_session_id
from .models import ModelCatalog, ModelInfo, cost_of
from .notebook import Notebook, fill_prompt, gather_context
from .options import AskOptions, Checked, Defaults, check
from .resume import NotebookConversations, read_notebook, record, saved_ago
from .rounds import ToolPlan, iter_exchange
from .tools import ToolBox, ToolRegistry, builtin_tools, user_tools
from .turn import Clock, Outcome
from .usage import UsageLedger

if TYPE_CHECKING:  # httpx is imported with the client, when the first question is sent
    from ..client.http import OpenRouterClient

__all__ = ["Engine", "Prepared", "TurnResult", "default_engine", "set_default_engine"]

# Context budget when the model's context length is unknown (the catalogue not fetched).
_FALLBACK_BUDGET = 24_000
_MAX_BUDGET = 100_000


@dataclass(frozen=True)
class Prepared:
    """A question ready to send: checked options, the prompt as sent, the request."""

    checked: Checked
    prompt: str
    user_message: dict[str, Any]
    request: ChatRequest
    system: str | None  # the conversation's system prompt once this turn is recorded
    session_id: str  # the conversation's (a new one for a new conversation)
    context: ContextBlock | None = None
    chat_cell: int | None = None  # the running cell: the next question's context starts after it
    tools: ToolPlan | None = None  # what the model may call (None: no tools are sent)
    tools_note: str | None = None  # for the footer: why this model got no tools

    @property
    def conversation(self) -> str:
        return self.checked.conversation

    def record(
        self,
        response: Response,
        *,
        secrets: Sequence[str],
        chosen: bool = True,
        in_output: bool = False,
    ) -> dict[str, Any]:
        """The resume record of ``response`` to this question (see ``resume.record``)."""
        return record(
            conversation=self.conversation,
            system=self.system,
            session_id=self.session_id,
            prompt=self.prompt,
            cell_id=self.checked.options.cell_id,
            response=response,
            chosen=chosen,
            secrets=secrets,
            in_output=in_output,
        )


@dataclass
class TurnResult:
    """How a question ended: the outcome of the stream and the turn recorded from it."""

    prepared: Prepared
    outcome: Outcome
    turn: Turn | None = None  # None when nothing arrived (nothing was recorded)
    pricing_interrupted: bool = False  # stopped while looking up the price: cost unknown


class Exchange:
    """One question being answered: iterate for its events; the turn is recorded at the end.

    Recording happens when the stream ends, however it ends (finished, failed, the
    consumer stopped reading, an interrupt), as long as something arrived.
    """

    def __init__(self, engine: Engine, prepared: Prepared, clock: Clock) -> None:
        self.prepared = prepared
        self.result = TurnResult(prepared, Outcome(prepared.request.model, {}))
        self.result.outcome.tools_note = prepared.tools_note
        self._engine = engine
        self._events: Generator[Event, None, None] = self._stream(clock)

    def __iter__(self) -> Iterator[Event]:
        return self._events

    def close(self) -> None:
        """Stop reading (the connection is closed) and record what arrived."""
        self._events.close()

    def _stream(self, clock: Clock) -> Generator[Event, None, None]:
        outcome = self.result.outcome
        prepared = self.prepared
        try:
            # one round, or as many as the model's tool calls take (engine/rounds.py)
            yield from iter_exchange(
                self._engine.client(), prepared.request, outcome, clock, prepared.tools
            )
        finally:
            # nothing is recorded when nothing arrived (an error before the answer began)
            self.result.turn = self._engine._commit(self.prepared, outcome)


class Engine:
    """Conversations, usage, models and one HTTP client, behind one object."""

    def __init__(
        self,
        defaults: Defaults | None = None,
        *,
        env: Mapping[str, str] | None = None,
        clock: Clock = time.monotonic,
        tools: ToolRegistry | None = None,
    ) -> None:
        self.defaults = defaults or Defaults()
        # the user's tools (@ormagic.tool): the process's registry unless one is given
        self.tools = tools if tools is not None else user_tools()
        # (base URL, model) -> whether /models lists "tools" for it; models already told
        # in a footer that they get no tools
        self._tool_support: dict[tuple[str, str], bool] = {}
        self._tools_noted: set[str] = set()
        self.store = ConversationStore()
        self.ledger = UsageLedger()
        # number of the latest %%chat cell, per conversation: the next turn's context
        # starts after it
        self.last_chat_cell: dict[str, int] = {}
        # the notebook ormagic.ask reads context from: set when the extension is loaded
        self.notebook: Notebook | None = None
        self._env = env
        self._clock = clock
        self._settings: ClientSettings | None = None
        self._client: OpenRouterClient | None = None
        self._catalog = ModelCatalog(self._fetch_models)
        self._resume_tried: set[str] = set()

    # ------------------------------------------------------------------ settings and client

    def client_settings(self) -> ClientSettings:
        """Client settings: the defaults over the environment."""
        return self.defaults.client_settings(self._environ())

    def default_model(self) -> str:
        return self.defaults.model_or_env(self._environ())

    def key_source(self) -> str:
        return self.defaults.key_source(self._environ())

    def _environ(self) -> Mapping[str, str]:
        return os.environ if self._env is None else self._env

    def client(self) -> OpenRouterClient:
        """The HTTP client for the current settings, reused while they stay the same."""
        settings = self.client_settings()
        if self._client is None or settings != self._settings:
            if self._client is not None:
                self._client.close()
            from ..client.http import OpenRouterClient

            self._client = OpenRouterClient(settings)
            self._settings = settings
            self._catalog = ModelCatalog(self._fetch_models)
        return self._client

    @property
    def catalog(self) -> ModelCatalog:
        """``GET /models`` of the current server, cached (a new one when the settings change).

        Settled before it is handed out: a catalogue replaced while fetching (the first
        request makes the client, which starts a new catalogue) would be fetched twice.
        """
        self.client()
        return self._catalog

    def _fetch_models(self) -> list[dict[str, object]]:
        return self.client().get_models()

    def cached_model(self, model_id: str) -> ModelInfo | None:
        """The catalogue entry for ``model_id`` if the catalogue was fetched, without I/O."""
        if self._client is None or not self._catalog.is_cached():
            return None
        return self.catalog.get(model_id)

    def secrets(self) -> list[str]:
        """Exact secrets to redact from anything sent: the API key."""
        key = self.client_settings().api_key
        return [key.reveal()] if key else []

    def close(self) -> None:
        """Close the HTTP client (it reopens when needed)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------ conversations

    def conversation(self, name: str = "default") -> Conversation:
        return self.store.get(name)

    def reset(self, name: str = "default") -> Conversation:
        """Forget a conversation, and where its notebook context starts.

        A reset conversation is not picked up from the notebook file again.
        """
        self._resume_tried.add(name)
        self.last_chat_cell.pop(name, None)
        return self.store.reset(name)

    def put(self, conversation: Conversation) -> None:
        """Store a conversation (loaded from a file); its context starts afresh."""
        self.last_chat_cell.pop(conversation.name, None)
        self.store.put(conversation)

    # ------------------------------------------------------------------ asking

    def check(self, options: AskOptions) -> Checked:
        """Check a question's options, the key and the budget; change nothing."""
        checked = check(options, self.defaults)
        settings = self.client_settings()
        if not settings.api_key:
            raise MissingKeyError()
        self.check_budget()
        return checked

    def check_budget(self) -> None:
        """Raise :class:`BudgetExceededError` once the session spent ``max_cost``."""
        limit = self.defaults.max_cost
        spent = self.ledger.session_cost
        if limit is not None and spent >= limit:
            raise BudgetExceededError(
                f"Budget reached: this session spent {format_cost(spent)} of max_cost "
                f"{format_cost(limit)}. "
                "Raise it with %config ChatMagics.max_cost = …"
            )

    def fill(self, text: str, checked: Checked, notebook: Notebook | None) -> str:
        """The prompt as sent: ``{name}`` from the notebook filled in, bounded and redacted."""
        namespace = notebook.namespace if notebook and checked.options.interpolate else None
        return fill_prompt(text, namespace, secrets=self.secrets(), fix=checked.options.fix)

    def context(
        self, prompt: str, checked: Checked, notebook: Notebook | None
    ) -> ContextBlock | None:
        """The notebook context block for ``prompt`` (None without a notebook)."""
        if notebook is None:
            return None
        options = checked.options
        since = None if options.new else self.last_chat_cell.get(options.conversation)
        return gather_context(
            notebook,
            prompt=prompt,
            mode=checked.context,
            since=since,
            budget_tokens=self.context_budget(checked.model),
            fix=options.fix,
            secrets=self.secrets(),
        )

    def preview_context(
        self, prompt: str, options: AskOptions, notebook: Notebook | None
    ) -> ContextBlock:
        """The context block the next question would send; needs no key, sends nothing."""
        block = self.context(prompt, check(options, self.defaults), notebook)
        return block if block is not None else ContextBlock("", 0)

    def context_budget(self, model: str) -> int:
        """Tokens for the context block: the setting, else a tenth of the model's context."""
        if self.defaults.context_budget is not None:
            return int(self.defaults.context_budget)
        info = self.cached_model(model)
        if info is not None and info.context_length:
            return min(info.context_length // 10, _MAX_BUDGET)
        return _FALLBACK_BUDGET

    def prepare(
        self,
        text: str,
        options: AskOptions,
        notebook: Notebook | None = None,
        *,
        on_checked: Callable[[Checked], None] | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> Prepared:
        """Check everything and build the request; nothing changes until it is answered.

        The one exception: the first question of an empty conversation in a notebook
        whose file is known picks that conversation up from the file (see
        :meth:`resume`), and ``notify`` is told so in one line. ``on_checked`` runs once
        the options are known to be good, before the notebook is read (which can take a
        moment): the magic shows its waiting line there.
        """
        checked = self.check(options)
        prompt = self.fill(text, checked, notebook)  # variables are found in the text as typed
        self._resume_first(options, notebook, notify or _ignore)
        if on_checked is not None:
            on_checked(checked)
        block = self.context(text, checked, notebook)
        content = f"{block.text}\n\n{prompt}" if block is not None and block.text else prompt
        user_message = {"role": "user", "content": content}
        existing = None if options.new else self.store.peek(options.conversation)
        system = self._system(options, existing)
        history = existing.history(options.cell_id) if existing is not None else []
        plan, tools_note = self.tool_plan(checked, notebook)
        request = ChatRequest(
            messages=Conversation.with_system(system, [*history, user_message]),
            model=checked.model,
            max_tokens=checked.max_tokens,
            reasoning={"effort": checked.reasoning} if checked.reasoning else None,
            temperature=checked.temperature,
            provider=checked.provider,
            models=options.fallbacks,
            session_id=existing.session_id if existing is not None else new_session_id(),
            tools=plan.box.specs() if plan is not None else (),
        )
        return Prepared(
            checked=checked,
            prompt=prompt,
            user_message=user_message,
            request=request,
            system=system,
            session_id=request.session_id or new_session_id(),
            context=block,
            chat_cell=notebook.running_cell() if notebook is not None else None,
            tools=plan,
            tools_note=tools_note,
        )

    def resume(self, name: str, path: str) -> NotebookConversations:
        """Rebuild conversation ``name`` from the ``%%chat`` outputs saved in ``path``.

        When the file holds turns of ``name``, they replace the conversation (in notebook
        order, with their cell ids, so that a re-run cell still replaces its own turn);
        otherwise nothing changes. The result says what was found and what was skipped.
        """
        found = read_notebook(path)
        conversation = found.conversations.get(name)
        if conversation is not None:
            self.put(conversation)
        return found

    def _resume_first(
        self, options: AskOptions, notebook: Notebook | None, notify: Callable[[str], None]
    ) -> None:
        """Pick an empty conversation up from the notebook file, once per conversation."""
        name = options.conversation
        existing = self.store.peek(name)
        if (
            options.new
            or not self.defaults.resume
            or notebook is None
            or name in self._resume_tried
            or (existing is not None and existing.turns)
        ):
            return
        path = notebook.path
        if path is None:
            return
        self._resume_tried.add(name)
        found = self.resume(name, path)
        for line in found.notes:
            notify(line)
        if found.turns(name):
            notify(resumed_line(name, found))

    # ------------------------------------------------------------------ tools

    def toolbox(self, notebook: Notebook | None) -> ToolBox:
        """The built-in tools over ``notebook`` (none without one), then the user's."""
        built_in = builtin_tools(notebook) if notebook is not None else []
        return ToolBox([*built_in, *self.tools], secrets=self.secrets())

    def tool_plan(
        self, checked: Checked, notebook: Notebook | None
    ) -> tuple[ToolPlan | None, str | None]:
        """What the question may call, or None; and a note when the model cannot use tools.

        The note is given once per model and session (it goes into the footer).
        """
        if not checked.tools:
            return None, None
        box = self.toolbox(notebook)
        if not box:
            return None, None
        if not self.supports_tools(checked.model):
            if checked.model in self._tools_noted:
                return None, None
            return None, f"no tools: {checked.model} does not support tool calling"
        return ToolPlan(box, checked.max_tool_rounds), None

    def supports_tools(self, model: str) -> bool:
        """Whether ``/models`` lists ``tools`` among ``model``'s supported parameters.

        Fetches the catalogue when it is not cached; the answer is remembered for the
        session. A model the catalogue does not know, or a catalogue that cannot be read
        (an OpenAI-compatible server without ``/models``), gets tools.
        """
        key = (self.client_settings().base_url, model)
        known = self._tool_support.get(key)
        if known is not None:
            return known
        try:
            info = self.catalog.get(model)
        except OrmagicError:
            return True
        params = info.raw.get("supported_parameters") if info is not None else None
        supported = not isinstance(params, list) or "tools" in params
        self._tool_support[key] = supported
        return supported

    def _system(self, options: AskOptions, existing: Conversation | None) -> str | None:
        if options.system is not None:
            return options.system or None
        if existing is not None and (existing.system is not None or existing.turns):
            return existing.system
        return self.defaults.system

    def exchange(self, prepared: Prepared) -> Exchange:
        """The events of ``prepared`` being answered; the turn is recorded when they end."""
        return Exchange(self, prepared, self._clock)

    def answer(
        self,
        text: str,
        options: AskOptions | None = None,
        *,
        notebook: Notebook | None = None,
        view: View | None = None,
    ) -> TurnResult:
        """Ask and stream the answer into ``view``; the view is finished or abandoned.

        Bad options, a missing key and errors before the answer begins raise (an
        :class:`~ormagic.errors.OrmagicError`) and change nothing. An error or an
        interrupt after it began ends the turn with what arrived, recorded.
        """
        view = view or NullView()
        options = options or AskOptions()
        shown = False

        def start(checked: Checked) -> None:
            nonlocal shown
            view.start(checked.model)
            shown = True

        try:
            prepared = self.prepare(text, options, notebook, on_checked=start, notify=view.note)
        except BaseException:
            if shown:
                view.abandon()
            raise
        return self.run(prepared, view)

    def run(self, prepared: Prepared, view: View) -> TurnResult:
        """Stream ``prepared`` into ``view``: record, price, then finish the view."""
        exchange = self.exchange(prepared)
        result = exchange.result
        try:
            try:
                for event in exchange:
                    view.handle(event)
            except KeyboardInterrupt:
                exchange.close()  # records what arrived, marked interrupted
            if result.turn is not None:
                try:
                    self.price(result)
                except KeyboardInterrupt:  # the answer is recorded; only its cost is unknown
                    result.pricing_interrupted = True
        finally:
            if view.started or result.outcome.produced:
                view.finish(self.summary(result))
            else:
                view.abandon()
        return result

    def summary(self, result: TurnResult) -> FinalSummary:
        """What the view shows under the answer, with the record a saved notebook keeps."""
        prepared, outcome = result.prepared, result.outcome
        response = result.turn.response if result.turn is not None else outcome.to_response()
        saved = prepared.record(response, secrets=self.secrets(), in_output=True)
        return outcome.summary({"ormagic": {**saved, **outcome.tool_metadata()}})

    def _commit(self, prepared: Prepared, *outcomes: Outcome) -> Turn | None:
        """Record the answer: the one place where a question changes the session's state.

        Several outcomes are models answering side by side (``engine/compare.py``): the
        turn keeps each of them, in order, and the first that produced something
        continues the conversation.
        """
        answered = [i for i, outcome in enumerate(outcomes) if outcome.produced]
        if not answered:
            return None
        options = prepared.checked.options
        name = options.conversation
        conversation = self.reset(name) if options.new else self.store.get(name)
        conversation.system = prepared.system
        conversation.session_id = prepared.session_id
        turn = Turn(
            prompt=prepared.prompt,
            user_message=prepared.user_message,
            responses=[outcome.to_response() for outcome in outcomes],
            cell_id=options.cell_id,
            chosen=answered[0],
        )
        conversation.record(turn)
        self.ledger.add_turn(name, turn)
        if prepared.tools_note:  # said once in a footer; later questions just go without
            self._tools_noted.add(prepared.checked.model)
        if prepared.chat_cell is not None:
            self.last_chat_cell[name] = prepared.chat_cell
        return turn

    def price(self, result: TurnResult) -> None:
        """Fill in the cost: OpenRouter's ``usage.cost``, else tokens times listed prices.

        The listed prices may need ``GET /models``; a failure there leaves it unknown.
        """
        outcome = result.outcome
        if result.turn is None:
            return
        if len(outcome.rounds) > 1:
            self._price_rounds(result)
            return
        cost = self.cost(outcome.usage, outcome.answered_by)
        if cost is None:
            return
        outcome.cost = result.turn.response.cost = cost
        if outcome.rounds:
            outcome.rounds[0].cost = cost

    def _price_rounds(self, result: TurnResult) -> None:
        """Each round's cost, then their total (unknown while a round's is unknown)."""
        outcome = result.outcome
        for round_ in outcome.rounds:
            if round_.cost is None:
                round_.cost = self.cost(round_.usage, outcome.answered_by)
        response = result.turn.response if result.turn is not None else None
        if response is not None:
            response.settle()
            outcome.cost = response.cost

    def cost(self, usage: Usage | None, model: str) -> float | None:
        """What ``usage`` cost: OpenRouter's ``usage.cost``, else the tokens at ``model``'s
        listed prices (``GET /models``, cached); ``None`` when neither is known."""
        if usage is None:
            return None
        if usage.cost is not None:
            return usage.cost  # what OpenRouter charged: no catalogue needed
        try:
            return cost_of(usage, self.catalog.get(model))
        except OrmagicError:  # the prices cannot be read: the cost stays unknown
            return None

    def resolve_costs(self) -> int:
        """Look up the cost of answers that streamed no usage (``GET /generation``).

        OpenRouter bills interrupted and dropped generations too, and reports them a moment
        later (docs §7). A lookup that fails (not ready yet, no key, offline) leaves the
        cost unknown; the next ``%chat usage`` tries again. Returns how many were resolved.
        """
        resolved = 0
        for generation_id in self.ledger.unresolved():
            try:
                data = self.client().get_generation(generation_id)
            except OrmagicError:
                continue
            cost = data.get("total_cost")
            if not isinstance(cost, int | float) or isinstance(cost, bool):
                continue
            self.ledger.resolve(
                generation_id, usage_from_generation(data, float(cost)), float(cost)
            )
            resolved += 1
        return resolved


def usage_from_generation(data: Mapping[str, Any], cost: float) -> Usage:
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
        raw=dict(data),
    )


def _ignore(line: str) -> None:
    """Where notes go when nobody listens."""


def resumed_line(name: str, found: NotebookConversations) -> str:
    """``Resumed 'default' from analysis.ipynb: 3 turns (saved 2 min ago).``"""
    turns = found.turns(name)
    return (
        f"Resumed {name!r} from {found.name}: {counted(turns, 'turn')} "
        f"({saved_ago(found.saved_at)})."
    )


def default_engine() -> Engine:
    """The engine ``ormagic.ask`` uses: the notebook's once ``%load_ext ormagic`` ran."""
    engine: Engine | None = session.current()
    if engine is None:
        engine = Engine()
        session.adopt(engine)  # the extension, if loaded, gives it its settings and notebook
    return engine


def set_default_engine(engine: Engine | None) -> None:
    """Make ``engine`` the one ``ormagic.ask`` uses; the one it replaces is closed."""
    old = session.current()
    if old is not None and old is not engine:
        old.close()
    session.adopt(engine)
