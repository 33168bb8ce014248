"""The fast path writes the same envelope ``schemas.encode`` writes, and rejects the same."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import pytest
from pydantic import Field, model_validator

import schemas
from producers.encoder import Encoder, utc_now_iso
from schemas import Event, EventRegistry, InvalidEvent, Properties
from tests.fixtures.samples import SAMPLE_PROPERTIES


@pytest.mark.parametrize("type_name", schemas.REGISTRY.names())
def test_fast_bytes_match_the_contract_encoding(type_name: str) -> None:
    codec = Encoder(schemas.REGISTRY, "web").codec(type_name)
    assert codec is not None
    event_id, value = codec.encode(b"user-7", SAMPLE_PROPERTIES[type_name])
    decoded = schemas.decode(value)
    assert str(decoded.event_id) == event_id
    assert decoded.type == type_name and decoded.user_id == "user-7" and decoded.source == "web"
    assert schemas.encode(decoded) == value  # byte for byte, field order included
    assert dict(codec.headers) == dict(schemas.headers(decoded))


def test_invalid_properties_name_the_field() -> None:
    codec = Encoder(schemas.REGISTRY, "web").codec("page_view")
    assert codec is not None
    with pytest.raises(InvalidEvent) as info:
        codec.encode(b"u-1", {"path": "no-slash", "duration_ms": -1})
    assert sorted(info.value.fields) == ["properties.duration_ms", "properties.path"]
    with pytest.raises(InvalidEvent) as info:
        codec.encode(b"u-1", {"path": "/x", "email": "a@b.c"})
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
    codec.encode(b"u-1", {"blob": "x" * 30_000})
    with pytest.raises(InvalidEvent) as info:
        codec.encode(b"u-1", {"blob": "x" * 33_000})
    assert info.value.errors[0].rule == "max_size"


def test_unknown_type_is_reported_as_such() -> None:
    with pytest.raises(schemas.UnknownEventType):
        Encoder(schemas.REGISTRY, "web").codec("no_such_type")


def test_timestamp_is_utc_iso_with_microseconds() -> None:
    stamp = utc_now_iso().decode()
    parsed: Any = orjson.loads(orjson.dumps(stamp))
    assert len(parsed) == 27 and parsed.endswith("Z") and parsed[10] == "T"


def _variants(props: dict[str, Any]) -> list[dict[str, Any]]:
    """The sample, each field left out in turn, each field explicitly None, and ints as text."""
    out = [props]
    out += [{k: v for k, v in props.items() if k != drop} for drop in props]
    out += [{**props, k: None} for k in props]
    out += [{**props, k: str(v)} for k, v in props.items() if type(v) is int]
    return out


def _properties_of(value: bytes) -> bytes:
    return value[value.index(b'"properties":') + len(b'"properties":') : -1]


@pytest.mark.parametrize("type_name", schemas.REGISTRY.names())
def test_the_model_free_path_accepts_refuses_and_writes_what_the_model_does(
    type_name: str,
) -> None:
    codec = Encoder(schemas.REGISTRY, "web").codec(type_name)
    assert codec is not None and codec.fast is not None  # every shipped type takes it
    model = schemas.REGISTRY.get(type_name).model_fields["properties"].annotation
    assert isinstance(model, type) and issubclass(model, Properties)
    for props in _variants(SAMPLE_PROPERTIES[type_name]):
        try:
            expected = model.model_validate(props).model_dump_json(exclude_none=True).encode()
        except ValueError:
            with pytest.raises(InvalidEvent):
                codec.encode(b"u-1", props)
            continue
        assert _properties_of(codec.encode(b"u-1", props)[1]) == expected, props


class Stamped(Properties):
    at: datetime  # not JSON-native: orjson and pydantic write it differently


class Checked(Properties):
    low: int
    high: int

    @model_validator(mode="after")
    def ordered(self) -> Checked:
        if self.low > self.high:
            raise ValueError("low above high")
        return self


class Maybe(Properties):
    note: str | None  # required, may be None: the dict would hold None, exclude_none drops it


class MaybeEvent(Event):
    type: Literal["maybe"] = "maybe"
    properties: Maybe


class StampedEvent(Event):
    type: Literal["stamped"] = "stamped"
    properties: Stamped


class CheckedEvent(Event):
    type: Literal["checked"] = "checked"
    properties: Checked


def test_models_the_fast_path_cannot_mirror_take_the_models_path() -> None:
    registry = EventRegistry(load_entry_points=False)
    registry.register(StampedEvent)
    registry.register(CheckedEvent)
    registry.register(MaybeEvent)
    encoder = Encoder(registry, "web")
    stamped, checked, maybe = (encoder.codec(n) for n in ("stamped", "checked", "maybe"))
    assert stamped is not None and checked is not None and maybe is not None
    assert stamped.fast is None and checked.fast is None and maybe.fast is None
    assert maybe.encode(b"u", {"note": None})[1].endswith(b'"properties":{}}')
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert b'"properties":{"at":"2026-01-02T03:04:05Z"}' in stamped.encode(b"u", {"at": at})[1]
    with pytest.raises(InvalidEvent):
        checked.encode(b"u", {"low": 2, "high": 1})


def test_the_sdk_stamps_the_version_of_the_model_it_uses() -> None:
    """A type name alone produces the latest version; a service pinned to an older version
    keeps producing it, stamped in the value and the header."""
    from tests.fixtures.samples import OLDER_PROPERTIES

    latest = Encoder(schemas.REGISTRY, "web").codec("github_api_call")
    assert latest is not None
    _id, value = latest.encode(b"u-1", SAMPLE_PROPERTIES["github_api_call"])
    assert schemas.decode(value).schema_version == schemas.REGISTRY.latest("github_api_call")
    pinned = Encoder(schemas.REGISTRY, "web", {"github_api_call": 1}).codec("github_api_call")
    assert pinned is not None
    _id, value = pinned.encode(b"u-1", OLDER_PROPERTIES[("github_api_call", 1)][1])
    event = schemas.decode(value)
    assert event.schema_version == 1 and dict(pinned.headers)["bs.schema_version"] == b"1"
    with pytest.raises(InvalidEvent):  # the latest shape is not v1's
        pinned.encode(b"u-1", SAMPLE_PROPERTIES["github_api_call"])
    with pytest.raises(schemas.UnknownSchemaVersion):
        Encoder(schemas.REGISTRY, "web", {"github_api_call": 9}).codec("github_api_call")
