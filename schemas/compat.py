"""The compatibility gate: each registered ``(type, schema_version)`` against its published JSON
Schema (``schemas/json/<type>/v<N>.schema.json``).

A version, once published, is a promise about records already on the topic: every record valid
under it must stay valid, or a replay sends it to the DLQ. So a change to a published version
must only *widen* what it accepts (Confluent Schema Registry calls this BACKWARD
compatibility: the new reader reads the old data). Anything else needs a new version and an
upcaster. ``brainstream schemas check`` (run by ``make test``) reports, per change:

- ``new_required``: a field that is required now and was not (a new required field, or an
  optional one made required);
- ``removed``: a field the published version has and the current one has not (records that
  carry it would be refused: unknown fields are rejected);
- ``narrowed``: a tighter bound (``maxLength``, ``maximum``, ``maxItems`` lower, a ``min*``
  higher, a new or changed ``pattern`` or ``format``, fewer allowed values);
- ``type_changed``: a JSON type the field accepted and no longer does (``null`` included);
- ``version_removed``: a published version that is no longer registered;
- ``no_upcaster``: a step between two registered versions without an upcaster.

An added optional field passes, and so does any widening. The verdict on each schema pair is
also asked of jsoncompat (``check_compat(old, new, "deserializer")``: does the new schema accept
every value the old one does), a maintained JSON Schema compatibility checker; this module's
rules name the field and the rule, and a change only jsoncompat objects to is reported as
``incompatible`` on the whole event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.errors import BrainstreamError
from schemas.registry import REGISTRY, EventRegistry

ADVICE = "bump schema_version and add an upcaster"
"""What to do about a published version changed in place (every rule but the two below)."""

RULE_ADVICE = {
    "no_upcaster": "register an upcaster for this step (@upcaster(type, version))",
    "version_removed": (
        "keep the version registered while the topic or a replay source holds its records"
    ),
}
"""What to do when the version is already bumped, or was removed: bumping again cannot help."""

_UPPER = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_LOWER = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
_EXACT = ("pattern", "format", "multipleOf")


@dataclass(frozen=True, slots=True)
class Problem:
    """One incompatible change: which type and version, which field (dotted path), which rule."""

    type: str
    version: int
    field: str
    rule: str
    detail: str

    def __str__(self) -> str:
        advice = RULE_ADVICE.get(self.rule, ADVICE)
        return f"{self.type} v{self.version}: {self.field}: {self.rule} ({self.detail}): {advice}"


class IncompatibleSchema(BrainstreamError):
    """Published versions would change incompatibly; ``problems`` names each change."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def check(directory: Path | None = None, registry: EventRegistry = REGISTRY) -> list[Problem]:
    """Every incompatible change of a published version, and every missing upcaster."""
    from schemas.jsonschema import JSON_DIR, version_schema

    root = JSON_DIR if directory is None else directory
    problems: list[Problem] = []
    for path in sorted(root.glob("*/v*.schema.json")):
        name, version = path.parent.name, _version(path)
        if version is None:
            continue
        if version not in registry.versions(name):
            detail = "published, no longer registered: its records would be refused"
            problems.append(Problem(name, version, "schema_version", "version_removed", detail))
            continue
        old = json.loads(path.read_text(encoding="utf-8"))
        new = version_schema(registry, name, version)
        problems += compare(name, version, old, new)
    upcasters = registry.upcasters()
    for name in registry.names():
        versions = registry.versions(name)
        for step in range(versions[0], versions[-1]):
            if (name, step) not in upcasters:
                detail = f"v{step} -> v{step + 1} has none (versions: {versions})"
                problems.append(Problem(name, step, "schema_version", "no_upcaster", detail))
    return problems


def compare(name: str, version: int, old: dict[str, Any], new: dict[str, Any]) -> list[Problem]:
    """Incompatible changes from the published ``old`` to the current ``new`` schema."""
    found: list[tuple[str, str, str]] = []
    _object(old, new, old, new, "", found)
    problems = [Problem(name, version, field, rule, detail) for field, rule, detail in found]
    if not problems and not _library_compatible(old, new):
        detail = "jsoncompat finds a record the published schema accepts and this one refuses"
        problems.append(Problem(name, version, "<event>", "incompatible", detail))
    return problems


class GateUnavailable(BrainstreamError):
    """jsoncompat, the gate's verdict, is not installed."""

    def __init__(self) -> None:
        super().__init__("the compatibility gate needs jsoncompat: pip install 'brainstream[dev]'")


def _library_compatible(old: dict[str, Any], new: dict[str, Any]) -> bool:
    try:
        import jsoncompat
    except ImportError:
        raise GateUnavailable() from None

    return bool(jsoncompat.check_compat(json.dumps(old), json.dumps(new), "deserializer"))


Found = list[tuple[str, str, str]]


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            return schema
        schema = root["$defs"][ref.removeprefix("#/$defs/")]
    return schema


def _object(
    old: dict[str, Any],
    new: dict[str, Any],
    old_root: dict[str, Any],
    new_root: dict[str, Any],
    prefix: str,
    found: Found,
) -> None:
    old_props: dict[str, Any] = old.get("properties", {})
    new_props: dict[str, Any] = new.get("properties", {})
    closed = new.get("additionalProperties") is False
    for field in old_props:
        if field not in new_props and closed:
            found.append((prefix + field, "removed", "records that carry it would be refused"))
    for field in new.get("required", ()):
        if field not in old.get("required", ()):
            found.append((prefix + field, "new_required", "records without it would be refused"))
    if old.get("additionalProperties") is not False and closed:
        found.append((prefix.rstrip(".") or "<event>", "narrowed", "unknown fields now refused"))
    for field, old_field in old_props.items():
        if field in new_props:
            _field(old_field, new_props[field], old_root, new_root, prefix + field, found)


def _branches(schema: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(schema, root)
    if "anyOf" in schema or "oneOf" in schema:
        out: list[dict[str, Any]] = []
        for branch in schema.get("anyOf", schema.get("oneOf", [])):
            out += _branches(branch, root)
        return out
    return [schema]


def _types(branch: dict[str, Any]) -> set[str]:
    if "type" in branch:
        kind = branch["type"]
        return set(kind) if isinstance(kind, list) else {kind}
    values = [branch["const"]] if "const" in branch else branch.get("enum", [])
    return {_json_type(v) for v in values} or {"any"}


def _json_type(value: Any) -> str:
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
    return "array" if isinstance(value, list) else "object"


def _field(
    old: dict[str, Any],
    new: dict[str, Any],
    old_root: dict[str, Any],
    new_root: dict[str, Any],
    path: str,
    found: Found,
) -> None:
    old_branches = _branches(old, old_root)
    new_branches = _branches(new, new_root)
    new_types: set[str] = set().union(*(_types(b) for b in new_branches))
    if "any" in new_types:
        return
    lost = set().union(*(_types(b) for b in old_branches)) - new_types - {"any"}
    if "number" in new_types:
        lost.discard("integer")
    if lost:
        found.append((path, "type_changed", f"no longer accepts {', '.join(sorted(lost))}"))
    for old_branch in old_branches:
        kinds = _types(old_branch)
        match = [b for b in new_branches if _types(b) & kinds]
        if len(match) == 1:
            _bounds(old_branch, match[0], old_root, new_root, path, found)


def _bounds(
    old: dict[str, Any],
    new: dict[str, Any],
    old_root: dict[str, Any],
    new_root: dict[str, Any],
    path: str,
    found: Found,
) -> None:
    for key in _UPPER:
        if key in new and (key not in old or new[key] < old[key]):
            found.append((path, "narrowed", f"{key} {old.get(key, 'none')} -> {new[key]}"))
    for key in _LOWER:
        if key in new and (key not in old or new[key] > old[key]):
            found.append((path, "narrowed", f"{key} {old.get(key, 'none')} -> {new[key]}"))
    for key in _EXACT:
        if key in new and new[key] != old.get(key):
            found.append((path, "narrowed", f"{key} changed"))
    old_values = _values(old)
    new_values = _values(new)
    if new_values is not None and (old_values is None or not old_values <= new_values):
        gone = "any value" if old_values is None else ", ".join(sorted(old_values - new_values))
        found.append((path, "narrowed", f"no longer allows {gone}"))
    if "items" in old and "items" in new:
        _field(old["items"], new["items"], old_root, new_root, path + "[]", found)
    if old.get("type") == "object" or new.get("type") == "object":
        _object(old, new, old_root, new_root, path + ".", found)


def _values(schema: dict[str, Any]) -> set[Any] | None:
    if "const" in schema:
        return {json.dumps(schema["const"])}
    if "enum" in schema:
        return {json.dumps(v) for v in schema["enum"]}
    return None


def _version(path: Path) -> int | None:
    stem = path.name.removesuffix(".schema.json")
    return int(stem[1:]) if stem[1:].isdigit() else None
