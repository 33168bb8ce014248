"""The fast path writes the same envelope ``schemas.encode`` writes, and rejects the same."""

from __future__ import annotations

from typing import Any, Literal

import orjson
import pytest
from pydantic import Field

import schemas
from producers.encoder import Encoder, utc_now_iso
from schemas import Event, EventRegistry, InvalidEvent, Properties
from tests.fixtures.samples import SAMPLE_PROPERTIES


@pytest.mark.parametrize("type_name", schemas.REGISTRY.names())
def test_fast_bytes_match_the_contract_encoding(type_name: str) -> None:
    codec = Encoder(schemas.REGISTRY, "web").codec(type_name)
    assert codec is not None
    event_id, value = codec.encode("user-7", SAMPLE_PROPERTIES[type_name])
    decoded = schemas.decode(value)
    assert str(decoded.event_id) == event_id
    assert decoded.type == type_name and decoded.user_id == "user-7" and decoded.source == "web"
    assert schemas.encode(decoded) == value  # byte for byte, field order included
    assert dict(codec.headers) == dict(schemas.headers(decoded))


def test_invalid_properties_name_the_field() -> None:
    codec = Encoder(schemas.REGISTRY, "web").codec("page_view")
    assert codec is not None
    with pytest.raises(InvalidEvent) as info:
        codec.encode("u-1", {"path": "no-slash", "duration_ms": -1})
    assert sorted(info.value.fields) == ["properties.duration_ms", "properties.path"]
    with pytest.raises(InvalidEvent) as info:
        codec.encode("u-1", {"path": "/x", "email": "a@b.c"})
    assert info.value.fields == ["properties.email"]
    assert "a@b.c" not in str(info.value)  # never echoes input


class BlobProperties(Properties):
    blob: str = Field(max_length=100_000)


class Blob(Event):
    type: Literal["blob"] = "blob"
    properties: BlobProperties


def test_oversized_event_is_rejected() -> None:
    registry = EventRegistry(load_entry_points=False)
    registry.register(Blob)
    codec = Encoder(registry, "web").codec("blob")
    assert codec is not None
    codec.encode("u-1", {"blob": "x" * 30_000})
    with pytest.raises(InvalidEvent) as info:
        codec.encode("u-1", {"blob": "x" * 33_000})
    assert info.value.errors[0].rule == "max_size"


def test_unknown_type_is_reported_as_such() -> None:
    with pytest.raises(schemas.UnknownEventType):
        Encoder(schemas.REGISTRY, "web").codec("no_such_type")


def test_timestamp_is_utc_iso_with_microseconds() -> None:
    stamp = utc_now_iso().decode()
    parsed: Any = orjson.loads(orjson.dumps(stamp))
    assert len(parsed) == 27 and parsed.endswith("Z") and parsed[10] == "T"
