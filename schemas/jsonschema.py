"""JSON Schema of every registered event type at every version, for services written in other
languages and for the compatibility gate (:mod:`schemas.compat`).

``brainstream schemas export [DIR]`` writes ``<type>/v<N>.schema.json`` per registered version
plus ``event.schema.json`` (the discriminated union of each type's latest version) to
``schemas/json/``. It refuses to overwrite a published version with a schema that would reject
events the published one accepts (that change needs a new version and an upcaster,
docs/evolution.md), unless forced.

The schemas describe a *record* on the events topic, which is stricter than the models' input:
``type``, ``event_id`` and ``occurred_at`` are required there (:func:`schemas.decode` refuses a
record without them), while the models fill them in for events built in code. ``schema_version``
is the file's own version (``const``), required above version 1: a record without it is read as
version 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas.codec import RECORDED
from schemas.registry import REGISTRY, EventRegistry, schema_version_of

JSON_DIR = Path(__file__).parent / "json"
UNION_FILE = "event.schema.json"


def version_file(type_name: str, version: int) -> str:
    """``<type>/v<N>.schema.json``, relative to the JSON directory."""
    return f"{type_name}/v{version}.schema.json"


def render(registry: EventRegistry = REGISTRY) -> dict[str, str]:
    """Relative file name -> file text, deterministic (sorted keys, trailing newline)."""
    files = {
        version_file(name, version): _dump(version_schema(registry, name, version))
        for name in registry.names()
        for version in registry.versions(name)
    }
    union = registry.adapter.json_schema(mode="validation")
    union["title"] = "brainstream event"
    for choice in union["oneOf"]:
        ref = choice["$ref"].rsplit("/", 1)[-1]
        event = union["$defs"][ref]
        _as_record(event, schema_version_of(registry.get(event["properties"]["type"]["const"])))
    files[UNION_FILE] = _dump(union)
    return files


def version_schema(registry: EventRegistry, type_name: str, version: int) -> dict[str, Any]:
    """The JSON Schema of a record of ``type_name`` at ``version``."""
    cls = registry.get(type_name, version)
    return _as_record(cls.model_json_schema(mode="validation"), version)


_RECORD_REQUIRED = frozenset({"type"} | RECORDED)


def _as_record(event: dict[str, Any], version: int) -> dict[str, Any]:
    """Pin ``schema_version`` and mark what a record must carry as required, in the order of
    the properties."""
    field = event["properties"]["schema_version"]
    event["properties"]["schema_version"] = {
        "const": version,
        "default": version,
        "title": field.get("title", "Schema Version"),
        "type": "integer",
    }
    required = set(event.get("required", ())) | _RECORD_REQUIRED
    if version > 1:
        required.add("schema_version")
    event["required"] = [name for name in event["properties"] if name in required]
    return event


def published(directory: Path = JSON_DIR) -> dict[str, str]:
    """The checked-in files: relative name -> text."""
    files = {p.name: p.read_text(encoding="utf-8") for p in directory.glob("*.schema.json")}
    for path in directory.glob("*/v*.schema.json"):
        files[f"{path.parent.name}/{path.name}"] = path.read_text(encoding="utf-8")
    return files


def export(
    directory: Path = JSON_DIR, registry: EventRegistry = REGISTRY, *, force: bool = False
) -> list[Path]:
    """Write :func:`render` to ``directory``, removing files of versions no longer registered.

    Raises :class:`schemas.compat.IncompatibleSchema` (nothing written) when a published
    version would change incompatibly, unless ``force``."""
    from schemas.compat import IncompatibleSchema, check

    if not force:
        problems = check(directory, registry)
        if problems:
            raise IncompatibleSchema(problems)
    directory.mkdir(parents=True, exist_ok=True)
    files = render(registry)
    for stale in [*directory.glob("*.schema.json"), *directory.glob("*/v*.schema.json")]:
        if str(stale.relative_to(directory)) not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for empty in directory.iterdir():
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()
    return written


def _dump(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover - thin CLI
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else JSON_DIR
    for path in export(target):
        print(path)
