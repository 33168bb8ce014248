"""Pure decoding: rows, rejections with their stage, and the future-skew policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas import MAX_EVENT_BYTES, encode
from schemas.acceptance import ORIGINAL_OCCURRED_AT, AcceptanceRule
from sinks.config import SinkConfig
from sinks.records import Rejection, Row, split, to_row
from tests.fixtures.samples import sample_event
from tests.sinks.conftest import as_incoming, message, raw_incoming

CONFIG = SinkConfig()
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def test_a_valid_event_becomes_a_row_with_its_lineage() -> None:
    event = sample_event("page_view", occurred_at=T0)
    row = to_row(as_incoming(event, partition=2, offset=41, timestamp_ms=T0_MS), CONFIG)
    assert isinstance(row, Row)
    assert (row.event_id, row.occurred_at, row.event_type) == (event.event_id, T0, "page_view")
    assert (row.kafka_partition, row.kafka_offset, row.user_id) == (2, 41, "user-1")
    assert json.loads(row.properties) == {
        "path": "/tasks/42",
        "referrer": "/dashboard",
        "duration_ms": 1200,
    }
    assert not row.clamped


def _valid_dict() -> dict[str, object]:
    return orjson.loads(encode(sample_event("login")))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("value", "stage", "field"),
    [
        (b"\x00\xffnot json", "decode", "<event>"),
        (b"", "decode", "<event>"),
        (None, "decode", "<event>"),
        (b"x" * (MAX_EVENT_BYTES + 1), "decode", "<event>"),
        (orjson.dumps({**_valid_dict(), "type": "no_such_type"}), "validate", "type"),
        (orjson.dumps({**_valid_dict(), "schema_version": "one"}), "validate", "schema_version"),
        (
            orjson.dumps({**_valid_dict(), "occurred_at": "2026-03-01T12:00:00"}),
            "validate",
            "occurred_at",
        ),
    ],
    ids=["not-json", "empty", "tombstone", "oversize", "unknown-type", "wrong-type", "naive-time"],
)
def test_poison_pills_are_rejected_with_stage_and_field(
    value: bytes | None, stage: str, field: str
) -> None:
    result = to_row(raw_incoming(value), CONFIG)
    assert isinstance(result, Rejection)
    assert result.stage == stage
    assert field in [e.field for e in result.errors]


def test_rejection_texts_do_not_echo_the_input() -> None:
    secret = "alice@example.com"
    value = orjson.dumps({**_valid_dict(), "user_id": secret})
    result = to_row(raw_incoming(value), CONFIG)
    assert isinstance(result, Rejection)
    assert secret not in json.dumps([e.as_dict() for e in result.errors])


def test_future_events_are_clamped_to_the_record_time_keeping_the_original() -> None:
    future = T0 + timedelta(days=3)
    record = as_incoming(sample_event("logout", occurred_at=future), timestamp_ms=T0_MS)
    row = to_row(record, CONFIG)
    assert isinstance(row, Row) and row.clamped
    assert row.occurred_at == T0
    assert json.loads(row.properties)[ORIGINAL_OCCURRED_AT] == future.isoformat()
    assert to_row(record, CONFIG) == row  # deterministic: a redelivery yields the same key


def test_future_within_the_skew_is_kept() -> None:
    near = T0 + timedelta(minutes=30)
    row = to_row(as_incoming(sample_event("logout", occurred_at=near), timestamp_ms=T0_MS), CONFIG)
    assert isinstance(row, Row) and row.occurred_at == near and not row.clamped


def test_future_events_are_rejected_when_configured() -> None:
    config = SinkConfig(acceptance=AcceptanceRule(future_policy="reject"))
    future = T0 + timedelta(days=3)
    result = to_row(
        as_incoming(sample_event("login", occurred_at=future), timestamp_ms=T0_MS), config
    )
    assert isinstance(result, Rejection)
    assert (result.stage, result.errors[0].rule) == ("validate", "future_skew")


def test_late_events_are_kept_as_they_are() -> None:
    late = T0 - timedelta(days=400)
    row = to_row(as_incoming(sample_event("login", occurred_at=late), timestamp_ms=T0_MS), CONFIG)
    assert isinstance(row, Row) and row.occurred_at == late


def test_split_keeps_order_and_separates_rejections() -> None:
    good = [as_incoming(sample_event("search")) for _ in range(3)]
    rows, rejected = split([good[0], raw_incoming(b"{"), good[1], good[2]], CONFIG)
    assert [r.origin for r in rows] == good
    assert len(rejected) == 1


@pytest.mark.parametrize("policy", ["clamp", "reject"])
def test_split_applies_the_skew_rule_to_each_record_against_its_own_timestamp(
    policy: str,
) -> None:
    """``split`` compares with the batch's earliest timestamp first; a later record's events
    are still judged against that record's own timestamp, exactly as ``to_row`` does."""
    config = SinkConfig(acceptance=AcceptanceRule(future_policy=policy))  # type: ignore[arg-type]
    skew = timedelta(seconds=config.acceptance.future_skew_seconds)
    ms = timedelta(milliseconds=1)
    later_ms = T0_MS + 2 * 3_600_000
    cases = [  # (occurred_at, record timestamp in ms, too far ahead)
        (T0 + skew + timedelta(minutes=1), T0_MS, True),
        (T0 + skew + timedelta(minutes=1), later_ms, False),
        (T0, later_ms, False),
        (T0 + skew, T0_MS, False),  # the rule is "more than the skew ahead"
        (T0 + skew + ms, T0_MS, True),
        (T0 + skew - ms, T0_MS, False),
        (T0 + timedelta(days=10), None, False),  # no record time: nothing to compare with
    ]
    records = [
        as_incoming(sample_event("login", occurred_at=at), timestamp_ms=ts) for at, ts, _ in cases
    ]
    rows, rejected = split(records, config)
    too_far = [r for r, (_at, _ts, ahead) in zip(records, cases, strict=True) if ahead]
    if policy == "clamp":
        assert not rejected
        assert [r.origin for r in rows] == records
        assert [r.clamped for r in rows] == [ahead for _at, _ts, ahead in cases]
    else:
        assert [r.origin for r in rejected] == too_far
        assert {e.rule for r in rejected for e in r.errors} == {"future_skew"}
    assert rows == [r for r in (to_row(rec, config) for rec in records) if isinstance(r, Row)]


def test_a_skew_beyond_the_calendar_clamps_nothing() -> None:
    config = SinkConfig(acceptance=AcceptanceRule(future_skew_seconds=1e15))
    record = as_incoming(
        sample_event("login", occurred_at=T0 + timedelta(days=30)), timestamp_ms=T0_MS
    )
    rows, rejected = split([record], config)
    assert not rejected and [r.clamped for r in rows] == [False]


def test_an_unknown_schema_version_is_a_named_rejection_and_its_neighbours_are_rows() -> None:
    good = _valid_dict()
    values = [
        orjson.dumps(good),
        orjson.dumps(
            {**good, "event_id": "0190d5f2-0000-7000-8000-0000000000aa", "schema_version": 99}
        ),
        encode(sample_event("page_view")),
    ]
    rows, rejected = split([raw_incoming(v, offset=i) for i, v in enumerate(values)], CONFIG)
    assert [r.kafka_offset for r in rows] == [0, 2]
    assert [(r.origin.offset(), r.error_class) for r in rejected] == [(1, "UnknownSchemaVersion")]
    assert [(e.field, e.rule) for e in rejected[0].errors] == [
        ("schema_version", "unknown_schema_version")
    ]


def test_a_version_header_that_disagrees_with_the_value_is_rejected() -> None:
    event = sample_event("page_view")
    honest = as_incoming(event)
    lying = message(
        encode(event),
        key=b"k",
        headers=[("bs.type", b"page_view"), ("bs.schema_version", b"2")],
        offset=7,
    )
    rows, rejected = split([honest, lying], CONFIG)
    assert [r.origin for r in rows] == [honest]
    assert [(e.field, e.rule) for e in rejected[0].errors] == [
        ("schema_version", "schema_version_mismatch")
    ]
    assert isinstance(to_row(lying, CONFIG), Rejection)


def test_each_version_is_stored_as_written() -> None:
    from tests.fixtures.samples import samples_of

    incoming = [as_incoming(e) for v in (1, 2, 3) for e in samples_of("github_api_call", v)]
    rows, rejected = split(incoming, CONFIG)
    assert not rejected
    assert [r.schema_version for r in rows] == [1, 1, 2, 3]
    assert "duration_ms" in json.loads(rows[1].properties)  # v1's field, not upcast
