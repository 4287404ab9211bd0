"""``%%chat`` and ``%chat``: parse flags, hand the engine a question, present the result.

The magic is a skin over :class:`~ormagic.engine.engine.Engine`: lasting settings are
traitlets mirrored into the engine's defaults, flags become
:class:`~ormagic.engine.options.AskOptions`, the engine reads the notebook and streams into
a view, and the magic turns what happened into what the user reads. It is the only place
that talks to the user about errors: bad flags and configuration become one-line
``UsageError``s; API failures become a short line under whatever was already streamed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Any as AnyTrait
from traitlets import Bool, Dict, Float, Int, Unicode, observe, validate

from ..client.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_REFERER,
    DEFAULT_TITLE,
    PROVIDER_SORTS,
    REASONING_EFFORTS,
    Secret,
)
from ..errors import ConfigError, OrmagicError
from ..formatting import printable
from .display import in_kernel

# %load_ext imports this module and no more: the engine, the notebook reader, the views
# and the commands (and with them httpx, markdown-it, nbformat) are imported by the
# methods that need them, so the first %%chat pays for them instead.
if TYPE_CHECKING:
    from ..context.capture import Recorder
    from ..engine.conversation import Turn
    from ..engine.engine import Engine, TurnResult
    from ..engine.options import AskOptions
    from ..view import View
    from . import commands
    from .notebook import ShellNotebook
    from .side_by_side import SideBySideDisplays

__all__ = ["SETTINGS", "ChatMagics"]

# The traits that are the engine's lasting defaults: the fields of
# ormagic.engine.options.Defaults, in their order (that module is not imported at load).
SETTINGS = (
    "model",
    "reasoning",
    "context",
    "context_budget",
    "max_tokens",
    "temperature",
    "system",
    "show_reasoning",
    "max_cost",
    "base_url",
    "api_key",
    "referer",
    "title",
    "headers",
    "connect_timeout",
    "read_timeout",
    "max_retries",
    "resume",
    # tool calling
    "tools",
    "max_tool_rounds",
)


@magics_class
class ChatMagics(Magics):
    """Chat with OpenRouter's models from a notebook (``%%chat``, ``%chat``)."""

    api_key = AnyTrait(
        None,
        allow_none=True,
        help="OpenRouter API key. Prefer the OPENROUTER_API_KEY environment variable; "
        "a key set here is never shown.",
    ).tag(config=True)
    base_url = Unicode(
        None,
        allow_none=True,
        help=f"API base URL (else OPENROUTER_BASE_URL, else {DEFAULT_BASE_URL}). Any "
        "OpenAI-compatible server works.",
    ).tag(config=True)
    model = Unicode(
        None,
        allow_none=True,
        help=f"Default model (else ORMAGIC_MODEL, else {DEFAULT_MODEL}).",
    ).tag(config=True)
    reasoning = Unicode(
        None,
        allow_none=True,
        help="Default reasoning effort: "
        + "|".join(REASONING_EFFORTS)
        + " (unset: model default).",
    ).tag(config=True)
    max_tokens = Int(
        DEFAULT_MAX_TOKENS, help="Cap on the answer's tokens (OpenRouter's credit check needs one)."
    ).tag(config=True)
    temperature = Float(
        None, allow_none=True, help="Sampling temperature (unset: provider default)."
    ).tag(config=True)
    system = Unicode(None, allow_none=True, help="System prompt for new conversations.").tag(
        config=True
    )
    context = Unicode(
        "auto", help="Notebook context sent with each prompt: auto|none|all|N (last N cells)."
    ).tag(config=True)
    context_budget = Int(
        None,
        allow_none=True,
        help="Token budget for the context block (unset: 10% of the model's context length, "
        "at most 100,000; 24,000 when the length is unknown).",
    ).tag(config=True)
    show_reasoning = Bool(
        True, help="Show the model's reasoning (it is kept in the conversation either way)."
    ).tag(config=True)
    max_cost = Float(
        None, allow_none=True, help="Dollars this session may spend; %%chat refuses once reached."
    ).tag(config=True)
    referer = Unicode(DEFAULT_REFERER, help="HTTP-Referer attribution header.").tag(config=True)
    title = Unicode(DEFAULT_TITLE, help="X-OpenRouter-Title attribution header.").tag(config=True)
    headers = Dict(help="Extra HTTP headers sent with every request.").tag(config=True)
    connect_timeout = Float(10.0, help="Seconds to wait for a connection.").tag(config=True)
    read_timeout = Float(300.0, help="Seconds to wait between two chunks of a stream.").tag(
        config=True
    )
    max_retries = Int(2, help="Retries for 408/429/502/503 and connection failures.").tag(
        config=True
    )
    resume = Bool(
        True,
        help="The first %%chat of an empty conversation picks it up from the %%chat outputs "
        "saved in this notebook's file (after a kernel restart).",
    ).tag(config=True)
    # -- tool calling (engine/rounds.py) ---------------------------------------------------
    tools = Bool(
        True,
        help="Let the model call tools: the read-only notebook tools (list_variables, "
        "describe_variable, ...) and your @ormagic.tool functions. --no-tools for one cell.",
    ).tag(config=True)
    max_tool_rounds = Int(
        8,
        help="Rounds of tool calls per question; then the model is asked to answer with what "
        "it has (0: no tool calls).",
    ).tag(config=True)
    record_output = Bool(
        True,
        help="On IPython < 9.1, which keeps no printed output, record what each cell prints "
        "(bounded) so that it can be sent as context. No effect on IPython >= 9.1.",
    ).tag(config=True)

    @validate("api_key")
    def _wrap_key(self, proposal: Any) -> Secret | None:
        value = proposal["value"]
        if value is None or isinstance(value, Secret):
            return value
        return Secret(str(value)) if str(value).strip() else None

    @validate("reasoning")
    def _check_reasoning(self, proposal: Any) -> str | None:
        value = proposal["value"]
        if value is not None and value not in REASONING_EFFORTS:
            raise ConfigError(f"reasoning must be one of {', '.join(REASONING_EFFORTS)}")
        return value  # type: ignore[no-any-return]

    def __init__(self, shell: Any = None, engine: Engine | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        # set by start_recording where IPython < 9.1 keeps no printed output
        self.recorder: Recorder | None = None
        # side-by-side outputs, so that %chat pick can mark the kept answer in them
        self._displays: SideBySideDisplays | None = None
        self._engine: Engine | None = None
        if engine is not None:
            self.attach(engine)

    @property
    def side_by_side(self) -> SideBySideDisplays:
        """The side-by-side outputs on show (made by the first -m A -m B cell)."""
        if self._displays is None:
            from .side_by_side import SideBySideDisplays

            self._displays = SideBySideDisplays()
        return self._displays

    @property
    def engine(self) -> Engine:
        """The engine behind ``%%chat``: the session's default one, made when first needed."""
        if self._engine is None:
            from ..engine.engine import default_engine

            engine = default_engine()  # loaded as an extension, that attached it already
            if self._engine is None:
                self.attach(engine)
        assert self._engine is not None
        return self._engine

    def attach(self, engine: Engine) -> None:
        """Drive ``engine``: mirror the settings into it; it reads this shell's notebook."""
        self._engine = engine
        engine.defaults.update(**{name: getattr(self, name) for name in SETTINGS})
        engine.notebook = self.notebook()

    def detach(self) -> None:
        """Close the engine's HTTP client and stop reading the notebook (unload)."""
        if self._engine is not None:
            self._engine.close()
            self._engine.notebook = None
            self._engine = None

    @observe(*SETTINGS)
    def _mirror(self, change: Any) -> None:
        if self._engine is not None:  # else attach() copies every setting
            self._engine.defaults.update(**{change["name"]: change["new"]})

    @observe("record_output")
    def _toggle_recording(self, change: Any) -> None:
        if change["new"]:
            self.start_recording()
        else:
            from ..context.capture import uninstall

            uninstall(self.shell)
            self.recorder = None

    def start_recording(self) -> None:
        """Record printed output where IPython (< 9.1) does not (``record_output``)."""
        history = getattr(self.shell, "history_manager", None)
        if self.record_output and not hasattr(history, "outputs"):  # IPython >= 9.1 has them
            from ..context.capture import install
            from .notebook import format_error, shell_writers

            self.recorder = install(
                self.shell,
                format_error=lambda error: format_error(self.shell, error),
                shell_writers=shell_writers(self.shell),
            )

    @property
    def _ip(self) -> Any:
        """The shell (IPython types it as optional; a registered magic always has one)."""
        return self.shell

    def notebook(self) -> ShellNotebook:
        """The notebook the engine reads context from."""
        from .notebook import ShellNotebook

        return ShellNotebook(self.shell, self.recorder)

    # ------------------------------------------------------------------ %%chat

    @magic_arguments()
    @argument(
        "-m",
        "--model",
        action="append",
        help="Model id for this cell, e.g. deepseek/deepseek-v4-flash. Repeat it to ask "
        "several models side by side: -m A -m B.",
    )
    @argument(
        "-c", "--conversation", default="default", help="Conversation name (default: default)."
    )
    @argument("--new", action="store_true", help="Start this conversation afresh.")
    @argument("-r", "--reasoning", choices=REASONING_EFFORTS, help="Reasoning effort.")
    @argument("--system", help="System prompt (sets it for this conversation).")
    @argument("--temperature", type=float, help="Sampling temperature.")
    @argument("--max-tokens", type=int, help="Cap on the answer's tokens.")
    @argument(
        "-f",
        "--format",
        choices=("markdown", "text", "code"),
        default="markdown",
        help="markdown (rendered), text (plain), code (answer's code goes into a new cell below).",
    )
    @argument("-o", "--out", metavar="NAME", help="Also store the answer text in variable NAME.")
    @argument("--no-interpolate", action="store_true", help="Do not replace {name} with variables.")
    @argument(
        "--hide-reasoning", action="store_true", help="Keep the reasoning but do not show it."
    )
    @argument("--context", help="Notebook context: auto|none|all|N (last N cells).")
    @argument(
        "--fix", action="store_true", help="Send the last error and ask for a corrected cell."
    )
    @argument(
        "--fallback",
        action="append",
        default=[],
        metavar="MODEL",
        help="Fallback model if the first fails (repeatable; OpenRouter `models`).",
    )
    @argument(
        "--provider",
        action="append",
        default=[],
        metavar="NAME",
        help="Provider to prefer, in order (repeatable; provider.order).",
    )
    @argument("--provider-sort", choices=PROVIDER_SORTS, help="provider.sort")
    @argument("--no-fallbacks", action="store_true", help="provider.allow_fallbacks = false")
    @argument(
        "--no-tools", action="store_true", help="Do not let the model call tools for this cell."
    )
    # -- one prompt over every row (ormagic.map): jupyter/each.py --------------------------
    @argument(
        "--each",
        metavar="NAME",
        help="Ask the cell (a template: {item}, {index} or column names) of every row of "
        "the list, Series or DataFrame NAME; the answers go to -o VAR (default answers).",
    )
    @argument("--concurrency", type=int, metavar="N", help="With --each: requests in flight.")
    @argument(
        "--schema",
        metavar="NAME",
        help="With --each: structured output; NAME holds a JSON Schema, a mapping of field to "
        "type, or a pydantic model.",
    )
    @argument("--no-cache", action="store_true", help="With --each: do not use the answer cache.")
    @argument(
        "--deferred",
        action="store_true",
        help="With --each: OpenRouter's batch endpoint (about half price, within 24 hours); "
        "run the cell again to fetch the answers.",
    )
    @cell_magic("chat")  # type: ignore[arg-type]  # IPython types the decorator loosely
    def chat(self, line: str, cell: str) -> None:
        """Ask a model; the cell body is the prompt. The next %%chat continues the conversation.

        Notebook context (recent cells, outputs, errors, variables the prompt names) is
        sent with the prompt; ``%chat context`` shows exactly what. ``{name}`` in the
        prompt is replaced by the kernel variable's value (``{{``/``}}`` for braces).
        The model may call read-only tools to look at your variables and cells, and your
        @ormagic.tool functions (%chat tools lists them; --no-tools turns them off).
        Several -m ask the models side by side, at once, a column each.
        Line commands: %chat [history|reset|resume|context|models|providers|pick|usage|key|
        config|export|load|tools].
        """
        args = _unquote_args(parse_argstring(self.chat, line))
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"-o/--out needs a variable name, not {args.out!r}.")
        from .each import check_each_flags, run_each

        check_each_flags(args)
        if args.each is not None:  # one prompt over every row
            run_each(self, args, cell)
            return
        if args.model is not None and len(args.model) > 1:  # several models, side by side
            self._side_by_side(args, cell)
            return
        view = self._view(args)
        with _asking():
            result = self.engine.answer(
                cell, self.options(args), notebook=self.notebook(), view=view
            )
        self._present(result, args)

    def options(self, args: Any) -> AskOptions:
        """The question's options from the cell's flags."""
        from ..engine.options import AskOptions
        from .notebook import cell_id

        return AskOptions(
            conversation=args.conversation,
            model=args.model[0] if args.model else None,
            reasoning=args.reasoning,
            system=args.system,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            context=args.context,
            new=args.new,
            fix=args.fix,
            interpolate=not args.no_interpolate,
            fallbacks=tuple(args.fallback),
            providers=tuple(args.provider),
            provider_sort=args.provider_sort,
            allow_fallbacks=not args.no_fallbacks,
            cell_id=cell_id(self.shell),
            tools=False if args.no_tools else None,
        )

    def _side_by_side(self, args: Any, cell: str) -> None:
        """``-m A -m B``: the same question to each model at once, a column each."""
        from ..engine.compare import compare
        from . import side_by_side

        view = side_by_side.view_for(
            self.shell,
            show_reasoning=self.show_reasoning and not args.hide_reasoning,
            plain=args.format == "text",
        )
        with _asking():
            result = compare(
                self.engine,
                cell,
                self.options(args),
                args.model,
                notebook=self.notebook(),
                view=view,
            )
        self.side_by_side.remember(result, view)
        side_by_side.present(
            result,
            args,
            self._ip.user_ns,
            lambda code: self._ip.set_next_input(code, replace=False),
        )

    def kept_changed(self, turn: Turn) -> None:
        """``%chat pick`` changed a turn's kept answer: mark it in its output."""
        self.side_by_side.repaint(turn)

    def _view(self, args: Any) -> View:
        from ..render.views import NotebookView, TerminalView
        from .display import JupyterPublisher

        show = self.show_reasoning and not args.hide_reasoning
        if not in_kernel(self.shell):
            return TerminalView(show_reasoning=show)
        return NotebookView(JupyterPublisher(), show_reasoning=show, plain=args.format == "text")

    def _present(self, result: TurnResult, args: Any) -> None:
        """Put the answer where the flags ask, then report how the turn ended."""
        outcome = result.outcome
        answer = outcome.text
        if args.out:
            self._ip.user_ns[args.out] = answer
        if (args.format == "code" or args.fix) and answer:
            from ..render.markdown import code_of

            code = code_of(answer)
            if code:
                self._ip.set_next_input(code, replace=False)
            elif not outcome.interrupted and outcome.failure is None:
                print("The answer has no code block, so no cell was added below.")
        if outcome.interrupted:
            kept = " (partial answer kept in the conversation)" if outcome.produced else ""
            raise UsageError(f"Interrupted{kept}.")
        if result.pricing_interrupted:
            raise UsageError(
                "Interrupted while looking up the price; the answer is kept in the conversation."
            )
        if outcome.failure is not None:
            raise UsageError(str(outcome.failure))
        if not outcome.produced:
            raise UsageError("The model returned an empty answer; try again or another model.")

    # ------------------------------------------------------------------ %chat

    @line_magic("chat")  # type: ignore[arg-type]
    def chat_command(self, line: str) -> None:
        """%chat [history|reset|resume|context|models|providers|pick|usage|key|config|export|
        load|tools] …

        Or %chat --fix.

        Bare ``%chat`` shows the model, conversations, turns and the session's cost.
        ``%chat COMMAND -h`` shows a command's options.
        """
        if line.lstrip().startswith("-"):
            # `%chat --fix` and other flags without a body: a turn with an empty prompt
            self.chat(line, "")
            return
        from . import commands

        try:
            reply = commands.dispatch(self, line)
        except OrmagicError as error:
            raise UsageError(str(error)) from None
        self._show(reply)

    def _show(self, reply: commands.Reply) -> None:
        text = printable(reply.text)  # names and answers from the network: shown, not obeyed
        if not in_kernel(self.shell):
            print(text)
            return
        bundle = {"text/plain": text}
        if reply.html is not None:
            bundle["text/html"] = reply.html
        from .display import JupyterPublisher

        publisher = JupyterPublisher()
        publisher.display(bundle)
        for extra in reply.bundles:
            publisher.display(extra)

    # the settings %chat config shows and sets (the same traits as %config ChatMagics)

    def set_setting(self, name: str, text: str) -> None:
        """Set a lasting setting from its text form, as ``%chat config NAME=VALUE`` does."""
        trait = self.traits()[name]
        value = (
            None
            if text.strip().lower() in ("", "none") and trait.allow_none
            else trait.from_string(text)
        )
        setattr(self, name, value)


@contextmanager
def _asking() -> Iterator[None]:
    """Errors raised before an answer began, as the one line the user reads."""
    try:
        yield
    except OrmagicError as error:
        raise UsageError(str(error)) from None
    except KeyboardInterrupt:
        # stopped while the question was being prepared (reading the notebook, filling in
        # {variables}, or /models to learn whether the model takes tools): the engine
        # handles an interrupt once a stream began, so nothing was sent
        raise UsageError("Interrupted before the question was sent; nothing changed.") from None


def _unquote(value: Any) -> Any:
    """Strip one pair of matching quotes: magic_arguments splits with posix=False."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    return value


def _unquote_args(args: Any) -> Any:
    for name, value in vars(args).items():
        setattr(args, name, _unquote(value))
    return args
