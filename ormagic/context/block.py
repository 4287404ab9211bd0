"""The notebook context block: what the model sees of the notebook ahead of a question.

Pure: it turns a :class:`~ormagic._snapshot.NotebookSnapshot` (plain data) and the prompt
into a bounded Markdown block. Nothing here touches the shell.

What goes in, by priority when the token budget is tight:

1. the last error, when the prompt is about an error (or ``include_error`` says so);
2. summaries of the variables the prompt names (``{df}``, ``{df.shape}``, or bare ``df``);
3. the cells, newest first, until the budget is spent; a cell too large for what is left
   is cut in its middle (``… [12,345 characters left out] …``), older cells are dropped
   and the block says how many (``[7 earlier cells left out]``).

The block is laid out oldest to newest: header, cells, ``Variables:``, ``Last error:``.
Everything gathered is passed through :func:`ormagic._redact.redact` before it is cut.
"""

from __future__ import annotations

import builtins
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from ..formatting import counted
from .redact import redact
from .snapshot import CellRecord, NotebookSnapshot
from .summaries import cut_middle, summarise

__all__ = [
    "ContextBlock",
    "ContextMode",
    "build_context",
    "estimate_tokens",
    "mentions_error",
    "referenced_names",
]

CHARS_PER_TOKEN = 4
SUMMARY_CHARS = 2000
MAX_VARIABLES = 12
# A part cut smaller than this says too little to be worth its fences: it is dropped.
_MIN_BODY_CHARS = 200
_NOTE_RESERVE = len("[999,999 earlier cells left out]") + 2

_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
_MISSING = object()
_BRACED_NAME_RE = re.compile(r"\{\s*([^\W\d]\w*)")
# An identifier not preceded by "." (``df.shape`` names ``df``, not ``shape``).
_BARE_NAME_RE = re.compile(r"(?<![\w.])([^\W\d]\w*)")
_ERROR_WORDS_RE = re.compile(
    r"\b(?:errors?|exceptions?|tracebacks?|fail(?:s|ed|ing|ure)?|broken|crash(?:es|ed|ing)?"
    r"|bugs?|buggy|fix(?:es|ing)?|what went wrong)\b"
    r"|\bwhy\b[^.?!\n]{0,80}(?:\bnot|n['\u2019]t)\b[^.?!\n]{0,80}\bwork"
    r"|\b(?:not|n['\u2019]t)\s+work(?:s|ing)?\b",
    re.IGNORECASE,
)
_EXCEPTION_NAME_RE = re.compile(r"\b[A-Z]\w*(?:Error|Exception|Interrupt|Exit)\b")


@dataclass(frozen=True)
class ContextMode:
    """Which cells go into the context: ``auto``, ``none``, ``all`` or the ``last`` n."""

    kind: Literal["auto", "none", "all", "last"]
    n: int = 0

    @classmethod
    def parse(cls, value: str) -> ContextMode:
        """``"auto"``, ``"none"``, ``"all"`` or a positive number of cells (``"5"``)."""
        text = value.strip().lower()
        if text in ("auto", "none", "all"):
            return cls(text)  # type: ignore[arg-type]
        if text.isdecimal() and int(text) > 0:
            return cls("last", int(text))
        raise ValueError(
            f"Context must be auto, none, all or a positive number of cells, not {value!r}."
        )


@dataclass(frozen=True)
class ContextBlock:
    """The context text to put before the prompt, and what it holds."""

    text: str
    tokens: int
    cells: list[int] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    elided_chars: int = 0
    included_error: bool = False


def estimate_tokens(text: str) -> int:
    """About one token per 4 characters, rounded up; 0 for ``""``.

    Fast and offline: no tokenizer to download, and every model counts differently anyway.
    Roughly right for English prose and code; it undercounts CJK text and dense symbols.
    """
    return -(-len(text) // CHARS_PER_TOKEN)


def mentions_error(prompt: str) -> bool:
    """True when the prompt is about an error: "why does this fail", "fix", "KeyError"..."""
    return bool(_ERROR_WORDS_RE.search(prompt) or _EXCEPTION_NAME_RE.search(prompt))


def _refers_to(name: str, value: Any, braced: bool) -> bool:
    if name.startswith("_") or name in _IPYTHON_NAMES or isinstance(value, ModuleType):
        return False
    builtin = getattr(builtins, name, _MISSING)
    if value is builtin:
        return False
    # A bare "list" or "id" in prose is a word, even when the user shadowed the builtin;
    # braces make it a reference.
    return braced or builtin is _MISSING


def referenced_names(prompt: str, namespace: Mapping[str, Any]) -> list[str]:
    """Namespace names the prompt refers to, in order of first mention (at most 12).

    ``{name}``, ``{name[...]}``, ``{name.attr}`` or ``name`` as a word; names starting
    with ``_``, modules, IPython's ``In``/``Out``/``get_ipython``/``exit``/``quit`` and
    builtins are left out.
    """
    braced = set(_BRACED_NAME_RE.findall(prompt))
    names: list[str] = []
    for name in _BARE_NAME_RE.findall(prompt):
        if name in names or name not in namespace:
            continue
        if _refers_to(name, namespace[name], name in braced):
            names.append(name)
            if len(names) == MAX_VARIABLES:
                break
    return names


@dataclass(frozen=True)
class _Section:
    """A label and a fenced body: ``In [3]:`` then the code."""

    label: str
    body: str
    info: str = ""
    inline_ok: bool = False

    @functools.cached_property
    def fence(self) -> str:
        # CommonMark: a fence closes only on a run at least as long as the opening one,
        # so a fence longer than any backtick run in the body cannot be closed early.
        runs = re.findall(r"`+", self.body) if "`" in self.body else []
        return "`" * max(3, max(map(len, runs), default=0) + 1)

    @property
    def inline(self) -> bool:
        return self.inline_ok and "\n" not in self.body and "`" not in self.body

    def render(self) -> str:
        if self.inline:
            return f"{self.label} {self.body}"
        fence = self.fence
        return f"{self.label}\n{fence}{self.info}\n{self.body}\n{fence}"

    def max_overhead(self) -> int:
        """Characters around the body when fenced (the most a cut can need)."""
        return len(self.label) + 2 * len(self.fence) + len(self.info) + 3


def _water_fill(sizes: Sequence[int], capacity: int) -> list[int]:
    """Share ``capacity`` out: small parts whole, large parts cut to equal shares."""
    allotted = [0] * len(sizes)
    left, count = capacity, len(sizes)
    for i in sorted(range(len(sizes)), key=sizes.__getitem__):
        allotted[i] = max(min(sizes[i], left // count), 0)
        left -= allotted[i]
        count -= 1
    return allotted


def _fit(sections: Sequence[_Section], room: int) -> tuple[list[_Section], int] | None:
    """The sections cut to fit ``room`` characters joined by newlines, and what was cut.

    None when a cut part would be shorter than is useful.
    """
    joins = len(sections) - 1
    if sum(len(s.render()) for s in sections) + joins <= room:
        return list(sections), 0
    capacity = room - joins - sum(s.max_overhead() for s in sections)
    allotted = _water_fill([len(s.body) for s in sections], capacity)
    fitted, elided = [], 0
    for section, size in zip(sections, allotted, strict=True):
        if size < len(section.body):
            if size < _MIN_BODY_CHARS:
                return None
            body, left_out = cut_middle(section.body, size)
            elided += left_out
            section = _Section(section.label, body, section.info)
        fitted.append(section)
    return fitted, elided


def _join(sections: Sequence[_Section]) -> str:
    return "\n".join(s.render() for s in sections)


def _size(sections: Sequence[_Section]) -> int:
    return sum(len(s.body) for s in sections)


@dataclass
class _Builder:
    """The block under construction: the room left and what has been left out."""

    room: int
    secrets: Sequence[str]
    elided: int = 0

    def clean(self, text: str) -> str:
        return redact(text, self.secrets)

    def place(self, sections: Sequence[_Section], prefix: str = "") -> tuple[str, bool] | None:
        """The sections rendered after ``prefix``, and whether they were cut; None if no fit."""
        # Each part is joined to the block by a blank line: two more characters.
        fitted = _fit(sections, self.room - 2 - len(prefix))
        if fitted is None:
            self.elided += _size(sections)
            return None
        parts, elided = fitted
        text = prefix + _join(parts)
        self.room -= len(text) + 2
        self.elided += elided
        return text, elided > 0


def _wants_error(
    snapshot: NotebookSnapshot, mode: ContextMode, prompt: str, include_error: bool | None
) -> bool:
    if snapshot.last_error is None or include_error is False:
        return False
    if include_error is None:
        return mode.kind != "none" and mentions_error(prompt)
    return True


def _select_cells(
    snapshot: NotebookSnapshot, mode: ContextMode, first_turn_cells: int | None
) -> list[CellRecord]:
    """The cells ``mode`` asks for; ``first_turn_cells`` bounds ``auto`` on a first turn."""
    # %%chat cells are left out: the conversation already holds them as turns.
    cells = [
        c for c in snapshot.cells if not c.is_chat and (c.source.strip() or c.outputs or c.error)
    ]
    if mode.kind == "none":
        return []
    if mode.kind == "last":
        return cells[-mode.n :]
    if mode.kind == "auto" and first_turn_cells is not None:
        return cells[-first_turn_cells:] if first_turn_cells > 0 else []
    return cells


def _header(mode: ContextMode, first_turn: bool) -> str:
    if mode.kind == "none":
        what = ""
    elif mode.kind == "all":
        what = "cells executed in this session; "
    elif mode.kind == "auto" and not first_turn:
        what = "cells executed since the last question; "
    else:
        what = "the most recently executed cells; "
    return f"Notebook context ({what}the user cannot see this block):"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1] if text.strip() else ""


def _error_cell(cells: Sequence[CellRecord], last_error: str) -> int | None:
    """The newest cell with an error, if that error is the last error."""
    for cell in reversed(cells):
        if cell.error is not None:
            # Python 3.12+ (and 3.10 with the exceptiongroup backport) end a formatted
            # traceback with a hint (". Did you mean: 'sort'?") that IPython's lacks.
            first, last = _first_line(cell.error), _last_line(last_error)
            same = last == first or last.startswith(f"{first}. Did you ")
            return cell.execution_count if same else None
    return None


def _cell_sections(
    cell: CellRecord, markdown: Sequence[str], builder: _Builder, error_below: bool
) -> list[_Section]:
    n = cell.execution_count
    sections = []
    if markdown:
        sections.append(_Section("Markdown:", builder.clean("\n\n".join(markdown)), "markdown"))
    sections.append(_Section(f"In [{n}]:", builder.clean(cell.source.strip("\n")), "python"))
    if cell.outputs:
        text = "\n".join(output.rstrip("\n") for output in cell.outputs)
        sections.append(_Section(f"Out [{n}]:", builder.clean(text)))
    if error_below:
        # The same traceback twice would cost tokens for nothing.
        sections.append(_Section(f"Error in [{n}]:", "shown under Last error below", "", True))
    elif cell.error:
        sections.append(_Section(f"Error in [{n}]:", builder.clean(cell.error.rstrip("\n"))))
    return sections


def _raw_size(cell: CellRecord) -> int:
    return len(cell.source) + sum(map(len, cell.outputs)) + len(cell.error or "")


def _place_cells(
    cells: Sequence[CellRecord],
    markdown_cells: Sequence[tuple[int, str]],
    builder: _Builder,
    error_cell: int | None,
) -> tuple[list[str], list[int], int]:
    """Rendered cells (oldest first), their execution counts, and how many were dropped.

    Filled from the newest cell back; the first cell that has to be cut (or cannot be
    placed at all) is the last one tried, so the block shows one unbroken stretch of the
    notebook that ends at its newest cell.
    """
    markdown: dict[int, list[str]] = {}
    for count, text in markdown_cells:
        markdown.setdefault(count, []).append(text)
    builder.room -= _NOTE_RESERVE
    texts: list[str] = []
    counts: list[int] = []
    dropped = 0
    for index in range(len(cells) - 1, -1, -1):
        cell = cells[index]
        error_below = cell.execution_count == error_cell
        sections = _cell_sections(
            cell, markdown.get(cell.execution_count, []), builder, error_below
        )
        placed = builder.place(sections)
        if placed is not None:
            texts.append(placed[0])
            counts.append(cell.execution_count)
        if placed is None or placed[1]:
            dropped = index + (placed is None)
            builder.elided += sum(map(_raw_size, cells[:index]))
            break
    builder.room += _NOTE_RESERVE
    return texts[::-1], counts[::-1], dropped


def _place_variables(
    names: Sequence[str], namespace: Mapping[str, Any], builder: _Builder
) -> tuple[str | None, list[str]]:
    """The ``Variables:`` part and the names in it; the last-named are dropped first."""
    sections = [
        _Section(f"- {name}:", builder.clean(summarise(namespace[name], SUMMARY_CHARS)), "", True)
        for name in names
    ]
    while sections:
        fitted = _fit(sections, builder.room - 2 - len("Variables:\n"))
        if fitted is not None:
            placed = builder.place(sections, "Variables:\n")
            return (placed[0] if placed else None), list(names[: len(sections)])
        builder.elided += len(sections[-1].body)
        sections.pop()
    return None, []


def _note(dropped: int) -> str:
    return f"[{counted(dropped, 'earlier cell')} left out]"


def build_context(
    snapshot: NotebookSnapshot,
    *,
    prompt: str,
    mode: ContextMode,
    budget_tokens: int,
    include_error: bool | None = None,
    secrets: Sequence[str] = (),
    first_turn_cells: int = 10,
    first_turn: bool | None = None,
) -> ContextBlock:
    """The context block for ``prompt``, at most ``budget_tokens`` (by :func:`estimate_tokens`).

    ``auto`` takes the snapshot's cells (all since the previous question; the last
    ``first_turn_cells`` on the first turn: ``first_turn``, or when it is None, when the
    snapshot was taken without ``since``); ``all`` every cell of the
    snapshot; ``last`` the last ``mode.n``; ``none`` no cells and no variables, and the
    error only when ``include_error`` is True. ``include_error=None`` includes the last
    error when the prompt is about an error. ``secrets`` (and key-shaped strings) are
    redacted everywhere. Returns an empty block (``text == ""``) when there is nothing.
    """
    if first_turn is None:
        first_turn = snapshot.since is None
    cells = _select_cells(snapshot, mode, first_turn_cells if first_turn else None)
    names = [] if mode.kind == "none" else referenced_names(prompt, snapshot.namespace)
    want_error = _wants_error(snapshot, mode, prompt, include_error)
    header = _header(mode, first_turn)
    capacity = max(budget_tokens, 0) * CHARS_PER_TOKEN
    if not (cells or names or want_error) or len(header) > capacity:
        return ContextBlock("", 0)
    builder = _Builder(room=capacity - len(header), secrets=secrets)

    error_text = None
    if want_error and snapshot.last_error is not None:
        section = _Section("Last error:", builder.clean(snapshot.last_error.rstrip("\n")))
        placed = builder.place([section])
        error_text = placed[0] if placed else None
    error_cell = _error_cell(cells, snapshot.last_error or "") if error_text else None
    variables_text, variables = _place_variables(names, snapshot.namespace, builder)
    cell_texts, counts, dropped = _place_cells(cells, snapshot.markdown_cells, builder, error_cell)

    parts = [header, *([_note(dropped)] if dropped else []), *cell_texts]
    parts += [text for text in (variables_text, error_text) if text]
    text = "\n\n".join(parts) if len(parts) > 1 else ""
    return ContextBlock(
        text=text,
        tokens=estimate_tokens(text),
        cells=counts,
        variables=variables,
        elided_chars=builder.elided,
        included_error=error_text is not None,
    )
