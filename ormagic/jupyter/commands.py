"""The ``%chat`` line commands: each parses its words and returns a :class:`Reply`.

Commands talk to the engine through a :class:`CommandHost` (the magic): its engine, the
notebook it reads, and how a lasting setting is set. Replies carry plain text (terminals)
and optional HTML (notebooks); the magic displays them. Every command answers bad input
with one clear line (an ``OrmagicError``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import html
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from traitlets import TraitError

from ..engine.compare import pick as pick_answer
from ..engine.conversation import Response, Turn
from ..engine.engine import Engine, resumed_line
from ..engine.export import export_json, export_notebook, load_json, tool_calls_of
from ..engine.models import models_table_html, models_table_text, select_models
from ..engine.notebook import Notebook
from ..engine.options import AskOptions, Defaults
from ..engine.providers import (
    PROVIDER_TABLE_SORTS,
    chart_points,
    fetch_providers,
    providers_table_html,
    providers_table_text,
    sort_providers,
)
from ..engine.resume import read_notebook
from ..engine.tables import one_line
from ..errors import ConfigError, OrmagicError
from ..formatting import counted, format_cost, format_count, tool_line
from ..render.chart import PLOT_HINT, Measure, chart_bundle
from ..render.escape import escape_text

__all__ = ["COMMANDS", "CommandHost", "Reply", "dispatch"]

# traits %chat config may show and set (the same as %config ChatMagics.NAME): every
# lasting setting but the key, which is never shown
CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(Defaults) if f.name != "api_key")


class CommandHost(Protocol):
    """What a command needs from the magic."""

    @property
    def engine(self) -> Engine:
        """The engine behind ``%%chat``."""

    def notebook(self) -> Notebook:
        """The notebook the engine reads context from."""

    def set_setting(self, name: str, text: str) -> None:
        """Set a lasting setting (a ``ChatMagics`` trait) from its text form."""

    def kept_changed(self, turn: Turn) -> None:
        """A side-by-side turn's kept answer changed (``%chat pick``): mark it where shown."""


@dataclass(frozen=True)
class Reply:
    """A command's answer: text for terminals, optional HTML for notebooks."""

    text: str
    html: str | None = None
    # further outputs for notebooks only, each a display bundle (a chart's PNG)
    bundles: tuple[Mapping[str, str], ...] = ()


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, with one-line messages."""

    def error(self, message: str) -> Any:
        raise ConfigError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise _HelpShown(self.format_help())


class _HelpShown(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _parser(name: str, description: str) -> _Parser:
    return _Parser(prog=f"%chat {name}", description=description, add_help=True)


def dispatch(host: CommandHost, line: str) -> Reply:
    """Run the command named by the first word of ``line``."""
    try:
        words = shlex.split(line)
    except ValueError as error:
        raise ConfigError(f"%chat: {error}") from None
    if not words:
        return status(host, [])
    handler = COMMANDS.get(words[0])
    if handler is None:
        raise ConfigError(
            f"%chat: unknown command {words[0]!r}; try one of: {', '.join(sorted(COMMANDS))}"
        )
    try:
        return handler(host, words[1:])
    except _HelpShown as shown:
        return Reply(shown.text)


def status(host: CommandHost, words: Sequence[str]) -> Reply:
    """Bare ``%chat``: model, conversations, turns, session cost, key source."""
    engine = host.engine
    names = engine.store.names() or ["default"]
    turns = ", ".join(f"{n} ({_turns(len(engine.conversation(n)))})" for n in names)
    lines = [
        f"model: {engine.default_model()}",
        f"conversations: {turns}",
        f"session cost: {format_cost(engine.ledger.session_cost)}",
        f"server: {engine.client_settings().base_url}",
        f"API key: {engine.key_source()}",
    ]
    return Reply("\n".join(lines))


def history(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat history [NAME]``: the conversation's turns."""
    args = _name_parser("history", "Show a conversation's turns.").parse_args(words)
    conversation = host.engine.conversation(args.name)
    if not conversation.turns:
        return Reply(f"Conversation {args.name!r} has no turns yet.")
    text_parts, html_parts = [], []
    for i, turn in enumerate(conversation.turns, 1):
        text = [f"[{i}] You: {turn.prompt}"]
        html_parts.append(f"<p><b>[{i}] You:</b></p><pre>{escape_text(turn.prompt)}</pre>")
        for who, response in _answers(turn):
            calls = [f"[{i}] {line}" for line in _call_lines(response)]
            text += [*calls, f"[{i}] {who}: {response.text}"]
            if calls:
                html_parts.append(f"<pre>{escape_text(chr(10).join(calls))}</pre>")
            html_parts.append(
                f"<p><b>[{i}] {escape_text(who)}:</b></p><pre>{escape_text(response.text)}</pre>"
            )
        text_parts.append("\n".join(text))
    return Reply("\n\n".join(text_parts), "".join(html_parts))


def _call_lines(response: Response) -> list[str]:
    """One line per tool call of a response."""
    return [
        tool_line(name, arguments, result, result.startswith("Error:"))
        for name, arguments, result in tool_calls_of(response.messages)
    ]


def _answers(turn: Turn) -> list[tuple[str, Response]]:
    """Who answered and what: one line for a turn with one answer; with several (side
    by side), each numbered, and the one that continues the conversation marked kept."""
    responses = turn.responses
    found = []
    for n, response in enumerate(responses, 1):
        flags = []
        if len(responses) > 1:
            flags.append(f"answer {n} of {len(responses)}")
            if n - 1 == turn.chosen:
                flags.append("kept")
        if response.interrupted:
            flags.append("interrupted")
        elif response.error:
            flags.append("error")
        note = f" ({', '.join(flags)})" if flags else ""
        found.append((f"{response.model or ''}{note}", response))
    return found


def reset(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat reset [NAME]``: forget a conversation."""
    args = _name_parser("reset", "Forget a conversation.").parse_args(words)
    host.engine.reset(args.name)
    return Reply(f"Conversation {args.name!r} reset.")


def context(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat context [-c NAME] [--context MODE] [PROMPT …]``: what the next %%chat sends."""
    parser = _parser("context", "Show the notebook context the next %%chat would send.")
    parser.add_argument("-c", "--conversation", default="default")
    parser.add_argument("--context", default=None, help="auto|none|all|N")
    parser.add_argument("prompt", nargs="*", help="the prompt (variables it names are summarised)")
    args = parser.parse_args(words)
    options = AskOptions(conversation=args.conversation, context=args.context)
    block = host.engine.preview_context(" ".join(args.prompt), options, host.notebook())
    if not block.text:
        return Reply("The next %%chat would send no notebook context.")
    header = f"Context for the next %%chat: about {format_count(block.tokens)} tokens"
    if block.elided_chars:
        header += f" ({format_count(block.elided_chars)} characters left out by the budget)"
    return Reply(
        f"{header}\n\n{block.text}",
        f"<p>{escape_text(header)}</p><pre>{escape_text(block.text)}</pre>",
    )


def models(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat models [FILTER] [--sort price|context|newest] [--reasoning] [--refresh]``."""
    parser = _parser("models", "List OpenRouter's models.")
    parser.add_argument("filter", nargs="?", default=None)
    parser.add_argument("--sort", choices=("price", "context", "newest"))
    parser.add_argument("--reasoning", action="store_true", help="only reasoning models")
    parser.add_argument("--refresh", action="store_true", help="refetch the list")
    args = parser.parse_args(words)
    engine = host.engine
    chosen = select_models(
        engine.catalog.models(refresh=args.refresh),
        filter=args.filter,
        reasoning_only=args.reasoning,
        sort=args.sort,
    )
    if not chosen:
        return Reply("No model matches.")
    count = counted(len(chosen), "model")
    return Reply(
        f"{models_table_text(chosen)}\n{count}", f"{models_table_html(chosen)}<p>{count}</p>"
    )


def usage(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat usage``: the session's totals per conversation and per model."""
    _parser("usage", "Show this session's token use and cost.").parse_args(words)
    ledger = host.engine.ledger
    if ledger.unresolved():  # interrupted turns: ask OpenRouter what they cost
        host.engine.resolve_costs()
    return Reply(ledger.table_text(), ledger.table_html())


def key(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat key``: the key's label, limit, usage and remaining credit (never the key)."""
    _parser("key", "Show the API key's limits and credit.").parse_args(words)
    settings = host.engine.client_settings()
    data = host.engine.client().get_key()
    secret = settings.api_key.reveal() if settings.api_key else ""
    label = str(data.get("label") or "")
    if secret and secret in label:
        label = "(hidden)"
    rows = [
        ("label", label or "(none)"),
        ("limit", "none" if data.get("limit") is None else format_cost(data.get("limit"))),
        ("usage", format_cost(data.get("usage"))),
        (
            "remaining",
            "unlimited"
            if data.get("limit_remaining") is None
            else format_cost(data.get("limit_remaining")),
        ),
        ("free tier", "yes" if data.get("is_free_tier") else "no"),
    ]
    return _table(rows)


def config(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat config [KEY=VALUE …]``: show or set the lasting defaults."""
    for word in words:
        name, sep, value = word.partition("=")
        if not sep:
            raise ConfigError(f"%chat config: expected KEY=VALUE, got {word!r}")
        _set_setting(host, name.strip(), value)
    engine = host.engine
    effective = {"model": engine.default_model(), "base_url": engine.client_settings().base_url}
    defaults = engine.defaults
    rows = [
        (name, _show_value(getattr(defaults, name), effective.get(name))) for name in CONFIG_KEYS
    ]
    rows.append(("api_key", engine.key_source()))
    return _table(rows)


def export(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat export PATH [-c NAME] [--force]``: .ipynb or .json."""
    parser = _parser("export", "Write a conversation to a notebook (.ipynb) or JSON (.json).")
    parser.add_argument("path")
    parser.add_argument("-c", "--conversation", default="default")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args(words)
    conversation = host.engine.conversation(args.conversation)
    writer = _writer(args.path)
    writer(conversation, args.path, overwrite=args.force)
    return Reply(
        f"Wrote conversation {args.conversation!r} ({_turns(len(conversation))}) to {args.path}."
    )


def load(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat load PATH [-c NAME]``: restore a conversation from JSON or a notebook."""
    parser = _parser(
        "load",
        "Restore a conversation from a JSON file written by %chat export, or from a notebook "
        "(one written by %chat export, or any notebook with saved %%chat outputs).",
    )
    parser.add_argument("path")
    parser.add_argument(
        "-c",
        "--conversation",
        default=None,
        help="JSON: the name to load it as; notebook: which conversation "
        "(default: its only one, else default)",
    )
    args = parser.parse_args(words)
    if args.path.endswith(".ipynb"):
        return _load_notebook(host, args.path, args.conversation)
    conversation = load_json(args.path, name=args.conversation)
    host.engine.put(conversation)
    return Reply(
        f"Loaded conversation {conversation.name!r} ({_turns(len(conversation))}) from {args.path}."
    )


def _load_notebook(host: CommandHost, path: str, name: str | None) -> Reply:
    found = read_notebook(path)
    names = sorted(found.conversations)
    if name is None:
        name = names[0] if len(names) == 1 else "default"
    conversation = found.conversations.get(name)
    if conversation is None:
        held = f" (it holds: {', '.join(names)})" if names else ""
        raise ConfigError(f"{path} has no saved %%chat turns of {name!r}{held}.")
    host.engine.put(conversation)
    lines = [
        *found.notes,
        f"Loaded conversation {name!r} ({_turns(len(conversation))}) from {path}.",
    ]
    return Reply("\n".join(lines))


def resume(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat resume [PATH] [-c NAME]``: pick a conversation up from a saved notebook."""
    parser = _parser(
        "resume",
        "Rebuild a conversation from the %%chat outputs saved in a notebook file "
        "(default: this notebook, as saved on disk).",
    )
    parser.add_argument("path", nargs="?", default=None)
    parser.add_argument("-c", "--conversation", default="default")
    args = parser.parse_args(words)
    path = args.path or host.notebook().path
    if path is None:
        raise ConfigError(
            "%chat resume: this kernel does not know its notebook file; "
            "name it: %chat resume analysis.ipynb"
        )
    found = host.engine.resume(args.conversation, path)
    if found.turns(args.conversation):
        last = resumed_line(args.conversation, found)
    else:
        last = f"No saved %%chat turns of {args.conversation!r} in {found.name}."
    return Reply("\n".join([*found.notes, last]))


def tools(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat tools``: every tool the model may call, with its description and parameters."""
    _parser("tools", "List the tools the model may call.").parse_args(words)
    engine = host.engine
    box = engine.toolbox(host.notebook())
    defaults = engine.defaults
    if defaults.tools and defaults.max_tool_rounds > 0:
        state = (
            f"Tools are on: at most {defaults.max_tool_rounds} rounds of calls per question "
            "(%config ChatMagics.tools, ChatMagics.max_tool_rounds; --no-tools for one cell)."
        )
    else:
        state = "Tools are off (%config ChatMagics.tools = True to turn them on)."
    sections = [state]
    for title, builtin in (("Built-in, read-only:", True), ("Yours (@ormagic.tool):", False)):
        listed = [t for t in box.tools if t.builtin is builtin]
        if listed:
            sections.append("\n".join([title, *(_tool_text(t) for t in listed)]))
    if not any(not t.builtin for t in box.tools):
        sections.append("Yours: none yet (decorate a function with @ormagic.tool).")
    text = "\n\n".join(sections)
    return Reply(text, f"<pre>{escape_text(text)}</pre>")


def _tool_text(tool: Any) -> str:
    lines = [f"  {tool.signature()}"]
    if tool.description:
        lines += [f"      {line}" for line in tool.description.splitlines() if line]
    for name, schema in (tool.parameters.get("properties") or {}).items():
        if schema.get("description"):
            lines.append(f"      {name}: {schema['description']}")
    return "\n".join(lines)


def _writer(path: str) -> Callable[..., None]:
    if path.endswith(".ipynb"):
        from ..render.markdown import neutralise_markdown  # markdown-it, only to export

        return functools.partial(export_notebook, neutralise=neutralise_markdown)
    if path.endswith(".json"):
        return export_json
    raise ConfigError(f"%chat export: {path!r} must end in .ipynb or .json")


def _name_parser(name: str, description: str) -> _Parser:
    parser = _parser(name, description)
    parser.add_argument("name", nargs="?", default="default", help="conversation name")
    return parser


def _set_setting(host: CommandHost, name: str, value: str) -> None:
    if name == "api_key":
        raise ConfigError(
            "Set the key in the environment (OPENROUTER_API_KEY), not in a cell: "
            "cells are saved with the notebook."
        )
    if name not in CONFIG_KEYS:
        raise ConfigError(
            f"%chat config: unknown setting {name!r}; settings: {', '.join(CONFIG_KEYS)}"
        )
    try:
        host.set_setting(name, value)
    except (OrmagicError, TraitError, ValueError, TypeError) as error:
        raise ConfigError(f"%chat config: bad value for {name}: {value!r} ({error})") from None


def _show_value(value: Any, effective: str | None = None) -> str:
    if value is None:
        return f"(unset: {effective})" if effective else "(unset)"
    return repr(value) if isinstance(value, str) else str(value)


def _turns(count: int) -> str:
    return counted(count, "turn")


def _table(rows: Sequence[tuple[str, str]]) -> Reply:
    width = max(len(k) for k, _ in rows)
    text = "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
        f"{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return Reply(text, f"<table>{body}</table>")


# ----------------------------------------------------------------- choosing a model


def providers(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat providers [MODEL] [--sort …] [--chart …]``: who serves a model, how well."""
    parser = _parser(
        "providers", "Show who serves a model: prices, limits, latency, throughput, uptime."
    )
    parser.add_argument("model", nargs="?", default=None, help="model id (default: the model)")
    parser.add_argument("--sort", choices=PROVIDER_TABLE_SORTS)
    parser.add_argument(
        "--chart",
        choices=("throughput", "latency", "none"),
        default="throughput",
        help="what the chart sets against price (default throughput)",
    )
    args = parser.parse_args(words)
    engine = host.engine
    model_id = args.model or engine.default_model()
    found = fetch_providers(engine.client().get_endpoints, model_id, engine.catalog.models)
    rows = sort_providers(found.providers, args.sort)
    count = f"{counted(len(rows), 'provider')} of {found.model_id}"
    text = f"{providers_table_text(rows)}\n{count}"
    html_parts = [providers_table_html(rows), f"<p>{escape_text(count)}</p>"]
    bundles: tuple[Mapping[str, str], ...] = ()
    if args.chart != "none" and rows:
        measure: Measure = "latency" if args.chart == "latency" else "throughput"
        points, left_out = chart_points(rows, measure)
        title = f"{one_line(found.model_id)}: price against {measure}, per provider"
        chart = chart_bundle(points, title=title, measure=measure)
        if chart is not None:
            bundles = (chart,)
            if left_out:
                note = f"Not in the chart (no {measure} figure yet): {', '.join(left_out)}."
                html_parts.append(f"<p>{escape_text(note)}</p>")
        elif points:
            html_parts.append(f"<p>{escape_text(PLOT_HINT)}</p>")
    return Reply(text, "".join(html_parts), bundles)


def pick(host: CommandHost, words: Sequence[str]) -> Reply:
    """``%chat pick MODEL|N [-c NAME] [--turn T]``: which side-by-side answer continues."""
    parser = _parser(
        "pick", "Choose which answer of a side-by-side turn the conversation continues from."
    )
    parser.add_argument("choice", help="the answer's number (from 1) or its model id")
    parser.add_argument("-c", "--conversation", default="default")
    parser.add_argument("--turn", type=int, default=None, help="turn number (default: the last)")
    args = parser.parse_args(words)
    number, turn = pick_answer(
        host.engine, args.choice, conversation=args.conversation, turn=args.turn
    )
    host.kept_changed(turn)
    response = turn.response
    return Reply(
        f"Conversation {args.conversation!r} continues from answer {turn.chosen + 1} "
        f"({response.model}) of turn {number}."
    )


COMMANDS: dict[str, Callable[[CommandHost, Sequence[str]], Reply]] = {
    "config": config,
    "context": context,
    "export": export,
    "history": history,
    "key": key,
    "load": load,
    "models": models,
    "pick": pick,
    "providers": providers,
    "reset": reset,
    "resume": resume,
    "tools": tools,
    "usage": usage,
}
