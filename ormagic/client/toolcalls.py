"""Tool calls assembled from streamed fragments (docs/openrouter-tools.md §1.3, §1.4).

A streamed answer that calls tools sends ``delta.tool_calls`` items: the first fragment of
a call carries its ``id``, ``type`` and ``function.name``, later ones pieces of
``function.arguments`` (a JSON text cut anywhere). Providers get this wrong in several
ways, and each rule below answers one of them:

- ids are *assigned*, never concatenated: Fireworks, DeepSeek and Qwen hosts repeat the
  ``id`` (and name) in every fragment (BerriAI/litellm#8990, langchain4j#4544);
- a fragment with a new id on an index that already holds a named call starts a new
  call: some backends give parallel calls one shared ``index`` (LibreChat agents#260);
- a fragment without ``index`` continues the last call, or starts one when it has an id
  (OR-AISDK's fallback);
  (these three rules, which call a fragment belongs to, are ``events.ToolCallKeys``, which
  the live view counts calls with too)
- a missing, empty or duplicate id is replaced by a generated ``call_<hex>`` (OR-AISDK:
  "Some providers return empty, null, or duplicate IDs"; Gemini's ``"id": ""``);
- empty (or blank) arguments become ``"{}"`` (a zero-argument call through OpenRouter,
  autogen#5667);
- UTF-16 surrogate halves that a JavaScript gateway split into two fragments are joined
  again (a lone half cannot even be encoded as UTF-8).

Only the assembly is here; whether to run the calls is the engine's decision.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from ..events import ToolCallDelta, ToolCallKeys

__all__ = ["AssembledCall", "ToolCallAssembler", "join_surrogates"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def join_surrogates(text: str) -> str:
    """``text`` with UTF-16 surrogate pairs joined; a lone surrogate becomes U+FFFD."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


@dataclass(frozen=True)
class AssembledCall:
    """One complete tool call, as it goes back to the model in the assistant message."""

    id: str
    name: str
    arguments: str

    def to_message(self) -> dict[str, object]:
        """The ``tool_calls`` item (OAS ``ChatToolCall``)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class _Slot:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.arguments: list[str] = []


class ToolCallAssembler:
    """Collects :class:`ToolCallDelta` fragments into calls, in the order they began."""

    def __init__(self) -> None:
        self._keys = ToolCallKeys()
        self._slots: dict[object, _Slot] = {}
        self._calls: list[AssembledCall] | None = None

    def __bool__(self) -> bool:
        return bool(self._slots)

    def add(self, delta: ToolCallDelta) -> None:
        """Take one fragment."""
        self._calls = None
        key, _ = self._keys.add(delta)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        if delta.id:
            slot.id = delta.id  # assigned, never concatenated
        if delta.name and not slot.name:
            slot.name = delta.name
        if delta.arguments:
            slot.arguments.append(delta.arguments)

    def calls(self) -> list[AssembledCall]:
        """The calls, finished: ids unique and non-empty, arguments never empty.

        The same list comes back until another fragment arrives, so generated ids are
        stable.
        """
        if self._calls is None:
            seen: set[str] = set()
            calls = []
            for key in self._keys.order:
                slot = self._slots[key]
                call_id = slot.id if slot.id and slot.id not in seen else _new_id()
                seen.add(call_id)
                arguments = join_surrogates("".join(slot.arguments))
                arguments = arguments if arguments.strip() else "{}"
                calls.append(AssembledCall(call_id, join_surrogates(slot.name), arguments))
            self._calls = calls
        return list(self._calls)


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"
