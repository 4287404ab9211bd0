"""``%%chat -m A -m B``: the magic's side of asking several models at once.

The engine (``engine/compare.py``) asks and records; this module picks the view (columns
of widgets in a notebook, sections in a terminal), puts the answers where the flags ask,
says how the cell ended, and remembers where each side-by-side output was shown, so that
``%chat pick`` can move the "kept" mark there (and in the output's metadata, which is
what a saved notebook keeps).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError

from ..engine.compare import Comparison
from ..engine.conversation import Turn
from ..render.columns import ColumnsView
from ..render.compared import TerminalColumnsView
from ..view import SideBySideView
from .display import JupyterPublisher, in_kernel

__all__ = ["SideBySideDisplays", "present", "view_for"]

_REMEMBERED = 50  # side-by-side outputs whose "kept" mark %chat pick can still move


def view_for(shell: Any, *, show_reasoning: bool, plain: bool) -> SideBySideView:
    """Columns of widgets in a kernel, text sections in terminal IPython."""
    if not in_kernel(shell):
        return TerminalColumnsView(show_reasoning=show_reasoning)
    return ColumnsView(JupyterPublisher(), show_reasoning=show_reasoning, plain=plain)


class SideBySideDisplays:
    """The latest side-by-side outputs, by turn, so that a pick can repaint its output."""

    def __init__(self) -> None:
        self._shown: OrderedDict[int, tuple[Turn, ColumnsView, Comparison]] = OrderedDict()

    def remember(self, result: Comparison, view: SideBySideView) -> None:
        if result.turn is None or not isinstance(view, ColumnsView):
            return
        self._shown[id(result.turn)] = (result.turn, view, result.without_requests())
        while len(self._shown) > _REMEMBERED:
            self._shown.popitem(last=False)

    def repaint(self, turn: Turn) -> bool:
        """Mark ``turn``'s kept answer in its output; False when it is not on show."""
        entry = self._shown.get(id(turn))
        if entry is None or entry[0] is not turn:
            return False
        _, view, result = entry
        if view.final_display_id is None:
            return False
        JupyterPublisher().update(
            view.final_bundle(turn.chosen),
            display_id=view.final_display_id,
            metadata=result.metadata(),
        )
        return True


def present(
    result: Comparison,
    args: Any,
    user_ns: dict[str, Any],
    set_next_input: Callable[[str], None],
) -> None:
    """Put the answers where the flags ask, then report how the cell ended.

    ``-o NAME`` stores the list of answer texts, in the order of ``-m``; ``-f code`` and
    ``--fix`` put the code of the kept answer into a new cell. An interrupt, or no model
    answering at all, ends the cell with one line (so that "Run all" stops); a model that
    failed while others answered does not: its column says what happened.
    """
    if args.out:
        user_ns[args.out] = [outcome.text for outcome in result.outcomes]
    kept = result.turn.answer if result.turn is not None else ""
    if (args.format == "code" or args.fix) and kept:
        from ..render.markdown import code_of

        code = code_of(kept)
        if code:
            set_next_input(code)
        elif not result.interrupted:
            print("The kept answer has no code block, so no cell was added below.")
    if result.interrupted:
        kept_any = " (partial answers kept in the conversation)" if result.turn else ""
        raise UsageError(f"Interrupted{kept_any}.")
    if result.pricing_interrupted:
        raise UsageError(
            "Interrupted while looking up the prices; the answers are kept in the conversation."
        )
    if result.turn is None:
        raise UsageError("None of the models answered; each column says why.")
