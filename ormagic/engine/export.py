"""Conversations to and from files: a runnable notebook, and JSON that loads back.

Pure engine: no IPython. The JSON keeps ``conversation.messages`` exactly as they are
sent to OpenRouter (``reasoning_details`` included, which providers such as DeepSeek need
back unchanged, docs §8), so a loaded conversation continues where it stopped. Nothing
here ever sees the API key.
"""

from __future__ import annotations

import html
import importlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..events import Usage
from .conversation import Conversation, Turn

if TYPE_CHECKING:
    import nbformat

__all__ = [
    "FORMAT",
    "VERSION",
    "conversation_to_notebook",
    "export_json",
    "export_notebook",
    "load_json",
]

FORMAT = "ormagic.conversation"
VERSION = 1

# CommonMark: any ASCII punctuation may be backslash-escaped (spec §2.4). All of it is,
# except the characters of the entities that html.escape has already written (& ; < >).
_MD_PUNCTUATION = re.compile(r"([!-%'-/:=?@\[-`{-~])")
_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


# -- shared helpers ---------------------------------------------------------------------


def _usage_dict(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cached_tokens": usage.cached_tokens,
        "cost": usage.cost,
    }


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


def _escape_inline(text: str) -> str:
    """Plain text made literal in a Markdown line: HTML and Markdown syntax escaped,
    newlines folded."""
    return _MD_PUNCTUATION.sub(r"\\\1", html.escape(" ".join(text.split()), quote=False))


# What HTML, Markdown or a math extractor could act on, and line ends: as character
# references, the text is one line of <pre> that reads the same in every renderer that
# shows HTML and cannot become a link, an image, math or a tag in any other reading.
_PRE_SPECIAL = re.compile(r"[&<>\[\]$\\\n]")


_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _inert_pre(text: str) -> str:
    body = _PRE_SPECIAL.sub(lambda m: _NAMED.get(m.group()) or f"&#{ord(m.group())};", text)
    return f"<pre>{body}</pre>"


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


def _answer_markdown(turn: Turn, neutralise: Callable[[str], str]) -> str:
    blocks = []
    reasoning = _reasoning_text(turn.assistant_message)
    if reasoning:
        # Escaped text inside <details><pre> renders collapsed and cannot run script
        # (docs/jupyter-notes.md, "Security: outputs are trusted").
        blocks.append(
            f"<details><summary>Reasoning</summary>\n\n{_inert_pre(reasoning)}\n\n</details>"
        )
    if turn.answer:
        blocks.append(neutralise(turn.answer))
    if turn.interrupted:
        blocks.append("*Interrupted.*")
    if turn.error:
        blocks.append(f"**Error:** {_escape_inline(turn.error)}")
    return "\n\n".join(blocks)


def _title_markdown(conversation: Conversation) -> str:
    title = f"# Conversation {_escape_inline(conversation.name)}"
    if not conversation.system:
        return title
    return f"{title}\n\nSystem prompt:\n\n{_inert_pre(conversation.system)}"


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
        cells.append(v4.new_code_cell(f"%%chat -c {conversation.name}\n{turn.prompt}"))
        meta = {
            "model": turn.model,
            "provider": turn.provider,
            "generation_id": turn.generation_id,
            "usage": _usage_dict(turn.usage),
            "cost": turn.cost,
        }
        cells.append(
            v4.new_markdown_cell(_answer_markdown(turn, neutralise), metadata={"ormagic": meta})
        )
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


def _pairs(
    where: str, messages: list[dict[str, Any]], offset: int
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """User/assistant pairs; anything else is refused rather than silently reordered."""
    for i, message in enumerate(messages):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise ConfigError(
                f"{where}: messages must alternate user and assistant; "
                f"message {i + 1 + offset} is {message['role']!r}, expected {expected!r}"
            )
    if len(messages) % 2:
        raise ConfigError(
            f"{where}: messages must alternate user and assistant; "
            f"the last user message (message {len(messages) + offset}) has no answer"
        )
    return list(zip(messages[::2], messages[1::2], strict=True))


def _prompt_of(user_message: Mapping[str, Any]) -> str:
    content = user_message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def _opt(value: Any, kind: type | tuple[type, ...]) -> Any:
    """``value`` if it has the expected type (never a bool for a number), else ``None``."""
    if isinstance(value, bool) and kind is not bool:
        return None
    return value if isinstance(value, kind) else None


def _usage_from(data: Any) -> Usage | None:
    if not isinstance(data, Mapping):
        return None

    def count(key: str) -> int:
        return _opt(data.get(key), int) or 0

    return Usage(
        prompt_tokens=count("prompt_tokens"),
        completion_tokens=count("completion_tokens"),
        reasoning_tokens=count("reasoning_tokens"),
        cached_tokens=count("cached_tokens"),
        cost=_opt(data.get("cost"), (int, float)),
    )


def _turn_from(user: dict[str, Any], assistant: dict[str, Any], meta: Mapping[str, Any]) -> Turn:
    """A turn from its two messages; the metadata, written by us, fills in the rest."""
    prompt = _opt(meta.get("prompt"), str)
    return Turn.single(
        prompt if prompt is not None else _prompt_of(user),
        user,
        assistant,
        cell_id=_opt(meta.get("cell_id"), str),
        model=_opt(meta.get("model"), str),
        provider=_opt(meta.get("provider"), str),
        generation_id=_opt(meta.get("generation_id"), str),
        usage=_usage_from(meta.get("usage")),
        cost=_opt(meta.get("cost"), (int, float)),
        elapsed=_opt(meta.get("elapsed"), (int, float)) or 0.0,
        interrupted=meta.get("interrupted") is True,
        error=_opt(meta.get("error"), str),
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
    assistant. ``name`` overrides the name stored in the file. Every problem is a
    :class:`ConfigError` naming the file.
    """
    where = os.fspath(path)
    document = _check_format(where, _read_document(where, path))
    system, rest = _split_system(where, document["messages"])
    pairs = _pairs(where, rest, offset=0 if system is None else 1)
    metadata = _turn_metadata(where, document, len(pairs))
    if system is None:
        system = _opt(document.get("system"), str)
    stored_name = _opt(document.get("name"), str)
    conversation = Conversation(name=name or stored_name or "default", system=system)
    session_id = _opt(document.get("session_id"), str)
    if session_id:
        conversation.session_id = session_id
    conversation.turns = [
        _turn_from(user, assistant, meta)
        for (user, assistant), meta in zip(pairs, metadata, strict=True)
    ]
    return conversation
