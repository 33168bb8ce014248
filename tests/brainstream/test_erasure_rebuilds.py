"""Erasure survives every rebuild and lives on nowhere (issue 17 item 6), on the real Kafka
and Postgres, through the commands an operator runs.

The live sink stores the log and forwards what it stored to the accepted stream; then erase-user
E, then disaster recovery into a fresh schema (``db migrate``): ``replay --to raw``,
``replay --to aggregates`` and ``export run`` hold no trace of E; ``dlq inspect`` does not show
E's dead letter and ``dlq replay`` does not re-publish it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql
from psycopg.conninfo import make_conninfo
from typer.testing import CliRunner

from brainstream.cli import app
from brainstream.migrate import migrate
from schemas import FieldError, encode
from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from sinks.dlq import DeadLetters, DlqContext
from sinks.records import Rejection
from tests.fixtures.services import PgSchema, Services
from tests.sinks.conftest import count_rows, message, running_sink, wait_for
from tests.sinks.export.helpers import events, produce

pytestmark = pytest.mark.integration
ERASED = "user-3"


@pytest.fixture
def fresh(services: Services) -> Iterator[PgSchema]:
    """A second schema, migrated as ``brainstream db migrate`` does after a disaster."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    migrate(services.postgres_dsn, name)
    yield PgSchema(name, make_conninfo(services.postgres_dsn, options=f"-c search_path={name}"))
    with psycopg.connect(services.postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def _env(services: Services, topics: TopicSettings, pg: PgSchema, out: Path) -> dict[str, str]:
    return {
        "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": services.kafka.bootstrap_servers,
        "BRAINSTREAM_POSTGRES_DSN": services.postgres_dsn,
        "BRAINSTREAM_POSTGRES_SCHEMA": pg.name,
        "BRAINSTREAM_TOPIC_EVENTS": topics.events,
        "BRAINSTREAM_TOPIC_DLQ": topics.dlq,
        "BRAINSTREAM_TOPIC_ERASURES": topics.erasures,
        "BRAINSTREAM_TOPIC_ACCEPTED": topics.accepted,
        "BRAINSTREAM_EXPORT_OUTPUT_DIR": str(out),
    }


def _traces(conninfo: str, user: str) -> dict[str, int]:
    """Rows naming ``user`` in every table of the schema with a ``user_id`` column (but the
    record of the erasure itself)."""
    found: dict[str, int] = {}
    with psycopg.connect(conninfo) as conn:
        tables = conn.execute(  # top-level tables only: a partition's rows are its parent's
            "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE a.attname = 'user_id'"
            " AND n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
            " AND NOT c.relispartition AND c.relname <> 'erased_users'"
        ).fetchall()
        for (table,) in tables:
            query = sql.SQL("SELECT count(*) FROM {} WHERE user_id = %s").format(
                sql.Identifier(table)
            )
            row = conn.execute(query, (user,)).fetchone()
            if row and row[0]:
                found[table] = row[0]
    return found


def _dead_letter(kafka: KafkaSettings, topics: TopicSettings, user: str) -> None:
    """A dead letter of ``user`` at the persist stage whose record passes the contract now, as
    the sink writes one (so ``dlq replay`` would re-publish it)."""
    event = events(1, users=1)[0].model_copy(update={"user_id": user, "event_id": uuid.uuid4()})
    origin = message(encode(event), key=user.encode(), topic=topics.events, offset=7)
    error = FieldError("<row>", "22P05", "rejected by the database")
    letters = DeadLetters(kafka.librdkafka(), topics.dlq, DlqContext("g", "test"))
    letters.send(Rejection(origin, "persist", "UntranslatableCharacter", (error,)))
    letters.flush()
    letters.close()


def _end_offsets(kafka: KafkaSettings, topic: str) -> int:
    consumer = Consumer({**kafka.librdkafka(), "group.id": "erasure-test"})
    try:
        parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts
        )
    finally:
        consumer.close()


def test_erase_then_every_rebuild_into_a_fresh_schema_and_the_dlq_hold_no_trace(
    services: Services,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    pg_schema: PgSchema,
    fresh: PgSchema,
    tmp_path: Path,
) -> None:
    produced = events(300, users=10)
    produce(kafka_settings, topics.events, produced)
    _dead_letter(kafka_settings, topics, ERASED)
    _dead_letter(kafka_settings, topics, "user-4")
    runner = CliRunner()
    old = _env(services, topics, pg_schema, tmp_path / "old")
    config = SinkConfig(group_id=f"g-{uuid.uuid4().hex[:8]}", batch_max_seconds=0.1)
    with running_sink(config, kafka_settings, topics, pg_schema.conninfo):
        wait_for(lambda: count_rows(pg_schema.conninfo) == len(produced), what="sink")
    assert _traces(pg_schema.conninfo, ERASED) == {"analytics_events": 30}

    erased = runner.invoke(app, ["erase-user", ERASED], env=old)
    assert erased.exit_code == 0, erased.output
    assert _traces(pg_schema.conninfo, ERASED) == {}

    # disaster recovery: a fresh schema knows no erasure; the compacted topic does
    env = _env(services, topics, fresh, tmp_path / "out")
    raw = runner.invoke(app, ["replay", "--to", "raw", "--no-progress"], env=env)
    assert raw.exit_code == 0, raw.output
    assert "270 inserted" in raw.output and "30 erased" in raw.output, raw.output
    aggregates = runner.invoke(app, ["replay", "--to", "aggregates", "--no-progress"], env=env)
    assert aggregates.exit_code == 0, aggregates.output
    exported = runner.invoke(app, ["export", "run", "dr", "--no-progress"], env=env)
    assert exported.exit_code == 0, exported.output
    assert _traces(fresh.conninfo, ERASED) == {}
    with psycopg.connect(fresh.conninfo) as conn:
        users = {r[0] for r in conn.execute("SELECT DISTINCT user_id FROM analytics_events")}
        known = conn.execute("SELECT user_id FROM erased_users").fetchall()
    assert users == {f"user-{i}" for i in range(10)} - {ERASED}
    assert known == [(ERASED,)]  # so the live sink, restarted on it, drops E's events too
    dataset = tmp_path / "out" / "dr"
    rows = pq.read_table(dataset / "events.parquet").to_pylist()
    assert len(rows) == 270 and ERASED not in {r["user_id"] for r in rows}
    typed = [r for f in dataset.glob("*.typed.parquet") for r in pq.read_table(f).to_pylist()]
    assert len(typed) == 270 and ERASED not in {r["user_id"] for r in typed}

    inspected = runner.invoke(app, ["dlq", "inspect", "--json"], env=env)
    assert inspected.exit_code == 0, inspected.output
    letters = [json.loads(line) for line in inspected.output.splitlines() if line.startswith("{")]
    assert len(letters) == 1 and letters[0]["stage"] == "persist"

    before = _end_offsets(kafka_settings, topics.events)
    replayed = runner.invoke(app, ["dlq", "replay"], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert "re-submitted 1" in replayed.output and "of erased users 1" in replayed.output
    assert _end_offsets(kafka_settings, topics.events) == before + 1  # user-4's only
