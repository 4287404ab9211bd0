"""Conversations to and from files: a runnable notebook, and JSON that loads back.

Pure engine: no IPython. The JSON keeps ``conversation.messages`` exactly as they are
sent to OpenRouter (``reasoning_details`` included, which providers such as DeepSeek need
back unchanged, docs §8; the assistant and tool messages of every tool round too), so a
loaded conversation continues where it stopped. Nothing here ever sees the API key.
"""

from __future__ import annotations

import html
import importlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..events import Usage
from ..formatting import counted, escape_markdown_text, inert_pre, tool_line
from .conversation import Conversation, Response, Turn
from .resume import record, typed, usage_dict, usage_from

if TYPE_CHECKING:
    import nbformat

__all__ = [
    "FORMAT",
    "VERSION",
    "conversation_to_notebook",
    "export_json",
    "export_notebook",
    "load_json",
    "tool_calls_of",
]

FORMAT = "ormagic.conversation"
VERSION = 1

_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


# -- shared helpers ---------------------------------------------------------------------


def _usage_dict(usage: Usage | None) -> dict[str, Any] | None:
    """What a saved answer keeps of its usage, and its cost (an export replays it)."""
    saved = usage_dict(usage)
    return None if usage is None or saved is None else {**saved, "cost": usage.cost}


def _write_new(path: str | os.PathLike[str], text: str, *, overwrite: bool) -> None:
    """Write ``text``; mode ``x`` refuses an existing file without a check-then-write race."""
    try:
        with open(path, "w" if overwrite else "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise ConfigError(f"{os.fspath(path)} exists; pass --force to overwrite") from None
    except OSError as exc:
        raise ConfigError(f"Cannot write {os.fspath(path)}: {exc.strerror or exc}") from None


# -- notebook ---------------------------------------------------------------------------


def _reasoning_text(message: Mapping[str, Any]) -> str:
    """The readable reasoning of an assistant message (``reasoning``, else its details)."""
    reasoning = message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        return reasoning
    details = message.get("reasoning_details")
    if not isinstance(details, list):
        return ""
    parts = []
    for item in details:
        if isinstance(item, Mapping):
            text = item.get("text") if item.get("type") == "reasoning.text" else item.get("summary")
            parts.append(text if isinstance(text, str) else "")
    return "".join(parts)


def tool_calls_of(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """``(name, arguments, result)`` of every tool call in ``messages``, in order.

    A call whose result is missing (a hand-written file) has the result ``""``.
    """
    results = {m.get("tool_call_id"): m.get("content") for m in messages if m.get("role") == "tool"}
    calls = []
    for message in messages:
        for call in message.get("tool_calls") or () if message.get("role") == "assistant" else ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if not isinstance(function, Mapping):
                continue
            result = results.get(call.get("id"))
            calls.append(
                (
                    str(function.get("name", "")),
                    str(function.get("arguments", "")),
                    result if isinstance(result, str) else "",
                )
            )
    return calls


def _calls_markdown(turn: Turn) -> str | None:
    """The turn's tool calls as a collapsed block: each call, then its result (escaped)."""
    calls = tool_calls_of(turn.response.messages)
    if not calls:
        return None
    items = "".join(
        f"<pre>{html.escape(tool_line(name, arguments, result, result.startswith('Error:')))}"
        f"\n\n{html.escape(result)}</pre>"
        for name, arguments, result in calls
    )
    count = counted(len(calls), "tool call")
    return f"<details><summary>{count}</summary>\n\n{items}\n\n</details>"


def _answer_markdown(turn: Turn, neutralise: Callable[[str], str]) -> str:
    blocks = []
    reasoning = "\n\n".join(text for text in map(_reasoning_text, turn.response.messages) if text)
    if reasoning:
        # Escaped text inside <details><pre> renders collapsed and cannot run script
        # (docs/jupyter-notes.md, "Security: outputs are trusted").
        blocks.append(
            f"<details><summary>Reasoning</summary>\n\n{inert_pre(reasoning)}\n\n</details>"
        )
    calls = _calls_markdown(turn)
    if calls:
        blocks.append(calls)
    if turn.answer:
        blocks.append(neutralise(turn.answer))
    if turn.interrupted:
        blocks.append("*Interrupted.*")
    if turn.error:
        blocks.append(f"**Error:** {escape_markdown_text(turn.error)}")
    return "\n\n".join(blocks)


def _title_markdown(conversation: Conversation) -> str:
    title = f"# Conversation {escape_markdown_text(conversation.name)}"
    if not conversation.system:
        return title
    return f"{title}\n\nSystem prompt:\n\n{inert_pre(conversation.system)}"


def _setup_source(conversation: Conversation) -> str:
    """``%load_ext ormagic``, then the system prompt, so that re-running replays the chat.

    Not a ``--system`` flag: IPython's magic_arguments split the line without removing
    quotes (``arg_split(posix=False)``), and the flag cannot hold several lines.
    """
    if not conversation.system:
        return "%load_ext ormagic"
    return (
        "%load_ext ormagic\nimport ormagic\n\n"
        f"ormagic.conversation({conversation.name!r}).system = {conversation.system!r}"
    )


def conversation_to_notebook(
    conversation: Conversation, *, neutralise: Callable[[str], str]
) -> nbformat.NotebookNode:
    """A notebook that replays the conversation: one ``%%chat`` cell per turn.

    Each prompt cell has no outputs; the answer follows as a Markdown cell whose metadata
    keeps the model, provider, generation id, usage and cost of that turn. ``neutralise``
    makes model Markdown safe to render (the renderer's ``neutralise_markdown``; handed
    in, so that the engine does not import the Markdown stack).
    """
    # nbformat takes ~0.2 s to import: only when exporting. Its constructors carry no
    # type hints, hence Any.
    v4: Any = importlib.import_module("nbformat.v4")

    cells = [
        v4.new_code_cell(_setup_source(conversation)),
        v4.new_markdown_cell(_title_markdown(conversation)),
    ]
    for turn in conversation.turns:
        prompt_cell = v4.new_code_cell(f"%%chat -c {conversation.name}\n{turn.prompt}")
        # the record a %%chat output keeps, so that %chat load reads the lesson back
        meta = record(
            conversation=conversation.name,
            system=conversation.system,
            session_id=conversation.session_id,
            prompt=turn.prompt,
            cell_id=prompt_cell.id,
            response=turn.response,
        )
        answer_cell = v4.new_markdown_cell(
            _answer_markdown(turn, neutralise), metadata={"ormagic": meta}
        )
        cells += [prompt_cell, answer_cell]
    ormagic_meta: dict[str, Any] = {
        "conversation": conversation.name,
        "session_id": conversation.session_id,
    }
    if conversation.system:
        ormagic_meta["system"] = conversation.system
    metadata = {
        "kernelspec": _KERNELSPEC,
        "language_info": {"name": "python"},
        "ormagic": ormagic_meta,
    }
    notebook: nbformat.NotebookNode = v4.new_notebook(cells=cells, metadata=metadata)
    return notebook


def export_notebook(
    conversation: Conversation,
    path: str | os.PathLike[str],
    *,
    neutralise: Callable[[str], str],
    overwrite: bool = False,
) -> None:
    """Write the conversation as an ``.ipynb`` (nbformat 4, validated before writing)."""
    writes: Callable[..., str] = importlib.import_module("nbformat").writes
    text = writes(conversation_to_notebook(conversation, neutralise=neutralise), version=4)
    _write_new(path, text, overwrite=overwrite)


# -- JSON -------------------------------------------------------------------------------


def _turn_dict(turn: Turn) -> dict[str, Any]:
    return {
        "prompt": turn.prompt,
        "cell_id": turn.cell_id,
        "model": turn.model,
        "provider": turn.provider,
        "generation_id": turn.generation_id,
        "usage": _usage_dict(turn.usage),
        "cost": turn.cost,
        "elapsed": turn.elapsed,
        "interrupted": turn.interrupted,
        "error": turn.error,
    }


def export_json(
    conversation: Conversation, path: str | os.PathLike[str], *, overwrite: bool = False
) -> None:
    """Write the conversation as JSON that :func:`load_json` reads back."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "name": conversation.name,
        "system": conversation.system,
        "session_id": conversation.session_id,
        "messages": conversation.messages,
        "turns": [_turn_dict(turn) for turn in conversation.turns],
    }
    # Serialised in full before the file is opened, so a failure leaves no half file.
    text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    _write_new(path, text, overwrite=overwrite)


def _read_document(where: str, path: str | os.PathLike[str]) -> Any:
    try:
        with open(path, encoding="utf-8-sig") as f:  # a BOM is harmless
            text = f.read()
    except UnicodeDecodeError:
        raise ConfigError(f"Cannot read {where}: it is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {where}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{where} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None


def _check_format(where: str, document: Any) -> Mapping[str, Any]:
    """The document as a mapping with a ``messages`` list; a bare list is its messages."""
    if isinstance(document, list):
        document = {"messages": document}
    if not isinstance(document, Mapping):
        raise ConfigError(f"{where} is not an ormagic conversation: expected a JSON object")
    fmt = document.get("format", FORMAT)
    if fmt != FORMAT:
        raise ConfigError(f"{where} is not an ormagic conversation (format {fmt!r})")
    version = document.get("version", VERSION)
    if version != VERSION:
        raise ConfigError(
            f"{where} has conversation format version {version!r}; "
            f"this ormagic reads version {VERSION}"
        )
    if not isinstance(document.get("messages"), list):
        raise ConfigError(f'{where} has no "messages" list')
    return document


def _split_system(where: str, messages: Sequence[Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """The leading system prompt (if any) and the remaining messages, each a checked dict."""
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ConfigError(f'{where}: message {i + 1} is not an object with a "role"')
    rest = list(messages)
    if rest and rest[0]["role"] == "system":
        content = rest[0].get("content")
        if not isinstance(content, str):
            raise ConfigError(f"{where}: the system message's content is not text")
        return content, rest[1:]
    return None, rest


def _alternation(where: str, n: int, role: str, expected: str) -> ConfigError:
    return ConfigError(
        f"{where}: messages must alternate user and assistant; "
        f"message {n} is {role!r}, expected {expected!r}"
    )


def _exchanges(
    where: str, messages: list[dict[str, Any]], offset: int
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each user message and the answer that follows it: an assistant message, or the
    assistant and tool messages of a tool-calling answer. Anything else is refused rather
    than silently reordered."""
    exchanges: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    called: set[Any] = set()  # ids the latest assistant message called
    for i, message in enumerate(messages):
        n, role = i + 1 + offset, message["role"]
        answer = exchanges[-1][1] if exchanges else None
        if role == "user" and (answer is None or answer):
            exchanges.append((message, []))
        elif answer is None:
            raise _alternation(where, n, role, "user")
        elif role == "assistant" or (role == "tool" and answer):
            if role == "tool" and message.get("tool_call_id") not in called:
                raise ConfigError(
                    f"{where}: message {n} is a tool result for "
                    f"{message.get('tool_call_id')!r}, which the assistant did not call"
                )
            if role == "assistant":
                called = {
                    c.get("id") for c in message.get("tool_calls") or () if isinstance(c, dict)
                }
            answer.append(message)
        else:
            raise _alternation(where, n, role, "assistant")
    if exchanges and not exchanges[-1][1]:
        raise ConfigError(
            f"{where}: messages must alternate user and assistant; "
            f"the last user message (message {len(messages) + offset}) has no answer"
        )
    return exchanges


def _prompt_of(user_message: Mapping[str, Any]) -> str:
    content = user_message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def _turn_from(user: dict[str, Any], answer: list[dict[str, Any]], meta: Mapping[str, Any]) -> Turn:
    """A turn from its messages; the metadata, written by us, fills in the rest."""
    prompt = typed(meta.get("prompt"), str)
    response = Response(
        answer,
        model=typed(meta.get("model"), str),
        provider=typed(meta.get("provider"), str),
        generation_id=typed(meta.get("generation_id"), str),
        usage=usage_from(meta.get("usage")),
        cost=typed(meta.get("cost"), (int, float)),
        elapsed=typed(meta.get("elapsed"), (int, float)) or 0.0,
        interrupted=meta.get("interrupted") is True,
        error=typed(meta.get("error"), str),
    )
    return Turn(
        prompt if prompt is not None else _prompt_of(user),
        user,
        [response],
        cell_id=typed(meta.get("cell_id"), str),
    )


def _turn_metadata(where: str, document: Mapping[str, Any], count: int) -> list[Mapping[str, Any]]:
    turns = document.get("turns")
    if turns is None:
        return [{}] * count
    if not isinstance(turns, list):
        raise ConfigError(f'{where}: "turns" is not a list')
    if len(turns) != count:
        raise ConfigError(f'{where}: "turns" has {len(turns)} entries for {count} exchanges')
    return [t if isinstance(t, Mapping) else {} for t in turns]


def load_json(path: str | os.PathLike[str], *, name: str | None = None) -> Conversation:
    """A conversation from :func:`export_json`'s file, or a hand-written list of messages.

    A leading system message becomes the system prompt; the rest must alternate user and
    assistant, where an answer that called tools is its assistant and tool messages, in
    order. ``name`` overrides the name stored in the file. Every problem is a
    :class:`ConfigError` naming the file.
    """
    where = os.fspath(path)
    document = _check_format(where, _read_document(where, path))
    system, rest = _split_system(where, document["messages"])
    pairs = _exchanges(where, rest, offset=0 if system is None else 1)
    metadata = _turn_metadata(where, document, len(pairs))
    if system is None:
        system = typed(document.get("system"), str)
    stored_name = typed(document.get("name"), str)
    conversation = Conversation(name=name or stored_name or "default", system=system)
    session_id = typed(document.get("session_id"), str)
    if session_id:
        conversation.session_id = session_id
    conversation.turns = [
        _turn_from(user, answer, meta) for (user, answer), meta in zip(pairs, metadata, strict=True)
    ]
    return conversation
