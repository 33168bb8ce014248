"""Model-free validation with the contract's own rules, for hot paths that need the validated
values rather than model instances.

The schemas here are typed dicts built from the models' own core schemas (the same field rules,
the same error locations), so they accept a subset of what the models accept and yield the same
values. Whatever they refuse must take the model's path, which either accepts it (a case the
plain path does not mirror) or reports the errors. Building two models per event and
serialising the properties back out cost more than validating: about half of a decode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import CoreSchema, SchemaValidator, core_schema

from schemas.envelope import Event, Properties, no_nul

_NATIVE_LEAVES = frozenset({"str", "int", "float", "bool", "none"})


def properties_schema(model: type[Properties]) -> CoreSchema | None:
    """A typed dict of ``model``'s fields with no None in its output, or ``None``.

    Only for a plain model (no model validators, computed fields or custom serializers) whose
    fields hold JSON-native values (str, int, float, bool, literals of those, tuples and lists
    of those): then ``orjson.dumps`` of the dict gives the bytes the model's
    ``to_json(exclude_none=True)`` gives. Optional fields that default to None are left out
    when absent and refused when given as None (the model accepts that and leaves it out); a
    model with a field that could still be None gets ``None`` (the model's path).
    """
    inner = _model_fields(model)
    if inner is None:
        return None
    fields: dict[str, core_schema.TypedDictField] = {}
    for name, field in inner["fields"].items():
        if not _native(field) or field.get("validation_alias") or field.get("serialization_alias"):
            return None
        rule = field["schema"]
        if rule["type"] == "default" and rule.get("default", ...) is None:
            rule = rule["schema"]  # absent: left out, as exclude_none would leave it out
            if rule["type"] == "nullable":
                rule = rule["schema"]  # an explicit None: refused here
            fields[name] = core_schema.typed_dict_field(rule, required=False)
        else:
            fields[name] = core_schema.typed_dict_field(rule, required=rule["type"] != "default")
    if any(_may_be_none(f["schema"]) for f in fields.values()):
        return None
    return core_schema.typed_dict_schema(fields, extra_behavior="forbid", config=_config(model))


def properties_validator(model: type[Properties]) -> Callable[[Any], dict[str, Any]] | None:
    """``validate_python`` of :func:`properties_schema`, or ``None``."""
    schema = properties_schema(model)
    return None if schema is None else SchemaValidator(schema).validate_python


def event_schema(cls: type[Event]) -> CoreSchema | None:
    """A typed dict of an event class's envelope, with its properties as
    :func:`properties_schema`, or ``None`` when the class has rules it cannot mirror.

    Differences from the model, all on the side of refusing: ``event_id`` and ``occurred_at``
    are required (the model would make them up, which a consumer must not do silently), and
    ``occurred_at`` keeps the offset it was written with (the model converts it to UTC: the
    same instant).
    """
    inner = _model_fields(cls)
    if inner is None:
        return None
    fields: dict[str, core_schema.TypedDictField] = {}
    for name, field in inner["fields"].items():
        if field.get("validation_alias"):
            return None
        rule = field["schema"]
        if name == "properties":
            model = rule.get("cls") if rule["type"] == "model" else None
            props = properties_schema(model) if model is not None else None
            if props is None:
                return None
            fields[name] = core_schema.typed_dict_field(props)
            continue
        required = rule["type"] != "default"
        if rule["type"] == "default" and "default_factory" in rule:
            rule, required = rule["schema"], True
        if name == "occurred_at" and rule["type"] == "function-after":
            if getattr(rule["function"]["function"], "__func__", None) is not _TO_UTC:
                return None
            rule = rule["schema"]
        if _has_functions(rule):
            return None
        fields[name] = core_schema.typed_dict_field(rule, required=required)
    return core_schema.typed_dict_schema(fields, extra_behavior="forbid", config=_config(cls))


def union_validator(classes: Mapping[str, Mapping[int, type[Event]]]) -> SchemaValidator:
    """Validates JSON into the typed dict of the class its ``type`` and ``schema_version``
    name; a class without a plain schema, or a record without a version, is refused
    (``union_tag_invalid`` / ``union_tag_not_found``) and so takes the model's path."""
    choices: dict[Any, CoreSchema] = {}
    for name, versions in classes.items():
        inner: dict[Any, CoreSchema] = {}
        for version, cls in versions.items():
            schema = event_schema(cls)
            if schema is not None:
                inner[version] = schema
        if inner:
            choices[name] = core_schema.tagged_union_schema(inner, discriminator="schema_version")
    return SchemaValidator(core_schema.tagged_union_schema(choices, discriminator="type"))


_TO_UTC = Event.__dict__["_to_utc"].__func__


def _model_fields(model: type[BaseModel]) -> Any:
    schema: Any = model.__pydantic_core_schema__
    if schema["type"] != "model" or "serialization" in schema:
        return None
    inner = schema["schema"]
    if inner["type"] != "model-fields" or inner.get("computed_fields"):
        return None
    return inner


def _config(model: type[BaseModel]) -> core_schema.CoreConfig:
    config: core_schema.CoreConfig = dict(model.__pydantic_core_schema__.get("config") or {})  # type: ignore[assignment]
    config.pop("extra_fields_behavior", None)  # given to the typed dict itself
    return config


def _native(schema: Any) -> bool:
    if not isinstance(schema, dict) or "serialization" in schema:
        return False
    kind = schema["type"]
    if kind in _NATIVE_LEAVES:
        return True
    if kind in ("model-field", "default", "nullable"):
        return _native(schema["schema"])
    if kind == "function-after" and schema["function"].get("function") is no_nul:
        return _native(schema["schema"])  # the contract's U+0000 guard: a str stays a str
    if kind == "literal":
        return all(v is None or type(v) in (str, int, bool) for v in schema["expected"])
    if kind == "tuple":
        return all(_native(item) for item in schema["items_schema"])
    if kind == "list":
        return _native(schema.get("items_schema", {"type": "any"}))
    if kind == "union":
        return all(_native(c[0] if isinstance(c, tuple) else c) for c in schema["choices"])
    return False


def _may_be_none(schema: Any) -> bool:
    kind = schema["type"]
    if kind in ("none", "nullable"):
        return True
    if kind == "default":
        return schema.get("default", ...) is None or _may_be_none(schema["schema"])
    if kind == "literal":
        return None in schema["expected"]
    if kind == "union":
        return any(_may_be_none(c[0] if isinstance(c, tuple) else c) for c in schema["choices"])
    return False


def _has_functions(schema: Any) -> bool:
    if isinstance(schema, dict):
        if str(schema.get("type", "")).startswith("function") or "serialization" in schema:
            return True
        return any(_has_functions(v) for k, v in schema.items() if k != "metadata")
    if isinstance(schema, list | tuple):
        return any(_has_functions(v) for v in schema)
    return False
