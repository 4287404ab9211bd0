"""``%%chat`` and ``%chat``: the only module that touches the IPython shell.

It parses flags, resolves settings (flag > ``%config ChatMagics`` > environment), snapshots
the notebook for context, streams the turn into a view and records it. It is also the only
place that talks to the user about errors: bad flags and configuration become one-line
``UsageError``s; API failures become a short line under whatever was already streamed.
"""

from __future__ import annotations

import os
import re
import time
from types import CodeType, FunctionType
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Any as AnyTrait
from traitlets import Bool, Dict, Float, Int, Unicode, validate

from ..client.http import ChatRequest
from ..client.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_REFERER,
    DEFAULT_TITLE,
    REASONING_EFFORTS,
    ClientSettings,
    Secret,
)
from ..context.block import ContextMode, build_context
from ..context.capture import Recorder
from ..context.interpolate import interpolate
from ..context.redact import redact
from ..context.snapshot import running_cell, take_snapshot
from ..engine.conversation import Conversation
from ..engine.engine import Session
from ..engine.models import cost_of
from ..engine.turn import TurnOutcome, run_turn
from ..errors import ConfigError, OrmagicError
from ..render.views import NotebookView, TerminalView, View
from . import commands as _commands

__all__ = ["ChatMagics"]

_FIX_PROMPT = (
    "The last cell failed. Explain the cause in one or two sentences, then give the "
    "corrected cell as a single fenced code block."
)
_CODE_BLOCK = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n(.*?)^ {0,3}\1[ \t]*$", re.M | re.S)


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

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.session = Session()
        # set by load_ipython_extension where IPython < 9.1 keeps no printed output
        self.recorder: Recorder | None = None

    @property
    def _ip(self) -> Any:
        """The shell (IPython types it as optional; a registered magic always has one)."""
        return self.shell

    # ------------------------------------------------------------------ settings

    def client_settings(self) -> ClientSettings:
        """Client settings: %config traits over the environment."""
        env = ClientSettings.from_env()
        key = self.api_key if isinstance(self.api_key, Secret) else env.api_key
        return ClientSettings(
            api_key=key,
            base_url=(self.base_url or env.base_url).rstrip("/"),
            referer=self.referer,
            title=self.title,
            extra_headers=dict(self.headers),
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_retries=self.max_retries,
        )

    def default_model(self) -> str:
        return self.model or os.environ.get("ORMAGIC_MODEL", "").strip() or DEFAULT_MODEL

    def key_source(self) -> str:
        """Where the API key comes from, for display: never the key itself."""
        if isinstance(self.api_key, Secret):
            return "set with %config ChatMagics.api_key"
        if os.environ.get("OPENROUTER_API_KEY", "").strip():
            return "set from OPENROUTER_API_KEY"
        return "not set (set OPENROUTER_API_KEY)"

    # ------------------------------------------------------------------ %%chat

    @magic_arguments()
    @argument("-m", "--model", help="Model id for this cell, e.g. deepseek/deepseek-v4-flash.")
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
    @argument("--provider-sort", choices=("price", "throughput", "latency"), help="provider.sort")
    @argument("--no-fallbacks", action="store_true", help="provider.allow_fallbacks = false")
    @cell_magic("chat")  # type: ignore[arg-type]  # IPython types the decorator loosely
    def chat(self, line: str, cell: str) -> None:
        """Ask a model; the cell body is the prompt. The next %%chat continues the conversation.

        Notebook context (recent cells, outputs, errors, variables the prompt names) is
        sent with the prompt; ``%chat context`` shows exactly what. ``{name}`` in the
        prompt is replaced by the kernel variable's value (``{{``/``}}`` for braces).
        Line commands: %chat [history|reset|context|models|usage|key|config|export|load].
        """
        args = _unquote_args(parse_argstring(self.chat, line))
        self._check_budget()
        prompt = self._prompt(cell, args)  # checked before --new forgets anything
        name = args.conversation
        conversation = self.session.store.reset(name) if args.new else self.session.store.get(name)
        if args.system is not None:
            conversation.system = args.system
        elif conversation.system is None and not conversation.turns:
            conversation.system = self.system
        model = args.model or self.default_model()
        view = self._view(args)
        # at once: gathering context can take a moment (the first read of a notebook file
        # imports nbformat, seconds in a JupyterLab environment)
        view.start(model)
        try:
            # variables are found by name in the cell as typed, before {name} became a value
            block = self._context_block(cell, args.context, name, model, fix=args.fix)
            content = f"{block.text}\n\n{prompt}" if block.text else prompt
            user_message = {"role": "user", "content": content}
            cell_id = self._cell_id()
            request = self._request(args, conversation, user_message, cell_id, model)
            outcome = run_turn(self.session.client(self.client_settings()), request, view)
        except OrmagicError as error:
            view.abandon()
            raise UsageError(str(error)) from None
        except UsageError:
            view.abandon()
            raise
        self.session.last_chat_cell[name] = running_cell(self._ip)
        self._conclude(outcome, view, conversation, args, prompt, user_message, cell_id)

    def _prompt(self, cell: str, args: Any) -> str:
        text = cell.strip("\n")
        if not args.no_interpolate:
            secrets = self._secrets()
            text = interpolate(text, self._ip.user_ns, lambda value: redact(str(value), secrets))
        if args.fix:
            text = f"{_FIX_PROMPT}\n\n{text}" if text.strip() else _FIX_PROMPT
        if not text.strip():
            raise UsageError("The cell is empty: write your question below the %%chat line.")
        return text

    def _secrets(self) -> list[str]:
        key = self.client_settings().api_key
        return [key.reveal()] if key else []

    def _context_block(
        self, prompt: str, mode_text: str | None, name: str, model: str, *, fix: bool = False
    ) -> Any:
        try:
            mode = ContextMode.parse(mode_text or self.context)
        except ValueError as error:
            raise UsageError(str(error)) from None
        # auto: the cells since this conversation's previous %%chat; all / last N: the session
        since = self.session.last_chat_cell.get(name) if mode.kind == "auto" else None
        snapshot = take_snapshot(self._ip, since=since, recorder=self.recorder)
        return build_context(
            snapshot,
            prompt=prompt,
            mode=mode,
            budget_tokens=self._budget(model),
            include_error=True if fix else None,
            secrets=self._secrets(),
        )

    def _budget(self, model: str) -> int:
        if self.context_budget is not None:
            return int(self.context_budget)
        info = self.session.cached_model(model)
        if info is not None and info.context_length:
            return min(info.context_length // 10, 100_000)
        return 24_000

    def _cell_id(self) -> str | None:
        parent = getattr(self._ip, "parent_header", None) or {}
        metadata = parent.get("metadata") or {}
        cell_id = metadata.get("cellId") or metadata.get("cell_id")
        return str(cell_id) if cell_id else None

    def _request(
        self,
        args: Any,
        conversation: Conversation,
        user_message: dict[str, Any],
        cell_id: str | None,
        model: str,
    ) -> ChatRequest:
        effort = args.reasoning or self.reasoning
        provider: dict[str, Any] = {}
        if args.provider:
            provider["order"] = list(args.provider)
        if args.provider_sort:
            provider["sort"] = args.provider_sort
        if args.no_fallbacks:
            provider["allow_fallbacks"] = False
        max_tokens = args.max_tokens if args.max_tokens is not None else self.max_tokens
        if max_tokens < 1:
            raise UsageError("--max-tokens must be a positive number.")
        return ChatRequest(
            messages=conversation.request_messages(user_message, cell_id),
            model=model,
            max_tokens=max_tokens,
            reasoning={"effort": effort} if effort else None,
            temperature=args.temperature if args.temperature is not None else self.temperature,
            provider=provider or None,
            models=tuple(args.fallback),
            session_id=conversation.session_id,
        )

    def _view(self, args: Any) -> View:
        show = self.show_reasoning and not args.hide_reasoning
        if getattr(self._ip, "kernel", None) is None:
            return TerminalView(show_reasoning=show)
        return NotebookView(show_reasoning=show, plain=args.format == "text")

    def _check_budget(self) -> None:
        if self.max_cost is None:
            return
        spent = self.session.ledger.session_cost
        if spent >= self.max_cost:
            raise UsageError(
                f"Budget reached: this session spent ${spent:.4f} "
                f"of max_cost ${self.max_cost:.4f}. "
                "Raise it with %config ChatMagics.max_cost = …"
            )

    # ------------------------------------------------------------------ after the stream

    def _conclude(
        self,
        outcome: TurnOutcome,
        view: View,
        conversation: Conversation,
        args: Any,
        prompt: str,
        user_message: dict[str, Any],
        cell_id: str | None,
    ) -> None:
        """Record the turn, show the final outputs, then report how it ended."""
        outcome.cost = self._cost(outcome)
        if outcome.produced:
            turn = outcome.to_turn(prompt, user_message, cell_id)
            conversation.record(turn)
            self.session.ledger.add_turn(conversation.name, turn)
        if view.started or outcome.produced:
            view.finish(outcome.summary(conversation.name))
        else:
            view.abandon()
        self._deliver(outcome, args)
        if outcome.interrupted:
            kept = " (partial answer kept in the conversation)" if outcome.produced else ""
            raise UsageError(f"Interrupted{kept}.")
        if outcome.failure is not None:
            raise UsageError(str(outcome.failure))
        if not outcome.produced:
            raise UsageError("The model returned an empty answer; try again or another model.")

    def _cost(self, outcome: TurnOutcome) -> float | None:
        if outcome.usage is None:
            return None
        if outcome.usage.cost is not None:
            return outcome.usage.cost
        try:
            info = self.session.catalog.get(outcome.answered_by)
        except OrmagicError:
            return None
        return cost_of(outcome.usage, info)

    def _deliver(self, outcome: TurnOutcome, args: Any) -> None:
        answer = outcome.message.get("content") or ""
        if args.out:
            self._ip.user_ns[args.out] = answer
        if (args.format == "code" or args.fix) and answer:
            code = "\n".join(m.group(2).rstrip("\n") for m in _CODE_BLOCK.finditer(answer))
            if code:
                self._ip.set_next_input(code, replace=False)
            elif not outcome.interrupted and outcome.failure is None:
                print("The answer has no code block, so no cell was added below.")

    # ------------------------------------------------------------------ %chat

    @line_magic("chat")  # type: ignore[arg-type]
    def chat_command(self, line: str) -> None:
        """%chat [history|reset|context|models|usage|key|config|export|load] …, or %chat --fix

        Bare ``%chat`` shows the model, conversations, turns and the session's cost.
        ``%chat COMMAND -h`` shows a command's options.
        """
        if line.lstrip().startswith("-"):
            # `%chat --fix` and other flags without a body: a turn with an empty prompt
            self.chat(line, "")
            return
        try:
            reply = _commands.dispatch(self, line)
        except OrmagicError as error:
            raise UsageError(str(error)) from None
        if reply is not None:
            self._show(reply)

    def _show(self, reply: _commands.Reply) -> None:
        if getattr(self._ip, "kernel", None) is None:
            print(reply.text)
            return
        from IPython.display import display

        bundle = {"text/plain": reply.text}
        if reply.html is not None:
            bundle["text/html"] = reply.html
        display(bundle, raw=True)

    def notebook_context(self, prompt: str, mode: str | None, name: str) -> Any:
        """The context block the next ``%%chat`` would send (for ``%chat context``)."""
        return self._context_block(prompt, mode, name, self.default_model())

    def set_next_chat_input(self, text: str) -> None:
        self._ip.set_next_input(text, replace=False)

    def now(self) -> float:
        return time.monotonic()

    def format_error(self, error: BaseException) -> list[str]:
        """The traceback lines IPython shows for ``error``, for the recorder (IPython < 9.1).

        The same lines IPython >= 9.1 keeps in ``history_manager.exceptions``
        (IPython ``InteractiveShell._format_exception_for_storage``).
        """
        if type(error) is UsageError:
            return [f"UsageError: {error}"]
        render = getattr(error, "_render_traceback_", None)
        if callable(render):
            return [str(line) for line in render()]
        if isinstance(error, SyntaxError):
            return list(self._ip.SyntaxTB.structured_traceback(type(error), error, []))
        # tb_offset=1 leaves out IPython's run_code frame, where the error was caught
        return list(
            self._ip.InteractiveTB.structured_traceback(
                type(error), error, error.__traceback__, tb_offset=1
            )
        )

    def shell_writers(self) -> frozenset[CodeType]:
        """The shell's own functions that write to sys.stdout/stderr, for the recorder.

        A terminal or plain IPython < 9.1 prints results (``Out[3]: 7``), ``display()``
        text, tracebacks and usage errors through ``sys.stdout``/``sys.stderr`` (IPython
        ``core/displayhook.py``, ``displaypub.py``, ``InteractiveShell._showtraceback``):
        not what the cell printed, and left out by IPython >= 9.1's own recording too.
        """
        owners = (
            (
                self._ip.displayhook,
                ("write_output_prompt", "write_format_data", "finish_displayhook"),
            ),
            (self._ip.display_pub, ("publish", "clear_output")),
            (self._ip, ("_showtraceback", "show_usage_error")),
        )
        return frozenset(
            function.__code__
            for owner, names in owners
            for cls in type(owner).__mro__
            for name in names
            if isinstance(function := vars(cls).get(name), FunctionType)
        )


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
