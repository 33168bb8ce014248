"""Versioned types: the registry keyed by (type, schema_version), decoding by the record's
version, unknown versions as named rejections, upcaster chains."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import orjson
import pytest
from pydantic import Field

import schemas
from schemas import Event, InvalidEvent, Properties, UnknownSchemaVersion, decode, encode
from schemas.codec import header_mismatch, headers
from schemas.contrib.github import GithubApiCall, GithubApiCallV1, GithubApiCallV2
from schemas.events import PageView, PageViewProperties
from schemas.registry import EventRegistry
from tests.fixtures.samples import OLDER_PROPERTIES, sample_event, samples_of


class PageViewV2Properties(Properties):
    path: str = Field(min_length=1, max_length=2048, pattern=r"^/[^\s]*$")
    referrer: str | None = None
    duration_ms: int | None = Field(default=None, ge=0, le=86_400_000)
    surface: Literal["web", "ios", "android"]


class PageViewV2(Event):
    type: Literal["page_view"] = "page_view"
    schema_version: Literal[2] = 2
    properties: PageViewV2Properties


def _v1_to_v2(props: dict[str, Any]) -> dict[str, Any]:
    return {**props, "surface": "web"}


@pytest.fixture
def registry() -> Iterator[EventRegistry]:
    """A registry with page_view v1 and v2 (and its upcaster)."""
    reg = EventRegistry(load_entry_points=False)
    reg.register(PageView)
    reg.register(PageViewV2)
    reg.upcaster("page_view", 1)(_v1_to_v2)
    yield reg


def _record(version: int | None, props: dict[str, Any], **envelope: Any) -> bytes:
    data: dict[str, Any] = {
        "event_id": "0190d5f2-0000-7000-8000-000000000001",
        "type": "page_view",
        "user_id": "u-1",
        "occurred_at": "2026-01-01T00:00:00Z",
        "source": "web",
        "properties": props,
        **envelope,
    }
    if version is not None:
        data["schema_version"] = version
    return orjson.dumps(data)


def test_the_latest_version_is_the_default_and_each_version_is_kept(
    registry: EventRegistry,
) -> None:
    assert registry.get("page_view") is PageViewV2
    assert registry.get("page_view", 1) is PageView
    assert registry.versions("page_view") == [1, 2]
    assert registry.latest("page_view") == 2
    data = {"user_id": "u", "source": "s", "properties": {"path": "/a"}}
    built = registry.build("page_view", data, 1)
    assert type(built) is PageView and built.schema_version == 1


def test_decode_picks_the_model_of_the_records_version(registry: EventRegistry) -> None:
    v1 = decode(_record(1, {"path": "/a"}), registry)
    v2 = decode(_record(2, {"path": "/a", "surface": "ios"}), registry)
    assert type(v1) is PageView and type(v2) is PageViewV2
    with pytest.raises(InvalidEvent) as info:  # v2's required field, on a v2 record
        decode(_record(2, {"path": "/a"}), registry)
    assert info.value.fields == ["properties.surface"]
    with pytest.raises(InvalidEvent) as info:  # v2's field is unknown to v1
        decode(_record(1, {"path": "/a", "surface": "ios"}), registry)
    assert info.value.fields == ["properties.surface"]


def test_a_record_without_a_version_is_version_1(registry: EventRegistry) -> None:
    event = decode(_record(None, {"path": "/a"}), registry)
    assert type(event) is PageView and event.schema_version == 1


@pytest.mark.parametrize("version", [99, 0, 3, "2", None])
def test_an_unknown_version_is_a_named_rejection(registry: EventRegistry, version: object) -> None:
    if version is None:  # a type with no version 1: a record without a version is unknown
        reg = EventRegistry(load_entry_points=False)
        reg.register(PageViewV2)
        value, registry = _record(None, {"path": "/a", "surface": "web"}), reg
    else:
        value = _record(None, {"path": "/a"}, schema_version=version)
    with pytest.raises(UnknownSchemaVersion) as info:
        decode(value, registry)
    assert [e.rule for e in info.value.errors] == ["unknown_schema_version"]
    assert info.value.fields == ["schema_version"]
    assert "page_view" in str(info.value)


def test_the_plain_validator_knows_every_version(registry: EventRegistry) -> None:
    v1 = registry.plain.validate_json(_record(1, {"path": "/a"}))
    v2 = registry.plain.validate_json(_record(2, {"path": "/a", "surface": "android"}))
    assert v1["schema_version"] == 1 and "surface" not in v1["properties"]
    assert v2["properties"]["surface"] == "android"
    for bad in (_record(2, {"path": "/a"}), _record(99, {"path": "/a"})):
        with pytest.raises(ValueError):  # refused: the model's path decides and names it
            registry.plain.validate_json(bad)


def test_encode_refuses_an_event_whose_version_is_not_its_models() -> None:
    liar = sample_event("page_view").model_copy(update={"schema_version": 2})
    with pytest.raises(InvalidEvent) as info:
        encode(liar)
    assert [e.rule for e in info.value.errors] == ["schema_version_mismatch"]


def test_the_version_header_must_agree_when_present() -> None:
    event = sample_event("page_view")
    assert header_mismatch(headers(event), 1) is None
    assert header_mismatch(None, 1) is None
    assert header_mismatch([("other", b"x")], 1) is None
    mismatch = header_mismatch(headers(event), 2)
    assert mismatch is not None and mismatch.rule == "schema_version_mismatch"
    assert header_mismatch([("bs.schema_version", b"junk")], 1) is not None


def test_registering_a_taken_version_fails_and_a_new_one_does_not(
    registry: EventRegistry,
) -> None:
    class Again(Event):
        type: Literal["page_view"] = "page_view"
        schema_version: Literal[2] = 2
        properties: PageViewProperties

    with pytest.raises(ValueError, match="v2 is already registered"):
        registry.register(Again)


def test_a_version_out_of_range_is_refused() -> None:
    class Bad(Event):
        type: Literal["bad"] = "bad"
        schema_version: int = 0
        properties: PageViewProperties

    with pytest.raises(TypeError, match="schema_version"):
        EventRegistry(load_entry_points=False).register(Bad)


def test_overlay_undoes_its_registrations() -> None:
    assert schemas.REGISTRY.latest("page_view") == 1
    with schemas.REGISTRY.overlay() as reg:
        reg.register(PageViewV2)
        reg.upcaster("page_view", 1)(_v1_to_v2)
        assert schemas.REGISTRY.latest("page_view") == 2
        assert type(decode(_record(2, {"path": "/a", "surface": "web"}))) is PageViewV2
    assert schemas.REGISTRY.latest("page_view") == 1
    with pytest.raises(UnknownSchemaVersion):
        decode(_record(2, {"path": "/a", "surface": "web"}))


# --- upcasters ----------------------------------------------------------------------------
def test_upcast_fills_the_new_field_and_validates(registry: EventRegistry) -> None:
    assert registry.upcast("page_view", 1, {"path": "/a"}) == {"path": "/a", "surface": "web"}
    same = {"path": "/a", "surface": "ios"}
    assert registry.upcast("page_view", 2, same) is same
    event = decode(_record(1, {"path": "/a", "duration_ms": 5}), registry)
    latest = registry.to_latest(event)
    assert type(latest) is PageViewV2 and latest.schema_version == 2
    assert latest.properties.surface == "web" and latest.properties.duration_ms == 5  # type: ignore[attr-defined]
    assert latest.event_id == event.event_id and latest.occurred_at == event.occurred_at


def test_a_missing_step_or_a_bad_result_is_named() -> None:
    reg = EventRegistry(load_entry_points=False)
    reg.register(PageView)
    reg.register(PageViewV2)
    with pytest.raises(InvalidEvent) as info:
        reg.upcast("page_view", 1, {"path": "/a"})
    assert [e.rule for e in info.value.errors] == ["no_upcaster"]
    reg.upcaster("page_view", 1)(lambda props: {**props, "surface": "tv"})
    with pytest.raises(InvalidEvent) as info:
        reg.upcast("page_view", 1, {"path": "/a"})
    assert info.value.fields == ["properties.surface"] and info.value.stage == "upcast"
    with pytest.raises(ValueError, match="already has an upcaster"):
        reg.upcaster("page_view", 1)(_v1_to_v2)


def test_github_api_call_chains_v1_to_v3_through_v2() -> None:
    v1 = {"endpoint": "/search/code", "status": 200, "rate_limit_remaining": 9, "duration_ms": 7}
    out = schemas.REGISTRY.upcast("github_api_call", 1, v1)
    assert out == {
        "endpoint": "/search/code",
        "method": "GET",
        "resource": "search",
        "status": 200,
        "rate_limit_remaining": 9,
        "latency_ms": 7,
    }
    assert v1 == {  # upcasters are pure: the input is untouched
        "endpoint": "/search/code",
        "status": 200,
        "rate_limit_remaining": 9,
        "duration_ms": 7,
    }
    v2 = {"endpoint": "/graphql", "method": "POST", "status": 200, "rate_limit_remaining": 1}
    assert schemas.REGISTRY.upcast("github_api_call", 2, v2)["resource"] == "graphql"
    assert schemas.REGISTRY.get("github_api_call") is GithubApiCall
    assert schemas.REGISTRY.get("github_api_call", 1) is GithubApiCallV1
    assert schemas.REGISTRY.get("github_api_call", 2) is GithubApiCallV2


def test_every_registered_upcaster_chain_turns_every_sample_into_a_valid_latest_event() -> None:
    """For every registered type and version there are samples, and each reaches the latest
    version through the chain as a valid event of the latest model (through decode, as a
    consumer would read it)."""
    checked = 0
    for name in schemas.REGISTRY.names():
        latest = schemas.REGISTRY.get(name)
        for version in schemas.REGISTRY.versions(name):
            events = samples_of(name, version)
            assert events, f"add samples of {name} v{version} to OLDER_PROPERTIES"
            for event in events:
                read = decode(encode(event))
                assert read.schema_version == version
                upcast = schemas.REGISTRY.to_latest(read)
                assert type(upcast) is latest
                assert latest.model_validate_json(encode(upcast)) == upcast
                checked += 1
    assert checked >= len(schemas.REGISTRY.names()) + len(OLDER_PROPERTIES)
