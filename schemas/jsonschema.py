"""JSON Schema of every registered event type, for services written in other languages.

``python -m schemas.jsonschema [DIR]`` (or ``brainstream schemas export``) writes one file per
type plus ``event.schema.json`` (the discriminated union) to ``schemas/json/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas.registry import REGISTRY, EventRegistry

JSON_DIR = Path(__file__).parent / "json"


def render(registry: EventRegistry = REGISTRY) -> dict[str, str]:
    """File name -> file text, deterministic (sorted keys, trailing newline)."""
    files = {
        f"{name}.schema.json": _dump(registry.get(name).model_json_schema(mode="validation"))
        for name in registry.names()
    }
    union = registry.adapter.json_schema(mode="validation")
    union["title"] = "brainstream event"
    files["event.schema.json"] = _dump(union)
    return files


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
