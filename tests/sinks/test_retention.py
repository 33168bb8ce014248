"""Retention on the real database: whole partitions dropped fast, safe beside a running sink."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest

from schemas.config import KafkaSettings, TopicSettings
from sinks.config import RetentionConfig, SinkConfig
from sinks.records import split
from sinks.retention import partition_day, run_retention
from sinks.writer import create_staging, write_batch
from tests.fixtures.samples import sample_event
from tests.fixtures.services import PgSchema
from tests.sinks.conftest import (
    as_incoming,
    count_rows,
    event_records,
    produce,
    running_sink,
    wait_for,
)

pytestmark = pytest.mark.integration
TODAY = datetime.now(UTC).date()


def _at(day: date) -> datetime:
    return datetime.combine(day, time(12), UTC)


def _fill(conn: psycopg.Connection[tuple[object, ...]], days: list[date], per_day: int) -> None:
    events = [
        sample_event("search", user_id=f"u{i}", occurred_at=_at(d))
        for d in days
        for i in range(per_day)
    ]
    rows, _ = split([as_incoming(e) for e in events], SinkConfig())
    create_staging(conn)
    write_batch(conn, rows)


def _partitions(conn: psycopg.Connection[tuple[object, ...]]) -> list[date]:
    names = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'analytics_events'::regclass"
    ).fetchall()
    return sorted(d for (n,) in names if (d := partition_day(str(n))) is not None)


def test_retention_drops_old_day_partitions_of_100_in_well_under_a_second(
    pg_schema: PgSchema,
) -> None:
    days = [TODAY - timedelta(days=k) for k in range(100)]
    with psycopg.connect(pg_schema.conninfo, autocommit=True) as conn:
        conn.execute("SELECT bs_ensure_event_partitions(%s, %s)", (days[-1], TODAY))
        conn.autocommit = False
        _fill(conn, days, per_day=50)
        late = [as_incoming(sample_event("login", occurred_at=_at(TODAY - timedelta(days=400))))]
        write_batch(conn, split(late, SinkConfig())[0])
        assert len([d for d in _partitions(conn) if d <= TODAY]) == 100

        report = run_retention(conn, RetentionConfig(days=30, days_ahead=7), TODAY)

        assert report.seconds < 1.0, report
        assert len(report.dropped) == 69  # TODAY-99 .. TODAY-31; the cutoff day TODAY-30 stays
        kept = _partitions(conn)
        assert min(kept) == TODAY - timedelta(days=30)
        assert max(kept) == TODAY + timedelta(days=7)
        assert report.default_rows_deleted == 1
    assert count_rows(pg_schema.conninfo) == 31 * 50


def test_retention_is_idempotent(pg_schema: PgSchema) -> None:
    with psycopg.connect(pg_schema.conninfo) as conn:
        run_retention(conn, RetentionConfig(days=5, days_ahead=3), TODAY)
        again = run_retention(conn, RetentionConfig(days=5, days_ahead=3), TODAY)
    assert (again.dropped, again.created, again.default_rows_deleted) == ([], 0, 0)


def test_retention_runs_safely_beside_the_sink(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    # Rows for days whose partitions retention creates while the sink writes them.
    days = [TODAY + timedelta(days=k) for k in range(8, 14)]
    events = [
        sample_event("page_view", user_id=f"u{i % 50}", occurred_at=_at(days[i % 6]))
        for i in range(6_000)
    ]
    produce(kafka_settings, topics.events, event_records(events))
    config = SinkConfig(group_id=f"g-{uuid.uuid4().hex[:8]}", batch_max_records=200)
    with (
        running_sink(config, kafka_settings, topics, pg_schema.conninfo),
        psycopg.connect(pg_schema.conninfo) as conn,
    ):
        for k in range(6):
            run_retention(conn, RetentionConfig(days=90, days_ahead=8 + k), TODAY)
        wait_for(lambda: count_rows(pg_schema.conninfo) == len(events), what="all rows")
    assert count_rows(pg_schema.conninfo, "tableoid::regclass::text LIKE '%default'") < len(events)
