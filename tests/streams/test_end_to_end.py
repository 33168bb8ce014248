"""The raw sink and the worker together (real broker and database): duplicates and records the
sink dead-letters are never counted, late events land in their old buckets, and the aggregates
equal the raw table (``aggregates verify`` = 0)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from streams.reference import verify
from tests.fixtures.services import PgSchema
from tests.sinks.conftest import count_rows, event_records, produce, running_sink
from tests.sinks.test_forwarding import _poison, _spooled
from tests.streams.helpers import WorkerEnv, end_offsets, make_events, stop, wait_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_duplicates_and_dead_letters_are_never_counted_and_late_events_keep_their_buckets(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    pg_schema: PgSchema,
    worker_env: WorkerEnv,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    events = make_events(6_000, 300, seed=31, end=now, late_fraction=0.05)
    records = event_records(events)
    again = records[::50]  # 2%: the same bytes produced again, later
    resent = _spooled(records[7::100], tmp_path / "spool")  # 1%: re-sent from the SDK's spool
    poison = _poison()  # dead-lettered at decode and validate (twice: a U+0000 is refused too)
    mixed = records[:3000] + poison[:2] + records[3000:] + again + poison[2:] + resent
    produce(kafka_settings, topics.events, mixed)
    worker = worker_env.start(tmp_path / "worker.log")
    worker_env.procs.append(worker)
    config = SinkConfig(group_id=f"s-{uuid.uuid4().hex[:8]}", batch_max_seconds=0.2)
    with running_sink(config, kafka_settings, topics, pg_schema.conninfo):
        target = end_offsets(kafka_settings, topics.events, topics.events_partitions)
        wait_caught_up(pg_schema.conninfo, topics.events, target, timeout=120)
    stop(worker)

    assert count_rows(pg_schema.conninfo) == len({e.event_id for e in events}) == len(events)
    with psycopg.connect(pg_schema.conninfo) as conn:
        report = verify(conn)
        assert report.ok, (report.differences, report.samples)
        counted = conn.execute("SELECT sum(event_count) FROM agg_user_days").fetchone()
        days = conn.execute(
            "SELECT sum(event_count) FROM agg_type_buckets WHERE granularity = 'hour'"
            " AND bucket < %s",
            (now - timedelta(hours=5),),
        ).fetchone()
    assert counted == (len(events),)
    late = sum(1 for e in events if e.occurred_at < now - timedelta(hours=5))
    assert days == (late,) and late > 200  # hours back, in their own old hour buckets
