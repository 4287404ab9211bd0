"""JSON schemas for Python functions, and the model's arguments checked against them.

A tool's ``parameters`` (docs/openrouter-tools.md §1.1, JSON Schema draft 7, which is what
OpenRouter validates with) come from the function's signature and docstring:

- type hints: ``str``, ``int``, ``float``, ``bool``, ``list``/``list[X]``,
  ``dict``/``dict[str, X]``, ``Literal[...]``, ``Optional[X]``/``X | None`` and unions;
- defaults make a parameter optional (and are shown to the model when JSON can hold them);
- the docstring's first part is the tool's description; per-argument descriptions come
  from a Google (``Args:``), NumPy (``Parameters`` + dashes) or Sphinx (``:param x:``)
  section.

A function the schema cannot describe (a parameter without a hint, ``*args``, a tuple, a
class of its own) is refused with one line saying which parameter and why.

:func:`check_arguments` checks what the model sent against such a schema before the
function runs, so that a missing or wrong argument comes back to the model as one line.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["ArgumentError", "FunctionSchema", "check_arguments", "function_schema"]

_SUPPORTED = "str, int, float, bool, list, dict, Literal[...], Optional[...]"
_JSON_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}
_GOOGLE_HEADERS = re.compile(r"^(args|arguments|parameters|params|keyword args)\s*:\s*$", re.I)
_OTHER_HEADERS = re.compile(
    r"^(returns?|yields?|raises?|examples?|notes?|see also|attributes|warnings?|references)"
    r"\s*:?\s*$",
    re.I,
)
_GOOGLE_ITEM = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^(\w+)\s*(?::.*)?$")


class ArgumentError(Exception):
    """The model's arguments do not fit the schema; the message says what is wrong."""


class _Refused(Exception):
    """A type hint JSON Schema cannot express."""


@dataclass(frozen=True)
class FunctionSchema:
    """A function's tool description: its name, description and ``parameters`` schema."""

    name: str
    description: str
    parameters: dict[str, Any]


# -- type hints -> JSON Schema -----------------------------------------------------------


def _json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _literal_schema(values: tuple[Any, ...]) -> dict[str, Any]:
    if not values or not all(_json_scalar(v) for v in values):
        raise _Refused("Literal values must be strings, numbers, booleans or None")
    kinds = {type(v) for v in values}
    schema: dict[str, Any] = {"enum": list(values)}
    if kinds == {str}:
        schema = {"type": "string", **schema}
    elif kinds == {int}:
        schema = {"type": "integer", **schema}
    elif kinds == {bool}:
        schema = {"type": "boolean", **schema}
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None], **_null_type(schema)}
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _null_type(schema: Mapping[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    return {"type": [kind, "null"]} if isinstance(kind, str) else {}


def _union_schema(args: tuple[Any, ...], inner: bool) -> dict[str, Any]:
    members = [a for a in args if a is not type(None)]
    if len(members) == 1:
        schema = _type_schema(members[0], inner)
    else:
        schema = {"anyOf": [_type_schema(a, inner) for a in members]}
    return _nullable(schema) if len(members) < len(args) else schema


def _type_schema(hint: Any, inner: bool = False) -> dict[str, Any]:
    """The schema of one type hint; ``inner`` allows ``Any`` (inside a list or dict)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if hint in simple:
        return {"type": simple[hint]}
    if hint is Any:
        if inner:
            return {}
        raise _Refused("Any says nothing to the model; give a JSON type")
    if hint is list or origin is list:
        return {"type": "array", **({"items": _type_schema(args[0], True)} if args else {})}
    if hint is dict or origin is dict:
        if args and args[0] is not str:
            raise _Refused("dict keys must be str (JSON object keys are strings)")
        values = _type_schema(args[1], True) if args else {}
        return {"type": "object", **({"additionalProperties": values} if values else {})}
    if origin is typing.Literal:
        return _literal_schema(args)
    if origin is typing.Union or isinstance(hint, types.UnionType):
        return _union_schema(args, inner)
    if hint is type(None):
        return {"type": "null"}
    shown = getattr(hint, "__name__", None) or str(hint)
    raise _Refused(f"{shown} cannot be written in JSON")


# -- docstrings --------------------------------------------------------------------------


def _squash(text: str) -> str:
    """Paragraphs of ``text`` each on one line, separated by a blank line."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _is_numpy_header(lines: list[str], i: int) -> bool:
    return i + 1 < len(lines) and bool(re.fullmatch(r"\s*-{3,}\s*", lines[i + 1]))


def _section_start(lines: list[str], i: int) -> bool:
    line = lines[i].strip()
    return bool(
        _GOOGLE_HEADERS.match(line)
        or _OTHER_HEADERS.match(line)
        or line.startswith(":")
        or (line and _is_numpy_header(lines, i))
    )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _parse_items(lines: list[str], item: re.Pattern[str], numpy: bool) -> dict[str, str]:
    """``name -> description`` from an indented list of parameters."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    base = min((_indent(line) for line in lines if line.strip()), default=0)
    for line in lines:
        if not line.strip():
            continue
        match = item.match(line.strip()) if _indent(line) == base else None
        if match:
            current = match.group(1).lstrip("*")
            found[current] = [] if numpy else [match.group(2)]
        elif current is not None:
            found[current].append(line.strip())
    return {name: " ".join(" ".join(parts).split()) for name, parts in found.items()}


def _section_lines(lines: list[str], start: int) -> tuple[list[str], int]:
    end = start
    while end < len(lines) and not (lines[end].strip() and _section_start(lines, end)):
        end += 1
    return lines[start:end], end


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The summary (everything before the first section) and per-argument descriptions."""
    lines = inspect.cleandoc(doc or "").splitlines()
    first = next((i for i in range(len(lines)) if _section_start(lines, i)), len(lines))
    summary = _squash("\n".join(lines[:first]))
    params: dict[str, str] = {}
    i = first
    while i < len(lines):
        line = lines[i].strip()
        if _GOOGLE_HEADERS.match(line) and not _is_numpy_header(lines, i):
            body, i = _section_lines(lines, i + 1)
            params.update(_parse_items(body, _GOOGLE_ITEM, numpy=False))
        elif _is_numpy_header(lines, i) and line.lower() in ("parameters", "other parameters"):
            body, i = _section_lines(lines, i + 2)
            params.update(_parse_items(body, _NUMPY_ITEM, numpy=True))
        elif (match := _SPHINX_PARAM.match(line)) is not None:
            body, end = _section_lines(lines, i + 1)
            params[match.group(1)] = " ".join([match.group(2), *(b.strip() for b in body)]).strip()
            i = end
        else:
            i += 2 if _is_numpy_header(lines, i) else 1
    return summary, params


# -- functions -> schema -----------------------------------------------------------------


def _refuse(name: str, why: str) -> ConfigError:
    return ConfigError(f"Cannot make {name}() a tool: {why}.")


def _hints(fn: Callable[..., Any], name: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception as error:  # a hint naming something undefined, or a bad annotation
        raise _refuse(name, f"its type hints cannot be read ({error})") from None


def _parameter_schema(
    parameter: inspect.Parameter, hint: Any, name: str, description: str | None
) -> dict[str, Any]:
    if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
        raise _refuse(name, f"*{parameter.name} cannot be described; name every parameter")
    if parameter.kind is parameter.POSITIONAL_ONLY:
        raise _refuse(name, f"{parameter.name} is positional-only; the model passes names")
    if hint is None:
        raise _refuse(name, f"parameter {parameter.name!r} has no type hint (use {_SUPPORTED})")
    has_default = parameter.default is not parameter.empty
    try:
        schema = _type_schema(hint)
        if has_default and parameter.default is None and not _accepts_null(schema):
            schema = _nullable(schema)  # `x: str = None` means Optional
    except _Refused as refused:
        raise _refuse(name, f"parameter {parameter.name!r}: {refused} (use {_SUPPORTED})") from None
    if description:
        schema = {**schema, "description": description}
    if has_default and _json_value(parameter.default):
        schema = {**schema, "default": parameter.default}
    return schema


def _accepts_null(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    return (
        kind == "null"
        or (isinstance(kind, list) and "null" in kind)
        or any(_accepts_null(s) for s in schema.get("anyOf", ()))
        or None in schema.get("enum", ())
    )


def _json_value(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def function_schema(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> FunctionSchema:
    """The tool description of ``fn``; a :class:`ConfigError` when it cannot be made."""
    if not callable(fn):
        raise ConfigError(f"ormagic.tool needs a function, not {type(fn).__name__}.")
    tool_name = str(name or getattr(fn, "__name__", ""))
    if not _NAME.fullmatch(tool_name):
        raise ConfigError(
            f"Cannot make {tool_name or 'this function'} a tool: a tool name is 1 to 64 "
            "letters, digits, _ or - (pass name=...)."
        )
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise _refuse(tool_name, "it is async; tools are called synchronously, in the kernel")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        raise _refuse(tool_name, "its signature cannot be read") from None
    hints = _hints(fn, tool_name)
    summary, docs = parse_docstring(inspect.getdoc(fn))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in signature.parameters.values():
        properties[parameter.name] = _parameter_schema(
            parameter, hints.get(parameter.name), tool_name, docs.get(parameter.name)
        )
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    parameters["additionalProperties"] = False
    described = description if description is not None else summary
    return FunctionSchema(tool_name, described, parameters)


# -- checking the model's arguments ------------------------------------------------------


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fits_type(value: Any, kind: str) -> tuple[bool, Any]:
    actual = _kind_of(value)
    if actual == kind:
        return True, value
    if kind == "number" and actual == "integer":
        return True, value
    if kind == "integer" and actual == "number" and float(value).is_integer():
        return True, int(value)  # 10.0 from a model that writes every number as a float
    return False, value


def _check(value: Any, schema: Mapping[str, Any], where: str) -> Any:
    """``value`` (ints made of whole floats) if it fits ``schema``; else ArgumentError."""
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            try:
                return _check(value, option, where)
            except ArgumentError:
                continue
        raise ArgumentError(f"{where} has the wrong type ({_JSON_NAMES[_kind_of(value)]})")
    kinds = schema.get("type")
    if kinds is not None:
        options = [kinds] if isinstance(kinds, str) else list(kinds)
        for kind in options:
            fits, converted = _fits_type(value, kind)
            if fits:
                value = converted
                break
        else:
            wanted = " or ".join(_JSON_NAMES.get(k, k) for k in options)
            raise ArgumentError(f"{where} must be {wanted}, not {_JSON_NAMES[_kind_of(value)]}")
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        raise ArgumentError(f"{where} must be one of {allowed}, not {json.dumps(value)}")
    if isinstance(value, list) and "items" in schema:
        return [_check(v, schema["items"], f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        item = schema["additionalProperties"]
        return {k: _check(v, item, f"{where}[{k!r}]") for k, v in value.items()}
    return value


def check_arguments(parameters: Mapping[str, Any], arguments: Any) -> dict[str, Any]:
    """The arguments to call with, checked against a tool's ``parameters`` schema.

    Raises :class:`ArgumentError` with one line: a missing or unexpected argument, or a
    value of the wrong type.
    """
    if not isinstance(arguments, dict):
        kind = _JSON_NAMES[_kind_of(arguments)]
        raise ArgumentError(f"the arguments must be a JSON object, not {kind}")
    properties: Mapping[str, Any] = parameters.get("properties") or {}
    for key in arguments:
        if key not in properties and parameters.get("additionalProperties") is False:
            known = ", ".join(properties) or "none"
            raise ArgumentError(f"unexpected argument {key!r} (the parameters are: {known})")
    for key in parameters.get("required") or ():
        if key not in arguments:
            raise ArgumentError(f"missing required argument {key!r}")
    return {
        key: _check(value, properties[key], f"argument {key!r}") if key in properties else value
        for key, value in arguments.items()
    }
