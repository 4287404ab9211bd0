"""Structured output for a batch: the schema sent, and each answer parsed and validated.

A schema is given as a JSON Schema dict (an object with ``properties``), a mapping of field
to Python type (``{"sentiment": str, "score": float}``), or a pydantic model class. It is
sent as ``response_format: {"type": "json_schema", "json_schema": {name, strict, schema}}``
with ``provider: {"require_parameters": true}``, so that only providers that honour it
answer (docs/openrouter-tools.md §2). Strict modes differ between providers, so every
answer is validated here too: with jsonschema (Draft 7, as OpenRouter's own validator) or
with the pydantic model.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, Union, get_args, get_origin

from ..errors import ConfigError

__all__ = ["Schema", "SchemaMismatch", "make_schema"]

_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*\n(.*?)\n\s*```\s*$", re.S)
_SIMPLE_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_DTYPES = {"string": "object", "number": "float64", "integer": "Int64", "boolean": "boolean"}


class SchemaMismatch(Exception):
    """An answer that is not JSON, or JSON that does not match the schema."""


@dataclass(frozen=True)
class Schema:
    """A normalised schema: the JSON Schema sent, its name and fields, the pydantic model."""

    json_schema: Mapping[str, Any]
    name: str = "row"
    model: Any = field(default=None, compare=False)  # a pydantic model class, when given

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.json_schema.get("properties", {}))

    def response_format(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "strict": True, "schema": dict(self.json_schema)},
        }

    def dtypes(self) -> dict[str, str]:
        """Each field's pandas dtype: nullable, so that a failed row is a missing value."""
        properties = self.json_schema.get("properties", {})
        return {name: _dtype(properties[name]) for name in self.fields}

    def parse(self, text: str) -> dict[str, Any]:
        """The answer as a dict; raises :class:`SchemaMismatch` saying what is wrong."""
        fenced = _FENCE.match(text)
        try:
            value = json.loads(fenced.group(1) if fenced else text)
        except ValueError as error:
            raise SchemaMismatch(f"the answer is not JSON ({error})") from None
        if self.model is not None:
            return _validate_pydantic(self.model, value)
        message = _validation_error(_canonical(self.json_schema), value)
        if message is not None:
            raise SchemaMismatch(message)
        if not isinstance(value, dict):
            raise SchemaMismatch("the answer is not a JSON object")
        return value


def make_schema(spec: Any) -> Schema:
    """A :class:`Schema` from a JSON Schema dict, a mapping of field to type, or a pydantic
    model class; anything else is a :class:`ConfigError`."""
    if isinstance(spec, type) and hasattr(spec, "model_json_schema"):
        return _from_pydantic(spec)
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(
            "The schema must be a JSON Schema dict, a mapping of field to type "
            "({'sentiment': str, 'score': float}) or a pydantic model class."
        )
    if "properties" in spec or spec.get("type") == "object":
        return _from_json_schema(spec)
    return Schema(_object_schema(spec))


def _from_json_schema(spec: Mapping[str, Any]) -> Schema:
    properties = spec.get("properties")
    if spec.get("type") != "object" or not isinstance(properties, Mapping) or not properties:
        raise ConfigError(
            "The JSON Schema must describe an object (type: object, with properties): its "
            "fields become the result's columns."
        )
    _check_json_schema(spec)
    title = spec.get("title")
    return Schema(dict(spec), name=_name(title) if isinstance(title, str) else "row")


def _from_pydantic(model: Any) -> Schema:
    schema = dict(model.model_json_schema())
    schema.setdefault("additionalProperties", False)  # strict structured outputs ask for it
    return Schema(schema, name=_name(model.__name__), model=model)


def _name(text: str) -> str:
    """A ``json_schema.name``: at most 64 of ``[A-Za-z0-9_-]`` (docs/openrouter-tools.md §2)."""
    return _NAME.sub("_", text).strip("_")[:64] or "row"


def _object_schema(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Every field required and nothing else allowed, as strict mode wants."""
    properties = {str(name): _type_schema(name, tp) for name, tp in fields.items()}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _type_schema(name: Any, tp: Any) -> dict[str, Any]:
    """The JSON Schema of a Python type: str, int, float, bool, list[X], Literal, X | None,
    or a nested mapping of field to type."""
    if isinstance(tp, Mapping):
        return _object_schema(tp)
    if isinstance(tp, type) and tp in _SIMPLE_TYPES:
        return {"type": _SIMPLE_TYPES[tp]}
    origin, args = get_origin(tp), get_args(tp)
    if origin is list or tp is list:
        return {"type": "array", "items": _type_schema(name, args[0]) if args else {}}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is Union or origin is types.UnionType:
        options = [arg for arg in args if arg is not type(None)]
        inner = [_type_schema(name, arg) for arg in options]
        if len(options) < len(args):
            inner.append({"type": "null"})
        return inner[0] if len(inner) == 1 else {"anyOf": inner}
    raise ConfigError(
        f"The schema's field {name!r} has type {tp!r}, which has no JSON Schema here: use str, "
        "int, float, bool, list[...], Literal[...], X | None, or a nested mapping."
    )


def _dtype(schema: Any) -> str:
    if not isinstance(schema, Mapping):
        return "object"
    kind = schema.get("type")
    if isinstance(kind, list):  # ["integer", "null"]
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    options = schema.get("anyOf")
    if kind is None and isinstance(options, list):
        real = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
        return _dtype(real[0]) if len(real) == 1 else "object"
    return _DTYPES.get(kind, "object") if isinstance(kind, str) else "object"


def _canonical(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, default=str)


@lru_cache(maxsize=32)
def _validator(canonical: str) -> Any:
    from jsonschema import Draft7Validator

    return Draft7Validator(json.loads(canonical))


def _check_json_schema(spec: Mapping[str, Any]) -> None:
    from jsonschema import Draft7Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft7Validator.check_schema(spec)
    except SchemaError as error:
        raise ConfigError(f"The JSON Schema is not valid: {error.message}.") from None


def _validation_error(canonical: str, value: Any) -> str | None:
    """The most relevant validation error, with where it is (``score: 'x' is not ...``)."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(canonical).iter_errors(value))
    if error is None:
        return None
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def _validate_pydantic(model: Any, value: Any) -> dict[str, Any]:
    from pydantic import ValidationError

    try:
        # by_alias: the JSON Schema the model was given names the fields by their aliases
        return dict(model.model_validate(value).model_dump(mode="json", by_alias=True))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise SchemaMismatch(
            f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
        ) from None
