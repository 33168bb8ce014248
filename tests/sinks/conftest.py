"""Helpers shared by the sink's tests."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE, Message, Producer

from schemas import Event, to_record
from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from sinks.consumer import Sink
from tests.fixtures.services import fill

_offsets: Iterator[int] = itertools.count()


def as_incoming(
    event: Event,
    *,
    topic: str = "t.events",
    partition: int = 0,
    offset: int | None = None,
    timestamp_ms: int | None = None,
) -> Message:
    """``event`` as the sink's consumer would receive it."""
    key, value, headers = to_record(event)
    return message(
        value,
        key=key,
        headers=list(headers),
        topic=topic,
        partition=partition,
        offset=next(_offsets) if offset is None else offset,
        timestamp_ms=timestamp_ms,
    )


def raw_incoming(value: bytes | None, *, offset: int = 0, partition: int = 0) -> Message:
    return message(
        value,
        key=b"k",
        headers=[("h", b"v")],
        partition=partition,
        offset=offset,
        timestamp_ms=1_700_000_000_000,
    )


def message(
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, str | bytes | None]] | None = None,
    topic: str = "t.events",
    partition: int = 0,
    offset: int = 0,
    timestamp_ms: int | None = None,
) -> Message:
    """A consumed record built by hand (``Message`` is constructible for tests since 2.13)."""
    ts = (
        (TIMESTAMP_NOT_AVAILABLE, 0)
        if timestamp_ms is None
        else (TIMESTAMP_CREATE_TIME, timestamp_ms)
    )
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        headers=headers,
        timestamp=ts,
    )


# -- integration helpers ---------------------------------------------------------------------
Record = tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]]]


def produce(kafka: KafkaSettings, topic: str, records: list[Record]) -> None:
    producer = Producer({**kafka.librdkafka(), "linger.ms": 20, "enable.idempotence": True})
    fill(producer, topic, records, timeout=60)


def event_records(events: list[Event]) -> list[Record]:
    return [(k, v, list(h)) for k, v, h in map(to_record, events)]


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.2)


def count_rows(conninfo: str, where: str = "true") -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM analytics_events WHERE {where}").fetchone()
        return int(row[0]) if row else -1


@contextmanager
def running_sink(
    config: SinkConfig, kafka: KafkaSettings, topics: TopicSettings, conninfo: str
) -> Iterator[Sink]:
    sink = Sink(config, kafka.librdkafka(), topics, conninfo)
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            sink.run(stop)
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, name="sink-under-test")
    thread.start()
    try:
        yield sink
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "sink did not stop"
    assert not errors, errors
