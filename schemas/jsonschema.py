"""JSON Schema of every registered event type, for services written in other languages.

``python -m schemas.jsonschema [DIR]`` (or ``brainstream schemas export``) writes one file per
type plus ``event.schema.json`` (the discriminated union) to ``schemas/json/``.

The schemas describe a *record* on the events topic, which is stricter than the models' input:
``type``, ``event_id`` and ``occurred_at`` are required there (:func:`schemas.decode` refuses a
record without them), while the models fill them in for events built in code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas.codec import RECORDED
from schemas.registry import REGISTRY, EventRegistry

JSON_DIR = Path(__file__).parent / "json"


def render(registry: EventRegistry = REGISTRY) -> dict[str, str]:
    """File name -> file text, deterministic (sorted keys, trailing newline)."""
    files = {
        f"{name}.schema.json": _dump(
            _as_record(registry.get(name).model_json_schema(mode="validation"))
        )
        for name in registry.names()
    }
    union = registry.adapter.json_schema(mode="validation")
    union["title"] = "brainstream event"
    for choice in union["oneOf"]:
        _as_record(union["$defs"][choice["$ref"].rsplit("/", 1)[-1]])
    files["event.schema.json"] = _dump(union)
    return files


_RECORD_REQUIRED = frozenset({"type"} | RECORDED)


def _as_record(event: dict[str, Any]) -> dict[str, Any]:
    """Mark what a record must carry as required, in the order of the properties."""
    required = set(event.get("required", ())) | _RECORD_REQUIRED
    event["required"] = [name for name in event["properties"] if name in required]
    return event


def export(directory: Path = JSON_DIR, registry: EventRegistry = REGISTRY) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = render(registry)
    for stale in directory.glob("*.schema.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _dump(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover - thin CLI
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else JSON_DIR
    for path in export(target):
        print(path)
