"""The raw sink and the worker together (real broker and database), the acceptance run of the
aggregates: 200k events tracked with the SDK, with duplicates (the same bytes produced again
later, the same event re-sent from the SDK's spool) and records the sink dead-letters. Then raw
rows = distinct event_ids = counted events, late events land in their old buckets, and the
aggregates equal the raw table (``aggregates verify`` = 0)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer

from producers.tracker import Tracker
from schemas import Event
from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from streams.reference import verify
from tests.fixtures.services import PgSchema
from tests.sinks.conftest import Record, count_rows, produce, running_sink
from tests.sinks.test_forwarding import _poison, _spooled
from tests.streams.helpers import WorkerEnv, end_offsets, make_events, stop, wait_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 200_000
USERS = 5_000


def _track(kafka: KafkaSettings, topic: str, events: list[Event], spool: Path) -> list[str]:
    """Every event through the SDK's ``track()`` (its own event_id, the given time); returns
    the event_ids it assigned."""
    ids = []
    with Tracker(
        kafka, topic=topic, source="web", spool_dir=spool, prometheus=False, strict=True
    ) as tracker:
        for e in events:
            event_id = tracker.track(
                e.type,
                e.user_id,
                properties=e.properties.model_dump(mode="json"),
                occurred_at=e.occurred_at,
            )
            assert event_id is not None
            ids.append(event_id)
    return ids


def _read_back(kafka: KafkaSettings, topic: str, target: dict[int, int]) -> list[Record]:
    """The records of ``topic`` up to ``target`` end offsets: the bytes the SDK produced."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"read-back-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[Record] = []
    try:
        while len(out) < sum(target.values()):
            for msg in consumer.consume(10_000, timeout=1.0):
                if msg.error() is None and msg.offset() < target.get(msg.partition(), 0):
                    headers = [(k, v) for k, v in msg.headers() or [] if v is not None]
                    out.append((msg.key(), msg.value(), headers))
    finally:
        consumer.close()
    return out


def test_sdk_events_with_duplicates_and_dead_letters_are_counted_once_and_late_ones_in_old_buckets(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    pg_schema: PgSchema,
    worker_env: WorkerEnv,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    events = make_events(EVENTS, USERS, seed=31, end=now, late_fraction=0.05)
    ids = _track(kafka_settings, topics.events, events, tmp_path / "sdk")
    tracked = end_offsets(kafka_settings, topics.events, topics.events_partitions)
    records = _read_back(kafka_settings, topics.events, tracked)
    assert len(records) == EVENTS
    again = records[::50]  # 2%: the same bytes produced again, later
    resent = _spooled(records[7::100], tmp_path / "spool")  # 1%: re-sent from the SDK's spool
    poison = _poison()  # dead-lettered at decode and validate (twice: a U+0000 is refused too)
    produce(kafka_settings, topics.events, poison[:2] + again + poison[2:] + resent)
    worker = worker_env.start(tmp_path / "worker.log")
    worker_env.procs.append(worker)
    config = SinkConfig(group_id=f"s-{uuid.uuid4().hex[:8]}", batch_max_seconds=0.2)
    with running_sink(config, kafka_settings, topics, pg_schema.conninfo):
        target = end_offsets(kafka_settings, topics.events, topics.events_partitions)
        wait_caught_up(pg_schema.conninfo, topics.events, target, timeout=300)
    stop(worker)

    assert count_rows(pg_schema.conninfo) == len(set(ids)) == EVENTS
    with psycopg.connect(pg_schema.conninfo) as conn:
        report = verify(conn)
        assert report.ok, (report.differences, report.samples)
        counted = conn.execute("SELECT sum(event_count) FROM agg_user_days").fetchone()
        days = conn.execute(
            "SELECT sum(event_count) FROM agg_type_buckets WHERE granularity = 'hour'"
            " AND bucket < %s",
            (now - timedelta(hours=5),),
        ).fetchone()
    assert counted == (EVENTS,)
    late = sum(1 for e in events if e.occurred_at < now - timedelta(hours=5))
    assert days == (late,) and late > EVENTS // 50  # hours back, in their own old hour buckets
