"""A topic holding several versions of a type, end to end on the real broker and database: the
SDK produces page_view v1, v2 is deployed (a new required field with an upcaster), the SDK
produces v2 (and a service pinned to v1 keeps producing v1), github_api_call (a custom type
loaded through the entry point) is on the topic at v1, v2 and v3. A sink replaying the topic
from offset 0 stores every event once, as written; the export holds every event in its type's
latest shape; a record of an unknown version goes to the DLQ by name and its neighbours are
stored. A worker folding the sink's accepted stream counts every event once whatever its
version (it reads no property, so it needs no upcaster and no deploy of v2), ``aggregates
verify`` finds no difference, and ``replay --to aggregates`` rebuilds the same tables."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pyarrow.parquet as pq
import pytest

import schemas
from producers.tracker import Tracker
from schemas import encode
from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from sinks.dlq_admin import inspect
from sinks.export import ExportConfig, ExportRequest, LogRange, export
from sinks.export.typed import file_name
from sinks.replay import replay_to_raw
from tests.fixtures.samples import OLDER_PROPERTIES, samples_of
from tests.fixtures.services import PgSchema, Services
from tests.schemas.test_versions import PageViewV2, _v1_to_v2
from tests.sinks.conftest import count_rows, event_records, produce, running_sink, wait_for
from tests.sinks.export.helpers import reader
from tests.streams.helpers import REPO, WorkerEnv, end_offsets, stop, wait_caught_up

pytestmark = pytest.mark.integration

V1_EVENTS = 60
V2_EVENTS = 40
PINNED_V1 = 10


def _config() -> SinkConfig:
    return SinkConfig.model_validate(
        {
            "group_id": f"g-{uuid.uuid4().hex[:8]}",
            "batch_max_records": 25,
            "batch_max_seconds": 0.1,
            "session_timeout_ms": 6_000,
        }
    )


def _tracker(kafka: KafkaSettings, topics: TopicSettings, tmp: Path, **options: Any) -> Tracker:
    return Tracker(
        kafka,
        topic=topics.events,
        source="web",
        spool_dir=tmp / uuid.uuid4().hex,
        prometheus=False,
        strict=True,
        **options,
    )


def _rows(conninfo: str) -> list[dict[str, Any]]:
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.row_factory = psycopg.rows.dict_row  # type: ignore[assignment]
        return list(
            cur.execute(
                "SELECT event_id::text AS event_id, event_type, schema_version, properties"
                " FROM analytics_events"
            )
        )


def _aggregates(conninfo: str) -> dict[str, list[str]]:
    """Every row of every live aggregate table, as text, in a stable order."""
    with psycopg.connect(conninfo) as conn:
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND tablename LIKE 'agg\\_%%' AND tablename NOT LIKE '%%\\_rebuilt'"
            )
        ]
        return {
            t: [str(r[0]) for r in conn.execute(f"SELECT r::text FROM {t} r ORDER BY 1")]
            for t in sorted(tables)
        }


def _cli(env: WorkerEnv, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "brainstream.cli", *args],
        env=env.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_a_mixed_version_topic_replays_from_zero_and_exports_in_the_latest_shape(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    pg_schema: PgSchema,
    services: Services,
    tmp_path: Path,
) -> None:
    # --- before the deploy: page_view v1 from the SDK, github_api_call v1 to v3 ----------
    assert schemas.REGISTRY.latest("page_view") == 1
    v1_ids: dict[str, int] = {}
    tracker = _tracker(kafka_settings, topics, tmp_path)
    for i in range(V1_EVENTS):
        event_id = tracker.track("page_view", f"user-{i % 7}", path=f"/p/{i}", duration_ms=i)
        assert event_id is not None
        v1_ids[event_id] = i
    assert tracker.flush(30) == 0
    tracker.close()
    github = [e for v in (1, 2, 3) for e in samples_of("github_api_call", v)]
    produce(kafka_settings, topics.events, event_records(github))
    with running_sink(_config(), kafka_settings, topics, pg_schema.conninfo):
        wait_for(lambda: count_rows(pg_schema.conninfo) == V1_EVENTS + len(github), what="v1")

    with schemas.REGISTRY.overlay() as registry:
        # --- the deploy: page_view v2 and its upcaster, consumers first ----------------
        registry.register(PageViewV2)
        registry.upcaster("page_view", 1)(_v1_to_v2)
        v2_surface: dict[str, str] = {}
        pinned_ids: set[str] = set()
        tracker = _tracker(kafka_settings, topics, tmp_path)
        pinned = _tracker(kafka_settings, topics, tmp_path, schema_versions={"page_view": 1})
        for i in range(V2_EVENTS):
            surface = ("web", "ios", "android")[i % 3]
            event_id = tracker.track("page_view", f"user-{i % 7}", path="/v2", surface=surface)
            assert event_id is not None
            v2_surface[event_id] = surface
            if i == V2_EVENTS // 2:  # a record of a version nobody registered, mid-stream
                data = {"user_id": "u-1", "source": "web", "properties": {"path": "/x"}}
                poison = orjson.loads(encode(registry.build("page_view", data, 1)))
                poison["schema_version"] = 99
                produce(kafka_settings, topics.events, [(b"u", orjson.dumps(poison), [])])
        for i in range(PINNED_V1):
            event_id = pinned.track("page_view", "user-old", path=f"/old/{i}")
            assert event_id is not None
            pinned_ids.add(event_id)
        for t in (tracker, pinned):
            assert t.flush(30) == 0
            t.close()
        total = V1_EVENTS + len(github) + V2_EVENTS + PINNED_V1

        # --- replay everything from offset 0 (a new consumer group) --------------------
        config = _config()
        with running_sink(config, kafka_settings, topics, pg_schema.conninfo) as sink:
            wait_for(lambda: count_rows(pg_schema.conninfo) == total, what="all rows")
            wait_for(
                lambda: (
                    sum(
                        s.value
                        for m in sink.metrics.dlq.collect()
                        for s in m.samples
                        if s.name.endswith("_total")
                    )
                    >= 1
                ),
                what="the dead letter",
            )
        rows = _rows(pg_schema.conninfo)
        assert len(rows) == len({r["event_id"] for r in rows}) == total
        versions = Counter((r["event_type"], r["schema_version"]) for r in rows)
        assert versions == {
            ("page_view", 1): V1_EVENTS + PINNED_V1,
            ("page_view", 2): V2_EVENTS,
            ("github_api_call", 1): len(OLDER_PROPERTIES[("github_api_call", 1)]),
            ("github_api_call", 2): len(OLDER_PROPERTIES[("github_api_call", 2)]),
            ("github_api_call", 3): 1,
        }
        by_id = {r["event_id"]: r for r in rows}
        for event_id, i in v1_ids.items():  # stored as written: no surface, v1
            assert by_id[event_id]["properties"] == {"path": f"/p/{i}", "duration_ms": i}
        for event_id, surface in v2_surface.items():
            assert by_id[event_id]["properties"] == {"path": "/v2", "surface": surface}

        letters = inspect(kafka_settings.librdkafka(), topics.dlq)
        assert len(letters) == 1  # only the unknown version: 0 dead letters among the rest
        assert letters[0].info["error.class"] == "UnknownSchemaVersion"
        assert [(e["field"], e["rule"]) for e in letters[0].errors] == [
            ("schema_version", "unknown_schema_version")
        ]

        # --- replay --to raw gives the same table ---------------------------------------
        export_config = ExportConfig(output_dir=tmp_path / "exports")
        with reader(kafka_settings, topics, export_config) as log_reader:
            replayed = replay_to_raw(log_reader, LogRange(), pg_schema.conninfo)
        assert (replayed.read, replayed.inserted, replayed.rejected) == (total + 1, 0, 1)
        assert count_rows(pg_schema.conninfo) == total

        # --- the export: every event in the latest shape ------------------------------
        kafka = kafka_settings.librdkafka()
        request = ExportRequest(name="latest", formats=("parquet", "jsonl"))
        manifest = export(request, export_config, kafka, topics, pg_schema.conninfo)
        as_written = export(
            request.model_copy(update={"name": "written", "as_written": True}),
            export_config,
            kafka,
            topics,
            pg_schema.conninfo,
        )
    assert schemas.REGISTRY.latest("page_view") == 1  # the deploy was this test's only

    assert manifest.exported == as_written.exported == total
    page_views = V1_EVENTS + PINNED_V1 + V2_EVENTS
    # the unknown version was dead-lettered, so the sink's accepted stream leaves it out
    assert manifest.excluded.not_accepted == 1 and manifest.excluded.not_upcast == 0
    read = {
        "page_view": {"1": V1_EVENTS + PINNED_V1, "2": V2_EVENTS},
        "github_api_call": {"1": 2, "2": 1, "3": 1},
    }
    assert manifest.schema_versions == as_written.schema_versions == read
    assert manifest.shape == "latest" and as_written.shape == "as_written"
    assert {t: s.schema_version for t, s in manifest.types.items()} == {
        "page_view": 2,
        "github_api_call": 3,
    }
    page_view_schema = manifest.types["page_view"].properties_schema
    assert "surface" in page_view_schema["required"]  # type: ignore[operator]

    exported = pq.read_table(export_config.output_dir / "latest" / "events.parquet").to_pylist()
    assert len(exported) == total
    for row in exported:
        props = json.loads(row["properties"])
        event_id = row["event_id"]
        if row["type"] == "page_view":
            assert row["schema_version"] == 2
            if event_id in v1_ids:
                i = v1_ids[event_id]
                assert props == {"path": f"/p/{i}", "duration_ms": i, "surface": "web"}
            elif event_id in pinned_ids:
                assert props["surface"] == "web" and props["path"].startswith("/old/")
            else:
                assert props == {"path": "/v2", "surface": v2_surface[event_id]}
        else:
            assert row["schema_version"] == 3
            assert {"method", "resource"} <= set(props) and "duration_ms" not in props
    # the typed file of page_view: one schema, v2's, with surface filled in for v1 events
    typed = pq.read_table(export_config.output_dir / "latest" / file_name("page_view"))
    assert typed.schema.field("properties").type.get_field_index("surface") >= 0
    surfaces = {r["event_id"]: r["properties"]["surface"] for r in typed.to_pylist()}
    assert len(surfaces) == page_views
    assert all(surfaces[i] == "web" for i in (*v1_ids, *pinned_ids))
    assert all(surfaces[i] == s for i, s in v2_surface.items())
    written_files = {f.name for f in as_written.files}
    assert written_files == {"events.parquet", "events.jsonl"}  # versions differ: no typed file
    written = pq.read_table(export_config.output_dir / "written" / "events.parquet").to_pylist()
    assert sorted(
        (r["event_id"], r["schema_version"], json.loads(r["properties"])) for r in written
    ) == sorted((r["event_id"], r["schema_version"], r["properties"]) for r in rows)

    # --- the worker: the accepted stream holds both versions (forwarded twice: by the first
    # sink and by the replay from offset 0); each event is counted once -------------------
    env = WorkerEnv(
        services.kafka, services.postgres_dsn, pg_schema.name, topics, f"w-{uuid.uuid4().hex[:8]}"
    )
    env.log_dir = tmp_path
    worker = env.start(tmp_path / "worker.log")
    try:
        target = end_offsets(kafka_settings, topics.events, topics.events_partitions)
        wait_caught_up(pg_schema.conninfo, topics.events, target, timeout=120)
    finally:
        stop(worker)
    with psycopg.connect(pg_schema.conninfo) as conn:
        counted = conn.execute("SELECT sum(event_count) FROM agg_user_days").fetchone()
        by_type = dict(
            conn.execute(
                "SELECT event_type, sum(event_count)::int FROM agg_type_buckets"
                " WHERE granularity = 'day' GROUP BY 1"
            ).fetchall()
        )
    assert counted == (total,)
    assert by_type == {"page_view": page_views, "github_api_call": len(github)}
    assert "zero differences" in _cli(env, "aggregates", "verify")

    # --- replay --to aggregates (from the accepted stream) rebuilds the same tables -------
    live = _aggregates(pg_schema.conninfo)
    assert live and all(live.values())
    _cli(env, "replay", "--to", "aggregates", "--no-progress")
    assert _aggregates(pg_schema.conninfo) == live
    assert "zero differences" in _cli(env, "aggregates", "verify")
