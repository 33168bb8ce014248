"""Export against the real broker and database: content, order, determinism, erasure, privacy."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
import zstandard
from confluent_kafka import TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from pydantic import SecretStr

import schemas
from eventlog.ranges import epoch_ms
from schemas.config import KafkaSettings, TopicSettings
from sinks.export import (
    ExportConfig,
    ExportRequest,
    Filters,
    LogRange,
    Manifest,
    RecordsGone,
    export,
    load,
)
from sinks.export.dataset import PARTIAL_SUFFIX
from sinks.export.typed import file_name
from sinks.replay import replay_to_raw
from tests.fixtures.services import PgSchema
from tests.sinks.export.helpers import (
    T0,
    comparable,
    events,
    expected,
    jsonl_rows,
    parquet_rows,
    produce,
    produce_raw,
    reader,
)

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


def run(
    kafka: KafkaSettings,
    topics: TopicSettings,
    pg: PgSchema,
    out: Path,
    name: str,
    **request: object,
) -> Manifest:
    config = ExportConfig(
        output_dir=out,
        row_group_rows=1_000,
        pseudonym_key=SecretStr("test-key-not-secret"),
        stall_seconds=20,
        source="log",  # no sink ran: the log as it is (the accepted source: test_accepted.py)
    )
    req = ExportRequest.model_validate({"name": name, **request})
    return export(req, config, kafka.librdkafka(), topics, pg.conninfo)


def test_export_equals_what_was_produced_in_both_formats(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    produced = events(3_000)
    produce(kafka_settings, topics.events, produced)
    manifest = run(
        kafka_settings, topics, pg_schema, tmp_path, "all",
        formats=["parquet", "jsonl"], jsonl_compression="zstd",
    )  # fmt: skip

    dataset = tmp_path / "all"
    assert load(dataset) == manifest
    by_type = Counter(e.type for e in produced)
    typed = sorted(file_name(t) for t in by_type)
    assert sorted(p.name for p in dataset.iterdir()) == sorted(
        ["events.jsonl.zst", "events.parquet", "manifest.json", *typed]
    )
    from_parquet = parquet_rows(dataset / "events.parquet")
    with zstandard.open(dataset / "events.jsonl.zst", "rt") as handle:
        (dataset / "plain.jsonl").write_text(handle.read())
    from_jsonl = jsonl_rows(dataset / "plain.jsonl")
    want = sorted((expected(e) for e in produced), key=lambda r: r["event_id"])
    for rows in (from_parquet, from_jsonl):
        assert sorted(map(comparable, rows), key=lambda r: r["event_id"]) == want
        positions = [(r["kafka_partition"], r["kafka_offset"]) for r in rows]
        assert positions == sorted(positions)
    _assert_per_user_order(from_parquet, produced)
    for event_type in by_type:  # each typed file: that type's rows, properties as a struct
        typed_rows = pq.read_table(dataset / file_name(event_type)).to_pylist()
        untyped = [r for r in from_parquet if r["type"] == event_type]
        assert [r["event_id"] for r in typed_rows] == [r["event_id"] for r in untyped]
        for row, plain in zip(typed_rows, untyped, strict=True):
            props = {k: v for k, v in row["properties"].items() if v is not None}
            assert props == json.loads(str(plain["properties"]))

    assert manifest.records_read == manifest.exported == 3_000
    assert manifest.counts_by_type == dict(sorted(Counter(e.type for e in produced).items()))
    assert manifest.schema_versions == {  # every produced event was at its type's latest
        name: {str(schemas.REGISTRY.latest(name)): n} for name, n in manifest.counts_by_type.items()
    }
    assert [(p.partition, p.start_offset) for p in manifest.partitions] == [(0, 0), (1, 0), (2, 0)]
    assert sum(p.end_offset for p in manifest.partitions) == 3_000
    assert {f.name: f.rows for f in manifest.files} == {
        "events.parquet": 3_000,
        "events.jsonl.zst": 3_000,
        **{file_name(t): n for t, n in by_type.items()},
    }


def _assert_per_user_order(rows: list[dict[str, object]], produced: list[object]) -> None:
    produced_order: dict[str, list[str]] = {}
    for event in produced:
        produced_order.setdefault(event.user_id, []).append(str(event.event_id))  # type: ignore[attr-defined]
    exported_order: dict[str, list[str]] = {}
    for row in rows:
        exported_order.setdefault(str(row["user_id"]), []).append(str(row["event_id"]))
    assert exported_order == produced_order


def test_same_inputs_give_byte_identical_files_and_hash(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    produce(kafka_settings, topics.events, events(2_500))
    options = {"formats": ["parquet", "jsonl"], "jsonl_compression": "gzip"}
    first = run(kafka_settings, topics, pg_schema, tmp_path, "a", **options)
    second = run(kafka_settings, topics, pg_schema, tmp_path, "b", **options)

    assert first.content_hash == second.content_hash
    names = [f.name for f in first.files]
    assert len(names) > 2 and names == [f.name for f in second.files]
    for name in names:  # events.parquet, events.jsonl.gz and every typed file
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with gzip.open(tmp_path / "a" / "events.jsonl.gz", "rt") as handle:
        assert len(handle.read().splitlines()) == 2_500


def test_erased_users_are_left_out_and_counted(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    produced = events(1_000, users=10)
    produce(kafka_settings, topics.events, produced)
    with psycopg.connect(pg_schema.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO erased_users (user_id) VALUES ('user-3')")
    erasures = [(b"user-7", b'{"user_id":"user-7"}', []), (b"user-8", b"{}", [])]
    erasures.append((b"user-8", None, []))  # a tombstone withdraws the topic's entry
    produce_raw(kafka_settings, topics.erasures, erasures)

    manifest = run(kafka_settings, topics, pg_schema, tmp_path, "erased", formats=["jsonl"])
    rows = jsonl_rows(tmp_path / "erased" / "events.jsonl")

    users = {r["user_id"] for r in rows}
    assert "user-3" not in users and "user-7" not in users and "user-8" in users
    gone = sum(1 for e in produced if e.user_id in ("user-3", "user-7"))
    assert manifest.excluded.erased == gone == 200
    assert manifest.exported == len(rows) == 800
    assert b"user-3" not in (tmp_path / "erased" / "events.jsonl").read_bytes()


def test_pseudonymised_export_holds_no_raw_user_id(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    produced = events(600, users=12)
    produce(kafka_settings, topics.events, produced)
    config = ExportConfig(
        output_dir=tmp_path,
        parquet_compression="none",
        pseudonym_key=SecretStr("k1"),
        row_group_rows=1_000,
        source="log",
    )
    request = ExportRequest(
        name="pseudo",
        formats=("parquet", "jsonl"),
        pseudonymise=True,
        filters=Filters(user_ids=frozenset({"user-1", "user-2", "user-11"})),
    )
    manifest = export(request, config, kafka_settings.librdkafka(), topics, pg_schema.conninfo)

    assert manifest.exported == 150 and manifest.pseudonym_key_fingerprint
    blobs = [p.read_bytes() for p in (tmp_path / "pseudo").iterdir()]
    for user in {e.user_id for e in produced}:
        assert not any(user.encode() in blob for blob in blobs), user
    rows = parquet_rows(tmp_path / "pseudo" / "events.parquet")
    by_user = Counter(r["user_id"] for r in rows)
    assert len(by_user) == 3 and set(by_user.values()) == {50}
    assert sorted(by_user) == manifest.filters.user_ids
    assert [r["user_id"] for r in jsonl_rows(tmp_path / "pseudo" / "events.jsonl")] == [
        r["user_id"] for r in rows
    ]


def test_time_range_offsets_and_filters(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    # The producer sets each record's time: the topic takes CreateTime (brainstream's events
    # topic uses the broker's LogAppendTime, which would replace them).
    resource = ConfigResource(
        ResourceType.TOPIC,
        topics.events,
        incremental_configs=[
            ConfigEntry(
                "message.timestamp.type",
                "CreateTime",
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    admin = AdminClient(kafka_settings.librdkafka())
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
    # Record timestamps well inside the topic's retention (older ones may be deleted any time).
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    batches = [events(300, start=T0 + timedelta(hours=h)) for h in range(3)]
    for hour, batch in enumerate(batches):
        produce(kafka_settings, topics.events, batch, timestamp_ms=epoch_ms(start) + hour * HOUR_MS)
    produce_raw(kafka_settings, topics.events, [(b"user-1", b"{not json", [])])

    middle = run(
        kafka_settings, topics, pg_schema, tmp_path, "middle",
        range=LogRange(since=start + timedelta(hours=1), until=start + timedelta(hours=2)),
        formats=["jsonl"],
    )  # fmt: skip
    rows = jsonl_rows(tmp_path / "middle" / "events.jsonl")
    assert {r["event_id"] for r in rows} == {str(e.event_id) for e in batches[1]}
    assert middle.records_read == 300 and middle.range.kind == "time"

    tail = run(
        kafka_settings, topics, pg_schema, tmp_path, "tail",
        range=LogRange(since=start + timedelta(hours=2)), formats=["jsonl"],
        filters=Filters(event_types=frozenset({"login", "search"}), sources=frozenset({"tests"})),
    )  # fmt: skip
    assert tail.records_read == 301 and tail.excluded.undecodable == 1
    assert tail.exported == 60 and tail.excluded.filtered == 240
    assert set(tail.counts_by_type) == {"login", "search"}

    starts = {p.partition: p.start_offset for p in middle.partitions}
    ends = {p.partition: p.end_offset for p in middle.partitions}
    again = run(
        kafka_settings, topics, pg_schema, tmp_path, "offsets",
        range=LogRange(start_offsets=starts, end_offsets=ends), formats=["jsonl"],
    )  # fmt: skip
    assert again.content_hash == middle.content_hash
    assert not list(tmp_path.glob(f"*{PARTIAL_SUFFIX}"))


class DeleteRecordsOnStart:
    """Progress hook: once the range is planned, the head of every partition is deleted (as
    retention would do), before a single record is read."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self._admin = AdminClient(kafka.librdkafka())
        self._topic = topic

    def start(self, total: int) -> None:
        doomed = [TopicPartition(self._topic, p, 10) for p in range(3)]
        for future in self._admin.delete_records(doomed).values():
            future.result(30)

    def advance(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def test_records_deleted_after_planning_fail_the_export(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    produce(kafka_settings, topics.events, events(300))
    config = ExportConfig(output_dir=tmp_path, source="log")
    request = ExportRequest(name="gone")
    hook = DeleteRecordsOnStart(kafka_settings, topics.events)
    with pytest.raises(RecordsGone) as caught:
        export(request, config, kafka_settings.librdkafka(), topics, None, progress=hook)
    assert (caught.value.partition, caught.value.offset) == (0, 0)
    assert list(tmp_path.iterdir()) == []


def test_a_replay_skips_and_counts_records_deleted_meanwhile(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    produce(kafka_settings, topics.events, events(300))
    hook = DeleteRecordsOnStart(kafka_settings, topics.events)
    with reader(kafka_settings, topics, ExportConfig(), skip_deleted=True) as log_reader:
        result = replay_to_raw(log_reader, LogRange(), pg_schema.conninfo, progress=hook)
    assert (result.read, result.inserted, result.skipped) == (270, 270, 30)
