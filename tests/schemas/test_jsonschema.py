"""The checked-in JSON Schemas (``schemas/json/<type>/v<N>.schema.json``) must match the
models."""

from __future__ import annotations

import json

import orjson

import schemas
from schemas import InvalidEvent, decode, encode
from schemas.jsonschema import JSON_DIR, UNION_FILE, published, render, version_file
from tests.fixtures.samples import sample_events, samples_of


def test_checked_in_json_schemas_match_the_models() -> None:
    expected = render()
    on_disk = published(JSON_DIR)
    stale = sorted(set(on_disk) - set(expected))
    missing = sorted(set(expected) - set(on_disk))
    drifted = sorted(n for n in expected if n in on_disk and on_disk[n] != expected[n])
    assert not (stale or missing or drifted), (
        f"schemas/json is out of date (stale={stale}, missing={missing}, drifted={drifted}); "
        "run `brainstream schemas export`"
    )


def test_union_schema_names_every_type_by_discriminator() -> None:
    union = json.loads(render()[UNION_FILE])
    mapping = union["discriminator"]["mapping"]
    assert "page_view" in mapping and "github_api_call" in mapping
    page_view = json.loads(render()[version_file("page_view", 1)])
    props = page_view["$defs"]["PageViewProperties"]
    assert props["additionalProperties"] is False


def test_required_fields_are_exactly_those_a_record_cannot_do_without() -> None:
    """For every type and version: dropping a field from a valid record makes ``decode``
    refuse it exactly when the exported schema lists the field as required (the union, which
    holds each type's latest version, agrees with the latest version's file)."""
    files = render()
    union = json.loads(files[UNION_FILE])
    for name in schemas.REGISTRY.names():
        latest = json.loads(files[version_file(name, schemas.REGISTRY.latest(name))])
        ref = union["discriminator"]["mapping"][name].rsplit("/", 1)[-1]
        assert union["$defs"][ref]["required"] == latest["required"]
        for version in schemas.REGISTRY.versions(name):
            schema = json.loads(files[version_file(name, version)])
            assert schema["properties"]["schema_version"]["const"] == version
            events = samples_of(name, version)
            assert events, f"no sample of {name} v{version}"
            for event in events:
                record = orjson.loads(encode(event))
                refused = set()
                for field in record:
                    try:
                        decode(orjson.dumps({k: v for k, v in record.items() if k != field}))
                    except InvalidEvent:
                        refused.add(field)
                assert refused == set(schema["required"]), (name, version)


def test_every_latest_sample_is_covered() -> None:
    assert {e.type for e in sample_events()} == set(schemas.REGISTRY.names())
