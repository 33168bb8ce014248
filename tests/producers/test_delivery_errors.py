"""Issue 17 item 4: a delivery error is classified; a permanent one drops the event once with a
reason, a transient one is re-sent a bounded number of times, an unreachable broker costs no
attempt. The events topic uses broker time (LogAppendTime): a producer host whose clock is
2 h fast is refused by a CreateTime topic and kept, clamped, by brainstream's.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, KafkaError, Message
from confluent_kafka.admin import AdminClient, NewTopic

import producers.encoder
import producers.tracker
from brainstream.topic_admin import delete_topics
from producers import EventsDropped, Tracker, TrackingError
from producers.delivery import ATTEMPTS, PERMANENT, UNREACHABLE, Outbox, classify
from producers.ratelog import RateLimitedLog
from producers.spool import Spool, read_records
from schemas.acceptance import ORIGINAL_OCCURRED_AT
from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from sinks.records import Row, to_row


def outbox(tmp_path: Path, errors: list[TrackingError], max_attempts: int = 3) -> Outbox:
    ratelog = RateLimitedLog(logging.getLogger("test"), 10.0, time.monotonic)
    return Outbox(Spool(tmp_path, 1 << 20), errors.append, ratelog, max_attempts)


def record(headers: list[tuple[str, bytes]] | None = None) -> Message:
    return Message(topic="t", key=b"u1", value=b'{"event_id":"x"}', headers=headers or [])


def test_every_known_error_has_one_class() -> None:
    assert not PERMANENT & UNREACHABLE
    assert classify(KafkaError(KafkaError.INVALID_TIMESTAMP)) == "permanent"
    assert classify(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)) == "permanent"
    assert classify(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)) == "permanent"
    assert classify(KafkaError(KafkaError._MSG_TIMED_OUT)) == "unreachable"
    assert classify(KafkaError(KafkaError.NOT_ENOUGH_REPLICAS)) == "transient"


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.INVALID_TIMESTAMP,
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    ],
)
def test_a_permanent_error_drops_once_with_its_name(tmp_path: Path, code: int) -> None:
    errors: list[TrackingError] = []
    box = outbox(tmp_path, errors)
    box.on_delivery(KafkaError(code), record())
    box.report()
    name = KafkaError(code).name()
    assert box.stats().dropped_by_reason == {name: 1}
    assert box.spool.waiting == 0 and box.spooled.value == 0
    assert [(type(e), e.reason) for e in errors] == [(EventsDropped, name)]  # type: ignore[attr-defined]


def test_transient_errors_are_resent_a_bounded_number_of_times(tmp_path: Path) -> None:
    errors: list[TrackingError] = []
    box = outbox(tmp_path, errors, max_attempts=3)
    refused = KafkaError(KafkaError.NOT_ENOUGH_REPLICAS)
    produced: list[list[tuple[str, bytes]]] = []

    def produce(*, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
        produced.append(headers)  # the broker keeps refusing it
        on_delivery(refused, Message(topic="t", key=key, value=value, headers=headers))

    box.on_delivery(refused, record([("h", b"1")]))  # the first delivery failed
    for _ in range(10):
        box.resend(produce, 100)
    box.report()
    assert len(produced) == 2  # attempts 2 and 3, then dropped
    assert all(headers == [("h", b"1")] for headers in produced)  # ATTEMPTS never sent
    assert box.stats().dropped_by_reason == {"retries_exhausted": 1}
    assert box.spool.waiting == 0
    assert any(isinstance(e, EventsDropped) and e.reason == "retries_exhausted" for e in errors)


def test_an_unreachable_broker_costs_no_attempt(tmp_path: Path) -> None:
    box = outbox(tmp_path, [], max_attempts=1)
    timed_out = KafkaError(KafkaError._MSG_TIMED_OUT)
    for _ in range(5):
        box.on_delivery(timed_out, record())
    assert box.stats().dropped == 0 and box.spool.waiting == 5
    seg = box.spool.take()
    assert seg is not None
    assert all(ATTEMPTS not in dict(h) for _k, _v, h in read_records(seg.path))


# --- on the real broker, with the producer host's clock 2 h fast -----------------------------
AHEAD_NS = 2 * 3600 * 10**9


def _fast_clock_run(
    kafka: KafkaSettings, topic: str, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """One event from a host whose clock is 2 h fast, as the SDK and librdkafka read it: the
    SDK stamps ``occurred_at`` from ``time_ns``, librdkafka the record's CreateTime from the
    same clock (given here as the ``timestamp`` librdkafka would have taken). Then 3 s more
    with a 0.2 s re-send interval: any re-send would show."""
    real = time.time_ns
    monkeypatch.setattr(producers.tracker, "time_ns", lambda: real() + AHEAD_NS)
    monkeypatch.setattr(producers.encoder, "time_ns", lambda: real() + AHEAD_NS)
    errors: list[str] = []
    tracker = Tracker(
        kafka,
        topic=topic,
        source="fast-clock",
        spool_dir=spool,
        prometheus=False,
        resend_interval_seconds=0.2,
        on_error=lambda e: errors.append(f"{type(e).__name__}:{getattr(e, 'reason', '')}"),
    )
    produce = tracker._produce

    def at_host_time(*args: Any, **kwargs: Any) -> None:
        produce(*args, timestamp=(real() + AHEAD_NS) // 10**6, **kwargs)

    tracker._produce = at_host_time  # type: ignore[method-assign]
    event_id = tracker.track("page_view", "user-fast-clock", path="/ahead")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stats = tracker.stats()
        if stats.delivered or stats.dropped:
            break
        time.sleep(0.1)
    time.sleep(3)
    stats = tracker.close(10.0)
    return {"id": event_id, "stats": stats.as_dict(), "errors": errors}


@pytest.mark.integration
def test_a_createtime_topic_refuses_a_fast_host_and_the_sdk_drops_it_once(
    kafka_settings: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = f"t{uuid.uuid4().hex[:12]}.createtime"
    admin = AdminClient(kafka_settings.librdkafka())
    config = {"message.timestamp.type": "CreateTime", "message.timestamp.after.max.ms": "3600000"}
    for future in admin.create_topics([NewTopic(topic, 1, 1, config=config)]).values():
        future.result(30)
    try:
        report = _fast_clock_run(kafka_settings, topic, tmp_path, monkeypatch)
    finally:
        delete_topics(kafka_settings, [topic])
    stats = report["stats"]
    assert stats["delivered"] == 0
    assert stats["dropped_by_reason"] == {"INVALID_TIMESTAMP": 1}
    assert stats["resent"] == 0 and stats["spooled"] == 0 and stats["in_spool"] == 0
    assert report["errors"] == ["EventsDropped:INVALID_TIMESTAMP"]


@pytest.mark.integration
def test_brainstreams_events_topic_keeps_a_fast_hosts_event_with_a_clamped_time(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert topics.events_timestamp_type == "LogAppendTime"
    report = _fast_clock_run(kafka_settings, topics.events, tmp_path, monkeypatch)
    assert report["stats"]["delivered"] == 1 and report["errors"] == []

    consumer = Consumer(
        {
            **kafka_settings.librdkafka(),
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topics.events])
    try:
        deadline = time.monotonic() + 30
        msg = None
        while msg is None and time.monotonic() < deadline:
            got = consumer.poll(0.5)
            if got is not None and got.error() is None:
                msg = got
    finally:
        consumer.close()
    assert msg is not None
    kind, ts = msg.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    broker_time = datetime.fromtimestamp(ts / 1000, UTC)
    assert abs(broker_time - datetime.now(UTC)) < timedelta(minutes=5)  # the broker's clock
    row = to_row(msg, SinkConfig())  # the sink's future-skew rule against broker time
    assert isinstance(row, Row) and row.clamped
    assert row.occurred_at == broker_time
    original = datetime.fromisoformat(json.loads(row.properties)[ORIGINAL_OCCURRED_AT])
    assert original - broker_time > timedelta(hours=1, minutes=55)
