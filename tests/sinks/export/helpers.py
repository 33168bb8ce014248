"""Producing test traffic fast, and reading datasets back."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from confluent_kafka import Consumer, Producer

from eventlog.reader import LogReader, reader_conf
from schemas import Event, to_record
from schemas.config import KafkaSettings, TopicSettings
from sinks.export import ExportConfig, LogRange
from tests.fixtures.samples import SAMPLE_PROPERTIES, sample_event

TYPES = sorted(SAMPLE_PROPERTIES)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def events(
    count: int, *, users: int = 50, start: datetime = T0, source: str = "tests"
) -> list[Event]:
    """``count`` valid events cycling through every type and ``users`` users, 1 s apart."""
    return [
        sample_event(
            TYPES[i % len(TYPES)],
            user_id=f"user-{i % users}",
            occurred_at=start + timedelta(seconds=i),
            source=source,
        )
        for i in range(count)
    ]


def produce_raw(
    kafka: KafkaSettings,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
    *,
    timestamp_ms: int | None = None,
) -> int:
    """Produce and wait for every acknowledgement; returns the count (fails on any error)."""
    errors: list[Any] = []
    producer = Producer(
        {
            **kafka.librdkafka(),
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
            "enable.idempotence": True,
        }
    )

    def done(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    extra = {"timestamp": timestamp_ms} if timestamp_ms is not None else {}
    count = 0
    for key, value, headers in records:
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=done, **extra)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:3]
    return count


def produce(
    kafka: KafkaSettings, topic: str, batch: Iterable[Event], *, timestamp_ms: int | None = None
) -> int:
    return produce_raw(kafka, topic, map(to_record, batch), timestamp_ms=timestamp_ms)


@contextmanager
def reader(
    kafka: KafkaSettings, topics: TopicSettings, config: ExportConfig, *, skip_deleted: bool = False
) -> Iterator[LogReader]:
    consumer = Consumer(reader_conf(kafka.librdkafka(), "brainstream-export-test"))
    try:
        yield LogReader(consumer, topics.events, config, skip_deleted=skip_deleted)
    finally:
        consumer.close()


def parquet_rows(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def jsonl_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def expected(event: Event) -> dict[str, Any]:
    """The comparable content of an event (what every projection must agree on)."""
    return {
        "event_id": str(event.event_id),
        "type": event.type,
        "user_id": event.user_id,
        "occurred_at": event.occurred_at,
        "source": event.source,
        "schema_version": event.schema_version,
        "properties": event.properties.model_dump(mode="json", exclude_none=True),
    }


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet or JSONL row in the shape of :func:`expected`."""
    props = row["properties"]
    moment = row["occurred_at"]
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return {
        "event_id": row["event_id"],
        "type": row["type"],
        "user_id": row["user_id"],
        "occurred_at": moment,
        "source": row["source"],
        "schema_version": row["schema_version"],
        "properties": json.loads(props) if isinstance(props, str) else props,
    }


WHOLE_LOG = LogRange()
