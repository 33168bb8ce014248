"""The sink's commands through the real CLI: erase-user, dlq inspect/replay, retention, events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from typer.testing import CliRunner

from brainstream.cli import app
from schemas.acceptance import AcceptanceRule
from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from tests.fixtures.samples import sample_event
from tests.fixtures.services import PgSchema, Services
from tests.sinks.conftest import count_rows, event_records, produce, running_sink, wait_for

pytestmark = pytest.mark.integration


def _env(services: Services, topics: TopicSettings, pg: PgSchema) -> dict[str, str]:
    return {
        "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": services.kafka.bootstrap_servers,
        "BRAINSTREAM_POSTGRES_DSN": services.postgres_dsn,
        "BRAINSTREAM_POSTGRES_SCHEMA": pg.name,
        "BRAINSTREAM_TOPIC_EVENTS": topics.events,
        "BRAINSTREAM_TOPIC_DLQ": topics.dlq,
        "BRAINSTREAM_TOPIC_ERASURES": topics.erasures,
    }


def _group() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


def _erasures(kafka: KafkaSettings, topic: str) -> list[tuple[object, dict[str, str]]]:
    consumer = Consumer({**kafka.librdkafka(), "group.id": _group()})
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[tuple[object, dict[str, str]]] = []
    try:
        while (msg := consumer.poll(5.0)) is not None:
            found.append((msg.key(), json.loads(msg.value() or b"null")))
    finally:
        consumer.close()
    return found


def test_erase_user_deletes_rows_and_aggregates_records_and_publishes(
    services: Services, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    events = [sample_event("login", user_id=u) for u in ("gone", "kept", "gone")]
    produce(services.kafka, topics.events, event_records(events))
    with running_sink(SinkConfig(group_id=_group()), services.kafka, topics, pg_schema.conninfo):
        wait_for(lambda: count_rows(pg_schema.conninfo) == 3)
    with psycopg.connect(pg_schema.conninfo) as conn:
        conn.execute(
            "INSERT INTO agg_user_days VALUES"
            " ('gone', 'login', current_date, array_fill(0, ARRAY[24]), 2, now(), now()),"
            " ('kept', 'login', current_date, array_fill(0, ARRAY[24]), 1, now(), now())"
        )
    runner = CliRunner()
    env = _env(services, topics, pg_schema)
    first = runner.invoke(app, ["erase-user", "gone", "--reason", "request"], env=env)
    assert first.exit_code == 0, first.output
    assert "2 raw row(s) deleted" in first.output
    again = runner.invoke(app, ["erase-user", "gone"], env=env)
    assert again.exit_code == 0 and "already erased" in again.output
    with psycopg.connect(pg_schema.conninfo) as conn:
        users = conn.execute("SELECT DISTINCT user_id FROM agg_user_days").fetchall()
        erased = conn.execute("SELECT user_id, reason FROM erased_users").fetchall()
    assert users == [("kept",)] and erased == [("gone", "request")]
    assert count_rows(pg_schema.conninfo, "user_id = 'gone'") == 0
    published = _erasures(services.kafka, topics.erasures)
    assert [k for k, _ in published] == [b"gone", b"gone"]
    assert published[0][1]["user_id"] == "gone"


def test_dlq_inspect_and_replay_resubmit_what_now_passes(
    services: Services, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    future = sample_event("logout", occurred_at=datetime.now(UTC) + timedelta(days=10))
    produce(services.kafka, topics.events, [*event_records([future]), (b"k", b"not json", [])])
    strict = SinkConfig(group_id=_group(), acceptance=AcceptanceRule(future_policy="reject"))
    with running_sink(strict, services.kafka, topics, pg_schema.conninfo) as sink:
        wait_for(lambda: sink.metrics.batches._value.get() >= 1)
    runner, env = CliRunner(), _env(services, topics, pg_schema)
    shown = runner.invoke(app, ["dlq", "inspect", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    letters = [json.loads(line) for line in shown.output.splitlines()]
    assert sorted(d["stage"] for d in letters) == ["decode", "validate"]
    assert {d["error.class"] for d in letters} == {"FutureTimestamp", "InvalidEvent"}

    # The operator "fixes" the policy (clamp), then re-submits: only the decodable one goes.
    replay = runner.invoke(app, ["dlq", "replay"], env=env)
    assert replay.exit_code == 0, replay.output
    assert "re-submitted 1, still invalid 1" in replay.output
    once_only = runner.invoke(app, ["dlq", "replay"], env=env)
    assert "read 0" in once_only.output
    with running_sink(
        SinkConfig(group_id=strict.group_id), services.kafka, topics, pg_schema.conninfo
    ):
        wait_for(lambda: count_rows(pg_schema.conninfo) == 1, what="resubmitted event stored")


def test_retention_and_events_commands(
    services: Services, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    now = datetime.now(UTC)
    events = [
        sample_event("search", user_id="u1", occurred_at=now - timedelta(minutes=i))
        for i in range(5)
    ]
    produce(services.kafka, topics.events, event_records(events))
    with running_sink(SinkConfig(group_id=_group()), services.kafka, topics, pg_schema.conninfo):
        wait_for(lambda: count_rows(pg_schema.conninfo) == 5)
    runner, env = CliRunner(), _env(services, topics, pg_schema)
    retention = runner.invoke(
        app, ["retention", "run", "--days", "2", "--days-ahead", "9"], env=env
    )
    assert retention.exit_code == 0 and "dropped 1 partition(s)" in retention.output, (
        retention.output
    )
    page = runner.invoke(app, ["events", "timeline", "u1", "--limit", "3"], env=env)
    assert page.exit_code == 0 and page.output.count(" search ") == 3
    cursor = page.output.split("--after ")[1].strip()
    rest = runner.invoke(app, ["events", "timeline", "u1", "--after", cursor], env=env)
    assert rest.output.count(" search ") == 2
    counts = runner.invoke(app, ["events", "counts", "--hours", "1"], env=env)
    assert counts.output.split() == ["search", "5"]
