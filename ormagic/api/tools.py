"""``ormagic.tool``: give the model a function of your own to call.

::

    import ormagic

    @ormagic.tool
    def monthly_total(month: str, region: str | None = None) -> float:
        '''Total sales of one month.

        Args:
            month: The month as YYYY-MM.
            region: Only this region (all regions when omitted).
        '''
        ...

The function's type hints and docstring become its JSON schema (see
:mod:`ormagic.engine.schema`); one that cannot be described is refused at once with one
line. Registering a name again replaces the tool, so re-running the cell is harmless.
The tools are the process's: every conversation of ``%%chat`` and ``ormagic.ask`` may
call them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from ..engine.tools import user_tools

__all__ = ["tool"]

F = TypeVar("F", bound=Callable[..., Any])


@overload
def tool(fn: F, *, name: str | None = None, description: str | None = None) -> F: ...


@overload
def tool(
    fn: None = None, *, name: str | None = None, description: str | None = None
) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None, *, name: str | None = None, description: str | None = None
) -> F | Callable[[F], F]:
    """Register ``fn`` as a tool the model may call; return it unchanged.

    Use it as ``@ormagic.tool``, ``@ormagic.tool(name=..., description=...)`` or
    ``ormagic.tool(fn, name=..., description=...)``. ``name`` defaults to the function's
    name, ``description`` to its docstring's summary. Raises
    :class:`~ormagic.errors.ConfigError` when a parameter's type cannot be written as
    JSON (supported: str, int, float, bool, list, dict, Literal, Optional and unions).
    A tool's exceptions go back to the model as an error line, never into the cell.
    """

    def register(function: F) -> F:
        user_tools().register(function, name=name, description=description)
        return function

    return register if fn is None else register(fn)
