"""The acceptance rule on the real services: the raw table, the accepted stream (what the worker
folds) and the export from either source hold the same records at the same times: a far-future
event clamped to its broker time in all four, a record whose header contradicts its value in
none (the export from the raw log applied no rule before)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
import typer
from typer.testing import CliRunner

from brainstream.cli import export as export_cli
from schemas import encode, to_record
from schemas.acceptance import ORIGINAL_OCCURRED_AT
from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from tests.fixtures.samples import sample_event
from tests.fixtures.services import PgSchema, Services
from tests.sinks.accepted import read_accepted
from tests.sinks.conftest import Record, produce, running_sink, wait_for
from tests.sinks.export.helpers import jsonl_rows
from tests.sinks.faults import lag

pytestmark = pytest.mark.integration

Verdicts = dict[tuple[int, int], datetime]
"""(partition, offset) -> the time stored for each accepted record."""


def _records(now: datetime) -> tuple[list[Record], datetime]:
    far = now + timedelta(days=3)
    ok = [sample_event("login", user_id=f"u{i}", occurred_at=now) for i in range(6)]
    near = sample_event("search", user_id="u-near", occurred_at=now + timedelta(minutes=30))
    late = sample_event("logout", user_id="u-late", occurred_at=now - timedelta(days=300))
    ahead = sample_event("page_view", user_id="u-ahead", occurred_at=far)
    key, value, headers = to_record(sample_event("login", user_id="u-header"))
    lying = [(n, b"9" if n == "bs.schema_version" else v) for n, v in headers]
    records: list[Record] = [
        (k, v, list(h)) for k, v, h in map(to_record, [*ok, near, late, ahead])
    ]
    records += [(key, value, list(lying)), (b"u-bad", b"{not json", [])]
    unknown = orjson.loads(encode(sample_event("login", user_id="u-v99")))
    records.append((b"u-v99", orjson.dumps({**unknown, "schema_version": 99}), []))
    return records, far


def _raw(conninfo: str) -> Verdicts:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT kafka_partition, kafka_offset, occurred_at FROM analytics_events"
        ).fetchall()
    return {(p, o): at for p, o, at in rows}


def _stream(kafka: KafkaSettings, topic: str) -> Verdicts:
    out: Verdicts = {}
    for batch in read_accepted(kafka, topic):
        for offset, us in zip(batch.offsets, batch.occurred_at_us, strict=True):
            out[(batch.partition, offset)] = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
                microseconds=us
            )
    return out


def _exported(path: Path) -> tuple[Verdicts, dict[tuple[int, int], dict[str, object]]]:
    rows = jsonl_rows(path)
    key = [(r["kafka_partition"], r["kafka_offset"]) for r in rows]
    times = {k: datetime.fromisoformat(r["occurred_at"]) for k, r in zip(key, rows, strict=True)}
    return times, {k: r["properties"] for k, r in zip(key, rows, strict=True)}


def test_every_projection_accepts_and_clamps_the_same_records(
    services: Services,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    pg_schema: PgSchema,
    tmp_path: Path,
) -> None:
    records, far = _records(datetime.now(UTC).replace(microsecond=0))
    produce(kafka_settings, topics.events, records)
    config = SinkConfig(group_id=f"g-{uuid.uuid4().hex[:8]}", batch_max_records=4)
    with running_sink(config, kafka_settings, topics, pg_schema.conninfo):
        wait_for(lambda: lag(kafka_settings, config.group_id, topics.events) == 0, what="sink")

    raw = _raw(pg_schema.conninfo)
    assert len(raw) == len(records) - 3  # the header mismatch, the bad JSON, version 99
    assert _stream(kafka_settings, topics.accepted) == raw

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
    for source in ("accepted", "log"):
        args = ["export", "run", source, "--format", "jsonl", "--no-progress"]
        result = runner.invoke(cli, args, env={**env, "BRAINSTREAM_EXPORT_SOURCE": source})
        assert result.exit_code == 0, result.output
        times, properties = _exported(tmp_path / source / "events.jsonl")
        assert times == raw, source
        clamped = [k for k, p in properties.items() if ORIGINAL_OCCURRED_AT in p]
        assert len(clamped) == 1, source
        assert datetime.fromisoformat(str(properties[clamped[0]][ORIGINAL_OCCURRED_AT])) == far
        assert raw[clamped[0]] < far - timedelta(days=2)  # stored at its broker time
        manifest = json.loads((tmp_path / source / "manifest.json").read_text())
        assert manifest["exported"] == len(raw)
