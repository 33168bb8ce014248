"""The event contract: every type round-trips, every rule rejects with the field named."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

import schemas
from schemas.contrib.github import GithubApiCall, GithubApiCallV1
from schemas.envelope import MAX_EVENT_BYTES
from schemas.events import CORE_EVENT_TYPES
from tests.fixtures.samples import sample_event, sample_events


def test_the_nine_seed_types_and_the_contrib_type_are_registered() -> None:
    names = set(schemas.REGISTRY.names())
    assert {c.event_type for c in CORE_EVENT_TYPES} <= names
    assert len(CORE_EVENT_TYPES) == 9
    assert "github_api_call" in names  # loaded through the entry point, not imported by the sink


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.type)
def test_every_type_round_trips_through_bytes(event: schemas.Event) -> None:
    decoded = schemas.decode(schemas.encode(event))
    assert decoded == event
    assert type(decoded) is type(event)


def test_event_id_is_a_fresh_uuid7_when_absent() -> None:
    a, b = sample_event("login"), sample_event("login")
    assert a.event_id.version == 7 and a.event_id != b.event_id


def test_occurred_at_is_normalised_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    event = sample_event("logout", occurred_at=datetime(2026, 1, 1, 13, 0, tzinfo=cet))
    assert event.occurred_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert b'"occurred_at":"2026-01-01T12:00:00Z"' in schemas.encode(event)


def test_naive_datetime_is_rejected_naming_the_field() -> None:
    with pytest.raises(schemas.InvalidEvent) as info:
        sample_event("logout", occurred_at=datetime(2026, 1, 1, 12, 0))
    assert info.value.fields == ["occurred_at"]


def test_record_is_keyed_by_user_with_type_and_version_headers() -> None:
    event = sample_event("search")
    key, value, headers = schemas.to_record(event)
    assert key == event.user_id.encode()
    assert json.loads(value)["event_id"] == str(event.event_id)
    assert dict(headers)[schemas.topics.H_TYPE] == b"search"
    assert dict(headers)[schemas.topics.H_SCHEMA_VERSION] == b"1"


def test_unknown_type_is_reported_as_such() -> None:
    raw = json.loads(schemas.encode(sample_event("login")))
    raw["type"] = "no_such_type"
    with pytest.raises(schemas.UnknownEventType) as info:
        schemas.decode(json.dumps(raw).encode())
    assert info.value.fields == ["type"]


@pytest.mark.parametrize("value", [b"", None, b"\x00\xff not json", b"[]", b'"x"'])
def test_garbage_bytes_are_rejected_without_raising_anything_else(value: bytes | None) -> None:
    with pytest.raises(schemas.InvalidEvent):
        schemas.decode(value)


def test_oversize_event_is_rejected_on_encode_and_decode() -> None:
    big = b'{"type":"page_view","pad":"' + b"x" * MAX_EVENT_BYTES + b'"}'
    with pytest.raises(schemas.InvalidEvent) as info:
        schemas.decode(big)
    assert info.value.errors[0].rule == "max_size"


def test_error_messages_never_echo_the_input() -> None:
    secret = "alice@example.com"
    raw = json.loads(schemas.encode(sample_event("login")))
    raw["user_id"] = secret
    with pytest.raises(schemas.InvalidEvent) as info:
        schemas.decode(json.dumps(raw).encode())
    assert secret not in str(info.value)
    assert info.value.fields == ["user_id"]


def test_a_service_registers_its_own_type_without_touching_the_sink() -> None:
    event = GithubApiCall(
        user_id="u-1",
        source="gh-sync",
        properties={
            "endpoint": "/repos/{owner}/{repo}/pulls",
            "method": "GET",
            "resource": "core",
            "status": 200,
            "rate_limit_remaining": 4999,
        },
    )
    assert event.schema_version == 3
    assert schemas.decode(schemas.encode(event)) == event
    old = GithubApiCallV1(
        user_id="u-1",
        source="gh-sync",
        properties={"endpoint": "/repos/{o}/{r}", "status": 200, "rate_limit_remaining": 1},
    )
    assert old.schema_version == 1
    assert schemas.decode(schemas.encode(old)) == old


def test_registering_a_second_class_under_a_taken_name_fails() -> None:
    from typing import Literal

    from schemas.events import LogoutProperties

    class Impostor(schemas.Event):
        type: Literal["logout"] = "logout"
        properties: LogoutProperties

    with pytest.raises(ValueError, match="already registered"):
        schemas.register(Impostor)


def test_event_id_is_kept_when_given() -> None:
    eid = uuid.uuid4()
    assert sample_event("task_deleted", event_id=eid).event_id == eid


@pytest.mark.parametrize("field", ["event_id", "occurred_at"])
def test_a_record_without_its_id_or_time_is_rejected_not_made_up(field: str) -> None:
    # Building an event makes them up; decoding a record must not (a redelivery would be
    # stored as another event, at another time).
    doc = json.loads(schemas.encode(sample_event("login")))
    del doc[field]
    with pytest.raises(schemas.InvalidEvent) as info:
        schemas.decode(json.dumps(doc).encode())
    assert info.value.fields == [field] and info.value.errors[0].rule == "missing"
