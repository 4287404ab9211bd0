"""The notebook file carries the conversation: a record per answer, read back after a restart.

Each answer's output metadata (``ormagic``) holds a :func:`record` of its turn: the
conversation's name, system prompt and session id, the prompt as sent after
interpolation (without the notebook-context block, which is large and gathered afresh),
the messages that go back to the model exactly as received (the answer, ``reasoning``,
``reasoning_details`` with encrypted items, tool rounds), and the model, provider, usage,
cost and generation id. :func:`read_notebook` rebuilds conversations from those records in
notebook order, as the file was saved on disk.

Everything here is best-effort in the way a user needs: a damaged or foreign file, a
malformed record or one written by a newer ormagic is skipped with a one-line note,
never an exception.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..context.redact import redact
from ..events import Usage
from ..formatting import counted, printable
from .conversation import Conversation, Response, Turn

__all__ = [
    "RECORD_FORMAT",
    "NotebookConversations",
    "read_notebook",
    "record",
    "saved_ago",
    "typed",
    "usage_from",
]

RECORD_FORMAT = 1
# The field a reader sees in each kind of reasoning detail (docs §5).
_READABLE = {"reasoning.text": "text", "reasoning.summary": "summary"}
# Opaque values the model needs back byte for byte: never touched by redaction.
_OPAQUE_KEYS = frozenset({"data", "signature", "id", "tool_call_id"})


def _clean(value: Any, secrets: Sequence[str], key: str = "") -> Any:
    """``value`` with every string redacted like context, opaque values left as they are."""
    if isinstance(value, str):
        return value if key in _OPAQUE_KEYS else redact(value, secrets)
    if isinstance(value, Mapping):
        return {k: _clean(v, secrets, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, secrets, key) for v in value]
    return value


def _readable(details: Any) -> str | None:
    """The text a reader sees in ``reasoning_details`` (text and summary items), in order."""
    if not isinstance(details, list):
        return None
    parts = []
    for item in details:
        if isinstance(item, Mapping):
            key = _READABLE.get(str(item.get("type")))
            value = item.get(key) if key else None
            parts.append(value if isinstance(value, str) else "")
    return "".join(parts)


def _compact(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """The messages without a ``reasoning`` string that their details already spell out.

    Streams usually carry the reasoning twice, as ``reasoning`` and as
    ``reasoning_details`` text: keeping both would double the record. The indices of the
    messages whose string was dropped are returned, to rebuild it on reading.
    """
    compact, derived = [], []
    for index, message in enumerate(messages):
        copy = dict(message)
        reasoning = copy.get("reasoning")
        if (
            isinstance(reasoning, str)
            and reasoning
            and reasoning == _readable(copy.get("reasoning_details"))
        ):
            del copy["reasoning"]
            derived.append(index)
        compact.append(copy)
    return compact, derived


def _expand(messages: list[dict[str, Any]], derived: Any) -> list[dict[str, Any]]:
    """The messages as sent back, with the dropped ``reasoning`` strings rebuilt in place."""
    if not isinstance(derived, list):
        return messages
    for index in derived:
        if not isinstance(index, int) or not 0 <= index < len(messages):
            raise _Malformed("reasoning_derived names a message that does not exist")
        text = _readable(messages[index].get("reasoning_details"))
        if text is None:
            raise _Malformed("reasoning_derived names a message without reasoning_details")
        # the key goes back where the builder puts it: after the content
        rebuilt = {}
        for key, value in messages[index].items():
            rebuilt[key] = value
            if key == "content":
                rebuilt["reasoning"] = text
        rebuilt.setdefault("reasoning", text)
        messages[index] = rebuilt
    return messages


def usage_dict(usage: Usage | None) -> dict[str, Any] | None:
    """The usage figures a saved answer keeps."""
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "cached_tokens": usage.cached_tokens,
    }


def record(
    *,
    conversation: str,
    system: str | None,
    session_id: str,
    prompt: str,
    cell_id: str | None,
    response: Response,
    chosen: bool = True,
    secrets: Sequence[str] = (),
    in_output: bool = False,
) -> dict[str, Any]:
    """What an answer's output metadata keeps so that its turn can be rebuilt.

    ``in_output``: the record goes on the output whose ``text/plain`` is the answer (a
    single ``%%chat`` answer, see ``FinalSummary``). An answer of one message whose text
    reads the same there is then not kept a second time: ``content_in_output`` says
    where it is, and reading puts it back.
    """
    messages, derived = _compact(response.messages)
    in_text = False
    if in_output and len(messages) == 1:
        content = messages[0].get("content")
        if isinstance(content, str) and content and printable(content) == content:
            messages[0] = {k: v for k, v in messages[0].items() if k != "content"}
            in_text = True
    saved = {
        "format": RECORD_FORMAT,
        "conversation": conversation,
        "system": system,
        "session_id": session_id,
        "cell_id": cell_id,
        "prompt": prompt,
        "messages": messages,
        "reasoning_derived": derived,
        "content_in_output": "text/plain" if in_text else None,
        "chosen": chosen,
        "requested_model": response.requested_model,
        "model": response.model,
        "provider": response.provider,
        "generation_id": response.generation_id,
        "usage": usage_dict(response.usage),
        "cost": response.cost,
        "elapsed": round(response.elapsed, 3),
        "interrupted": response.interrupted,
        "error": response.error,
        "finish_reason": response.finish_reason,
    }
    cleaned: dict[str, Any] = _clean(saved, secrets)
    return cleaned


def typed(value: Any, kind: type | tuple[type, ...]) -> Any:
    """``value`` if it has the expected type (never a bool for a number), else ``None``:
    for reading back what ormagic saved, which a file may have changed."""
    if isinstance(value, bool) and kind is not bool:
        return None
    return value if isinstance(value, kind) else None


def usage_from(data: Any) -> Usage | None:
    """Saved usage figures read back (missing counts are 0, a missing cost None)."""
    if not isinstance(data, Mapping):
        return None

    def count(key: str) -> int:
        value = typed(data.get(key), int)
        return value if isinstance(value, int) else 0

    return Usage(
        prompt_tokens=count("prompt_tokens"),
        completion_tokens=count("completion_tokens"),
        reasoning_tokens=count("reasoning_tokens"),
        cached_tokens=count("cached_tokens"),
        cost=typed(data.get("cost"), (int, float)),
    )


class _Malformed(ValueError):
    """A record that cannot be read back."""


def _messages(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, list) or not data:
        raise _Malformed("no messages")
    for message in data:
        if not isinstance(message, dict) or message.get("role") not in ("assistant", "tool"):
            raise _Malformed("a message is not an assistant or tool message")
    return [dict(m) for m in data]


def _with_content(messages: list[dict[str, Any]], where: Any, output: Any) -> list[dict[str, Any]]:
    """The answer's text put back from the output that shows it (``content_in_output``)."""
    if where is None:
        return messages
    data = output.get("data") if isinstance(output, Mapping) else None
    text = data.get(where) if isinstance(data, Mapping) and where == "text/plain" else None
    if isinstance(text, list):  # a notebook may keep text as a list of lines
        text = "".join(t for t in text if isinstance(t, str))
    if len(messages) != 1 or not isinstance(text, str) or "content" in messages[0]:
        raise _Malformed("content_in_output names no text")
    return [{**messages[0], "content": text}]


def _response(saved: Mapping[str, Any], output: Any = None) -> Response:
    messages = _messages(saved.get("messages"))
    messages = _with_content(messages, saved.get("content_in_output"), output)
    return Response(
        _expand(messages, saved.get("reasoning_derived")),
        model=typed(saved.get("model"), str),
        requested_model=typed(saved.get("requested_model"), str),
        provider=typed(saved.get("provider"), str),
        generation_id=typed(saved.get("generation_id"), str),
        usage=usage_from(saved.get("usage")),
        cost=typed(saved.get("cost"), (int, float)),
        elapsed=typed(saved.get("elapsed"), (int, float)) or 0.0,
        interrupted=saved.get("interrupted") is True,
        error=typed(saved.get("error"), str),
        finish_reason=typed(saved.get("finish_reason"), str),
    )


@dataclass
class NotebookConversations:
    """The conversations a notebook file holds, and what could not be read."""

    path: str
    saved_at: float | None = None
    conversations: dict[str, Conversation] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def turns(self, conversation: str) -> int:
        found = self.conversations.get(conversation)
        return len(found) if found is not None else 0


def _records(cell: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """The ``ormagic`` records of a cell, each with the output that holds it: in its
    outputs, or its own metadata (exports, no output)."""
    found: list[tuple[Any, Any]] = []
    if cell.get("cell_type") == "code":
        for output in cell.get("outputs") or ():
            metadata = output.get("metadata") if isinstance(output, Mapping) else None
            if isinstance(metadata, Mapping) and "ormagic" in metadata:
                found.extend((saved, output) for saved in _answers(metadata["ormagic"]))
    elif isinstance(cell.get("metadata"), Mapping) and "ormagic" in cell["metadata"]:
        found.append((cell["metadata"]["ormagic"], None))
    return found


def _answers(saved: Any) -> list[Any]:
    """The records of one output: itself, or each answer of a side-by-side turn."""
    answers = saved.get("answers") if isinstance(saved, Mapping) else None
    return list(answers) if isinstance(answers, list) else [saved]


def _is_record(saved: Any) -> bool:
    # answers saved by ormagic before records existed carry usage but no messages: not
    # enough to continue from, and not an error either
    return isinstance(saved, Mapping) and "format" in saved


class _Reader:
    def __init__(self, path: str) -> None:
        self.result = NotebookConversations(path)
        self._skipped = 0
        self._newer = 0

    def cell(self, cell: Mapping[str, Any], number: int) -> None:
        turns: dict[str, Turn] = {}
        for saved, output in _records(cell):
            if not _is_record(saved):
                continue
            if saved.get("format") != RECORD_FORMAT:
                self._newer += 1
                continue
            try:
                self._add(saved, output, cell, number, turns)
            except _Malformed:
                self._skipped += 1

    def _add(
        self,
        saved: Mapping[str, Any],
        output: Any,
        cell: Mapping[str, Any],
        number: int,
        turns: dict[str, Turn],
    ) -> None:
        name = typed(saved.get("conversation"), str)
        prompt = typed(saved.get("prompt"), str)
        if not name or prompt is None:
            raise _Malformed("no conversation or prompt")
        response = _response(saved, output)
        turn = turns.get(name)
        if turn is None:
            cell_id = typed(saved.get("cell_id"), str) or typed(cell.get("id"), str)
            turn = Turn(prompt, {"role": "user", "content": prompt}, [], cell_id=cell_id)
            turns[name] = turn
            conversation = self.result.conversations.get(name)
            if conversation is None:
                conversation = self.result.conversations[name] = Conversation(name=name)
            conversation.system = typed(saved.get("system"), str)
            session_id = typed(saved.get("session_id"), str)
            if session_id:
                conversation.session_id = session_id
            conversation.record(turn)
        if saved.get("chosen") is True:
            turn.chosen = len(turn.responses)
        turn.responses.append(response)

    def finish(self) -> NotebookConversations:
        if self._skipped:
            self.result.notes.append(
                f"Skipped {counted(self._skipped, 'saved answer')} in {self.result.name} "
                "whose ormagic metadata is malformed."
            )
        if self._newer:
            self.result.notes.append(
                f"Skipped {counted(self._newer, 'saved answer')} in {self.result.name} written "
                "by a newer ormagic; upgrade ormagic to read them."
            )
        return self.result


def read_notebook(path: str | os.PathLike[str]) -> NotebookConversations:
    """Every conversation recorded in the notebook at ``path``, as saved on disk.

    Never raises: an unreadable, damaged or foreign file gives no conversations and a
    note saying why.
    """
    where = os.fspath(path)
    reader = _Reader(where)
    try:
        reader.result.saved_at = os.stat(where).st_mtime
        cells = _cells(where)
    except FileNotFoundError:
        reader.result.notes.append(f"Could not resume: {os.path.basename(where)} does not exist.")
        return reader.result
    # a damaged file can fail in many ways (OSError, JSON, nbformat's validation)
    except Exception as error:
        reader.result.notes.append(
            f"Could not resume from {os.path.basename(where)}: it is not a readable "
            f"notebook ({type(error).__name__})."
        )
        return reader.result
    for number, cell in enumerate(cells):
        if isinstance(cell, Mapping):
            reader.cell(cell, number)
    return reader.finish()


def _cells(path: str) -> list[Any]:
    """The notebook's cells as plain dicts (nbformat reads and upgrades older versions)."""
    nbformat: Any = importlib.import_module("nbformat")  # ~0.2 s to import: only when needed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbformat warns about unusual notebooks
        notebook = nbformat.read(path, as_version=4)
    cells: list[Any] = json.loads(json.dumps(notebook.get("cells", [])))
    return cells


def saved_ago(saved_at: float | None, now: float | None = None) -> str:
    """``"saved 2 min ago"``, from a file's modification time."""
    if saved_at is None:
        return "saved at an unknown time"
    seconds = max(0.0, (time.time() if now is None else now) - saved_at)
    if seconds < 60:
        return "saved just now" if seconds < 10 else f"saved {int(seconds)} s ago"
    if seconds < 3600:
        return f"saved {int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"saved {int(seconds // 3600)} h ago"
    days = int(seconds // 86400)
    return f"saved {counted(days, 'day')} ago"
