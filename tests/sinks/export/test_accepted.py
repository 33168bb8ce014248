"""Export and ``replay --to raw`` keep exactly what the raw sink stored (its accepted stream):
never an event_id twice, never a record it refused, even over a range that begins after the
first copy of a duplicated event (real services, the sink in-process, the CLI)."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import psycopg
import pytest
import typer
from confluent_kafka import Consumer, TopicPartition
from typer.testing import CliRunner

from brainstream.cli import export as export_cli
from brainstream.migrate import migrate
from schemas import encode, to_record
from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from sinks.export import ExportConfig, ExportRequest, RangeUnsettled, export, load
from tests.fixtures.samples import nul_login, sample_event
from tests.fixtures.services import PgSchema, Services
from tests.sinks.conftest import Record, count_rows, produce, running_sink, wait_for
from tests.sinks.export.helpers import events, jsonl_rows
from tests.sinks.faults import lag

pytestmark = pytest.mark.integration


def _highs(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    consumer = Consumer({**kafka.librdkafka(), "group.id": "highs"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts
        }
    finally:
        consumer.close()


def _poison() -> list[Record]:
    valid = orjson.loads(encode(sample_event("login")))
    return [
        (b"decode", b"{not json", []),
        (b"validate", orjson.dumps({**valid, "type": "no_such_type"}), []),
        (b"nul", encode(nul_login()), []),  # the contract refuses U+0000 (validate)
    ]


def _records(evs: list) -> list[Record]:  # type: ignore[type-arg]
    return [(k, v, list(h)) for k, v, h in map(to_record, evs)]


def test_export_and_replay_hold_what_the_sink_stored_and_nothing_else(
    services: Services,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    pg_schema: PgSchema,
    tmp_path: Path,
) -> None:
    first = events(300, users=7)
    produce(kafka_settings, topics.events, _records(first))
    middle = _highs(kafka_settings, topics.events)  # phase two starts here, per partition
    fresh = events(60, users=5, source="later")
    resent = first[::10]  # 30 events produced again with the same bytes, after the originals
    phase_two = _records(fresh[:30]) + _records(resent) + _poison() + _records(fresh[30:])
    produce(kafka_settings, topics.events, phase_two)
    config = SinkConfig(group_id=f"g-{uuid.uuid4().hex[:8]}", batch_max_records=64)
    with running_sink(config, kafka_settings, topics, pg_schema.conninfo):
        wait_for(lambda: lag(kafka_settings, config.group_id, topics.events) == 0, what="sink")
    stored = count_rows(pg_schema.conninfo)
    assert stored == len(first) + len(fresh)

    cli = typer.Typer()
    export_cli.register(cli)
    env = {
        "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": services.kafka.bootstrap_servers,
        "BRAINSTREAM_POSTGRES_DSN": services.postgres_dsn,
        "BRAINSTREAM_POSTGRES_SCHEMA": pg_schema.name,
        "BRAINSTREAM_TOPIC_EVENTS": topics.events,
        "BRAINSTREAM_TOPIC_ERASURES": topics.erasures,
        "BRAINSTREAM_TOPIC_ACCEPTED": topics.accepted,
        "BRAINSTREAM_EXPORT_OUTPUT_DIR": str(tmp_path),
    }
    runner = CliRunner()
    whole = runner.invoke(
        cli, ["export", "run", "all", "--format", "jsonl", "--no-progress"], env=env
    )
    assert whole.exit_code == 0, whole.output
    manifest = load(tmp_path / "all")
    ids = [r["event_id"] for r in jsonl_rows(tmp_path / "all" / "events.jsonl")]
    assert len(ids) == len(set(ids)) == stored == manifest.exported
    assert manifest.excluded.not_accepted == len(resent) + len(_poison())
    assert manifest.options["source"] == "accepted"

    # From the middle on: the re-sent copies are the only copies in range, yet left out.
    starts = [f"{p}={o}" for p, o in middle.items()]
    args = ["export", "run", "later", "--format", "jsonl", "--no-progress"]
    for item in starts:
        args += ["--start-offset", item]
    later = runner.invoke(cli, args, env=env)
    assert later.exit_code == 0, later.output
    rows = jsonl_rows(tmp_path / "later" / "events.jsonl")
    assert sorted(r["event_id"] for r in rows) == sorted(str(e.event_id) for e in fresh)

    empty = f"t_{uuid.uuid4().hex[:12]}"  # replay --to raw of that range into an empty table
    migrate(services.postgres_dsn, empty)
    try:
        args = ["replay", "--to", "raw", "--no-progress"]
        for item in starts:
            args += ["--start-offset", item]
        replayed = runner.invoke(cli, args, env={**env, "BRAINSTREAM_POSTGRES_SCHEMA": empty})
        assert replayed.exit_code == 0, replayed.output
        assert f"{len(fresh)} inserted" in replayed.output
        with psycopg.connect(services.postgres_dsn) as conn:
            got = conn.execute(f"SELECT event_id::text FROM {empty}.analytics_events").fetchall()
        assert sorted(r[0] for r in got) == sorted(str(e.event_id) for e in fresh)
    finally:
        with psycopg.connect(services.postgres_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {empty} CASCADE")


def test_a_range_the_sink_has_not_processed_is_refused_by_name(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    produce(kafka_settings, topics.events, _records(events(30)))
    config = ExportConfig(output_dir=tmp_path, stall_seconds=1.0)
    with pytest.raises(RangeUnsettled, match="not all settled by the sink"):
        export(ExportRequest(name="x"), config, kafka_settings.librdkafka(), topics, None)
    assert not (tmp_path / "x").exists()
    log = config.model_copy(update={"source": "log"})
    assert (
        export(ExportRequest(name="x"), log, kafka_settings.librdkafka(), topics, None).exported
        == 30
    )
