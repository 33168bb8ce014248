"""Pure helpers: DLQ headers, partition names, cursors, fatal consumer errors."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import pytest
from confluent_kafka import KafkaError, Message

from eventlog.offsets import is_fatal
from schemas import FieldError
from schemas.topics import DLQ_PREFIX
from sinks.config import RetentionConfig
from sinks.consumer import ConsumerFenced, Sink
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


def test_a_fenced_consumer_is_never_polled_on() -> None:
    # librdkafka hands a fenced static member (same group.instance.id) a _FATAL message whose
    # fatal() flag is unset; logging it and polling on left the sink running with a dead consumer.
    # The loop replaces the consumer instead (tests/sinks/test_consumer_fenced.py).
    fenced = Message(topic="t", partition=0, offset=1, error=KafkaError(KafkaError._FATAL))
    assert is_fatal(fenced.error())
    with pytest.raises(ConsumerFenced):
        Sink._usable(fenced)


def test_transient_consumer_errors_are_not_fatal() -> None:
    assert not is_fatal(KafkaError(KafkaError._TRANSPORT))
    assert not Sink._usable(
        Message(topic="t", partition=0, error=KafkaError(KafkaError._TRANSPORT))
    )
