"""The plain (model-free) validators accept a subset of what the models accept, with the same
values: whatever they refuse takes the model's path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

import schemas
from schemas import InvalidEvent
from tests.fixtures.samples import sample_event


def _mutations(type_name: str) -> list[dict[str, Any]]:
    event = orjson.loads(schemas.encode(sample_event(type_name)))
    props = event["properties"]
    out: list[dict[str, Any]] = [event]
    out += [{k: v for k, v in event.items() if k != drop} for drop in event]
    out += [{**event, "properties": {k: v for k, v in props.items() if k != d}} for d in props]
    out += [{**event, "properties": {**props, k: None}} for k in props]
    out += [{**event, "properties": {**props, k: str(v)}} for k, v in props.items()]
    out += [{**event, "properties": {**props, "extra": 1}}, {**event, "extra": 1}]
    out += [{**event, "occurred_at": "2026-01-02T03:04:05"}]  # naive
    out += [{**event, "occurred_at": "2026-01-02T05:04:05.123+02:00"}]
    out += [{**event, "user_id": "a@b.c"}, {**event, "source": "Web"}]
    out += [{**event, "schema_version": 0}, {**event, "schema_version": "2"}]
    out += [{**event, "event_id": "not-a-uuid"}, {**event, "type": "no_such_type"}]
    out += [{**event, "properties": []}, {**event, "properties": None}]
    return out


@pytest.mark.parametrize("type_name", schemas.REGISTRY.names())
def test_plain_decoding_accepts_a_subset_of_the_model_with_the_same_values(
    type_name: str,
) -> None:
    plain = schemas.REGISTRY.plain.validate_json
    accepted = 0
    for data in _mutations(type_name):
        raw = orjson.dumps(data)
        try:
            got = plain(raw)
        except ValidationError:
            continue  # the model's path decides
        accepted += 1
        model = schemas.decode(raw)  # must accept what the plain path accepted
        assert got["event_id"] == model.event_id and got["type"] == model.type
        assert got["user_id"] == model.user_id and got["source"] == model.source
        assert got["schema_version"] == model.schema_version
        assert got["occurred_at"] == model.occurred_at  # the same instant
        assert got["occurred_at"].utcoffset() is not None
        props = model.properties
        assert orjson.dumps(got["properties"]) == props.__pydantic_serializer__.to_json(
            props, exclude_none=True
        )
    assert accepted >= 2  # the sample itself, and at least one variant


@pytest.mark.parametrize("type_name", schemas.REGISTRY.names())
def test_what_the_model_refuses_the_plain_path_refuses(type_name: str) -> None:
    plain = schemas.REGISTRY.plain.validate_json
    for data in _mutations(type_name):
        raw = orjson.dumps(data)
        try:
            schemas.decode(raw)
        except InvalidEvent:
            with pytest.raises(ValidationError):
                plain(raw)


def test_a_missing_id_or_time_is_never_made_up_on_the_plain_path() -> None:
    event = orjson.loads(schemas.encode(sample_event("page_view")))
    for field in ("event_id", "occurred_at"):
        with pytest.raises(ValidationError):
            schemas.REGISTRY.plain.validate_json(orjson.dumps({**event, field: None}))
        without = {k: v for k, v in event.items() if k != field}
        with pytest.raises(ValidationError):
            schemas.REGISTRY.plain.validate_json(orjson.dumps(without))


def test_an_offset_is_kept_as_the_same_instant() -> None:
    event = orjson.loads(schemas.encode(sample_event("login")))
    event["occurred_at"] = "2026-01-02T05:04:05+02:00"
    got = schemas.REGISTRY.plain.validate_json(orjson.dumps(event))
    assert got["occurred_at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert got["occurred_at"].utcoffset() == timedelta(hours=2)
    assert schemas.decode(orjson.dumps(event)).occurred_at.tzinfo == UTC
