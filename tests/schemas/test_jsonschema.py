"""The checked-in JSON Schemas (``schemas/json/``) must match the models."""

from __future__ import annotations

import json

import orjson

from schemas import InvalidEvent, decode, encode
from schemas.jsonschema import JSON_DIR, render
from tests.fixtures.samples import sample_events


def test_checked_in_json_schemas_match_the_models() -> None:
    expected = render()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in JSON_DIR.glob("*.schema.json")}
    stale = sorted(set(on_disk) - set(expected))
    missing = sorted(set(expected) - set(on_disk))
    drifted = sorted(n for n in expected if n in on_disk and on_disk[n] != expected[n])
    assert not (stale or missing or drifted), (
        f"schemas/json is out of date (stale={stale}, missing={missing}, drifted={drifted}); "
        "run `brainstream schemas export`"
    )


def test_union_schema_names_every_type_by_discriminator() -> None:
    union = json.loads(render()["event.schema.json"])
    mapping = union["discriminator"]["mapping"]
    assert "page_view" in mapping and "github_api_call" in mapping
    page_view = json.loads(render()["page_view.schema.json"])
    props = page_view["$defs"]["PageViewProperties"]
    assert props["additionalProperties"] is False


def test_required_fields_are_exactly_those_a_record_cannot_do_without() -> None:
    """For every type: dropping a field from a valid record makes ``decode`` refuse it exactly
    when the exported schema (per type and in the union) lists the field as required."""
    files = render()
    union = json.loads(files["event.schema.json"])
    for event in sample_events():
        name = event.type
        schema = json.loads(files[f"{name}.schema.json"])
        ref = union["discriminator"]["mapping"][name].rsplit("/", 1)[-1]
        assert union["$defs"][ref]["required"] == schema["required"]
        record = orjson.loads(encode(event))
        refused = set()
        for field in record:
            try:
                decode(orjson.dumps({k: v for k, v in record.items() if k != field}))
            except InvalidEvent:
                refused.add(field)
        assert refused == set(schema["required"]), name
