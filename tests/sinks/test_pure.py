"""Pure helpers: DLQ headers, offsets to commit, backoff, partition names, cursors."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from schemas import FieldError
from schemas.topics import DLQ_PREFIX
from sinks.backoff import Backoff
from sinks.batch import is_fatal, offset_ranges, without_partitions
from sinks.config import RetentionConfig
from sinks.consumer import Sink
from sinks.dlq import DlqContext, dlq_headers
from sinks.dlq_admin import dlq_info
from sinks.queries import Cursor
from sinks.records import Rejection
from sinks.retention import cutoff_for, expired, partition_day
from tests.sinks.conftest import message


def _rec(partition: int, offset: int, topic: str = "t") -> Message:
    return message(b"{}", topic=topic, partition=partition, offset=offset)


def test_dlq_headers_carry_coordinates_stage_and_machine_readable_errors() -> None:
    origin = message(
        b"v",
        key=b"k",
        headers=[("bs.type", b"login")],
        topic="src",
        partition=2,
        offset=17,
        timestamp_ms=1234,
    )
    rejection = Rejection(
        origin,
        "validate",
        "InvalidEvent",
        (FieldError("properties.method", "literal_error", "is not allowed"),),
    )
    at = datetime(2026, 1, 1, tzinfo=UTC)
    headers = dlq_headers(rejection, DlqContext("grp", "sink-a", "7"), at)
    assert all(name.startswith(DLQ_PREFIX) for name, _ in headers)
    info = dlq_info(headers)
    assert info == {
        "topic": "src",
        "partition": "2",
        "offset": "17",
        "timestamp": "1234",
        "group": "grp",
        "stage": "validate",
        "error.class": "InvalidEvent",
        "errors": info["errors"],
        "sink": "sink-a",
        "version": "7",
        "failed_at": at.isoformat(),
    }
    assert json.loads(info["errors"]) == [
        {"field": "properties.method", "rule": "literal_error", "message": "is not allowed"}
    ]


def test_offset_ranges_span_the_lowest_to_the_highest_per_partition() -> None:
    records = [_rec(0, 5), _rec(1, 9), _rec(0, 7), _rec(0, 6)]
    assert offset_ranges(records) == {0: (5, 7), 1: (9, 9)}


def test_revoked_partitions_are_abandoned() -> None:
    records = [_rec(0, 5), _rec(1, 9), _rec(2, 1)]
    assert without_partitions(records, {("t", 1)}) == [records[0], records[2]]
    assert without_partitions(records, set()) is records


def test_backoff_grows_to_its_ceiling_and_resets() -> None:
    b = Backoff(0.1, 0.5)
    assert [b.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    b.reset()
    assert b.next() == 0.1


def test_partition_names_and_expiry() -> None:
    assert partition_day("analytics_events_p20260301") == date(2026, 3, 1)
    assert partition_day("analytics_events_default") is None
    names = [
        "analytics_events_p20260103",
        "analytics_events_default",
        "analytics_events_p20260101",
        "analytics_events_p20260105",
    ]
    assert expired(names, date(2026, 1, 5)) == [
        "analytics_events_p20260101",
        "analytics_events_p20260103",
    ]
    assert cutoff_for(date(2026, 4, 1), RetentionConfig(days=90)) == date(2026, 1, 1)


def test_cursor_token_round_trips() -> None:
    cursor = Cursor(datetime(2026, 1, 1, 3, tzinfo=UTC), uuid.uuid4())
    assert Cursor.parse(cursor.token()) == cursor


def test_a_fenced_consumer_stops_the_sink_instead_of_polling_on() -> None:
    # librdkafka hands a fenced static member (same group.instance.id) a _FATAL message whose
    # fatal() flag is unset; logging it and polling on left the sink running with a dead consumer.
    fenced = Message(topic="t", partition=0, offset=1, error=KafkaError(KafkaError._FATAL))
    assert is_fatal(fenced.error())
    with pytest.raises(KafkaException):
        Sink._usable(fenced)


def test_transient_consumer_errors_are_not_fatal() -> None:
    assert not is_fatal(KafkaError(KafkaError._TRANSPORT))
    assert not Sink._usable(
        Message(topic="t", partition=0, error=KafkaError(KafkaError._TRANSPORT))
    )
