"""The prompt of a batch: a template with fields, filled once per row.

``{item}`` and ``{index}`` for an element of a list or Series, the column names (and
``{index}``) for a DataFrame row. Python's format syntax, so ``{item[0]}``,
``{score:.2f}`` and ``{{`` for a literal brace work; nothing is evaluated. Every field is
checked against the rows before anything is sent.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError

__all__ = ["check_fields", "fill", "template_fields"]

_FORMATTER = string.Formatter()
_NAME_END = re.compile(r"[.\[]")


def template_fields(template: str) -> list[str]:
    """The top-level names a template uses, in order, each once.

    Raises :class:`ConfigError` for an unmatched brace or a positional field (``{}``).
    """
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as error:
        raise ConfigError(
            f"The template has a stray brace ({error}); write {{{{ and }}}} for literal braces."
        ) from None
    names: list[str] = []
    for _literal, field_name, _spec, _conversion in parsed:
        if field_name is None:
            continue
        name = _NAME_END.split(field_name, maxsplit=1)[0]
        if not name or name.isdigit():
            raise ConfigError(
                "The template has a positional field {}: name it, e.g. {item} or a column name."
            )
        if name not in names:
            names.append(name)
    return names


def check_fields(template: str, available: Sequence[str]) -> None:
    """Raise :class:`ConfigError` naming the fields the rows do not have."""
    missing = [name for name in template_fields(template) if name not in available]
    if missing:
        wanted = ", ".join("{" + name + "}" for name in missing)
        have = ", ".join(available) or "nothing"
        raise ConfigError(
            f"The template uses {wanted}, which the rows do not have; they have: {have}."
        )


def fill(template: str, row: Mapping[str, Any], label: Any) -> str:
    """The prompt for one row; a field that cannot be read names the row."""
    try:
        return _FORMATTER.vformat(template, (), row)
    except (KeyError, AttributeError, IndexError, TypeError, ValueError) as error:
        raise ConfigError(
            f"Row {label!r}: cannot fill the template ({type(error).__name__}: {error})."
        ) from None
