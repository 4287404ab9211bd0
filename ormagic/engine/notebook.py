"""The notebook as the engine sees it: a :class:`Notebook` to read, prompts filled from it.

The Jupyter skin implements :class:`Notebook` on IPython's shell; a plain script has no
notebook, and then questions go without context and ``{name}`` stays as written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..context.block import ContextBlock, ContextMode, build_context
from ..context.interpolate import interpolate
from ..context.redact import redact
from ..context.snapshot import CellRecord, NotebookSnapshot
from ..context.summaries import OUTPUT_HEAD_CHARS, OUTPUT_TAIL_CHARS, shorten
from ..errors import ConfigError

__all__ = ["FIX_PROMPT", "Notebook", "fill_prompt", "gather_context"]

FIX_PROMPT = (
    "The last cell failed. Explain the cause in one or two sentences, then give the "
    "corrected cell as a single fenced code block."
)
# An interpolated value is bounded like one output in the context: its head and tail.
_VALUE_CHARS = OUTPUT_HEAD_CHARS + OUTPUT_TAIL_CHARS


class Notebook(Protocol):
    """What the engine reads of a notebook: its variables and a snapshot of its cells."""

    @property
    def namespace(self) -> Mapping[str, Any]:
        """The user's variables."""

    @property
    def path(self) -> str | None:
        """The notebook file, when the kernel knows it (JupyterLab, Notebook 7, VS Code)."""

    def snapshot(self, since: int | None) -> NotebookSnapshot:
        """The cells executed after cell ``since`` (all recent ones when None)."""

    def running_cell(self) -> int:
        """The number of the cell that is running now."""

    def cell(self, number: int) -> CellRecord | None:
        """Cell ``In[number]`` (code, outputs, error), or None when it has not run."""


def _value_text(name: str, value: Any, secrets: Sequence[str]) -> str:
    try:
        text = str(value)
    # str() runs the user's __str__; whatever it raises becomes one line, not a traceback
    except Exception as error:
        raise ConfigError(
            f"Cannot put {{{name}}} into the prompt: str() raised {type(error).__name__}: {error}"
        ) from None
    return redact(shorten(text, _VALUE_CHARS), secrets)


def fill_prompt(
    text: str, namespace: Mapping[str, Any] | None, *, secrets: Sequence[str], fix: bool
) -> str:
    """The prompt as sent: ``{name}`` filled (bounded, redacted), the fix request first.

    Raises :class:`ConfigError` for an empty prompt or a value whose ``str()`` fails.
    """
    prompt = text.strip("\n")
    if namespace is not None:
        prompt = interpolate(
            prompt, namespace, lambda expr, value: _value_text(expr, value, secrets)
        )
    if fix:
        prompt = f"{FIX_PROMPT}\n\n{prompt}" if prompt.strip() else FIX_PROMPT
    if not prompt.strip():
        raise ConfigError("The cell is empty: write your question below the %%chat line.")
    return prompt


def gather_context(
    notebook: Notebook,
    *,
    prompt: str,
    mode: ContextMode,
    since: int | None,
    budget_tokens: int,
    fix: bool,
    secrets: Sequence[str],
) -> ContextBlock:
    """The context block for ``prompt``: ``auto`` reads the cells after ``since``."""
    snapshot = notebook.snapshot(since if mode.kind == "auto" else None)
    return build_context(
        snapshot,
        prompt=prompt,
        mode=mode,
        budget_tokens=budget_tokens,
        include_error=True if fix else None,
        secrets=secrets,
    )
