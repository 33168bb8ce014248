"""The sink end to end on the real broker and database: poison pills, replay, erasure, metrics."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import psycopg
import pytest

from schemas import MAX_EVENT_BYTES, encode
from schemas.acceptance import ORIGINAL_OCCURRED_AT
from schemas.config import KafkaSettings, TopicSettings
from schemas.http import serve
from sinks.config import SinkConfig
from sinks.dlq_admin import inspect
from sinks.erasure import erase_user
from tests.fixtures.samples import sample_event, sample_events
from tests.fixtures.services import PgSchema
from tests.sinks.conftest import (
    Record,
    count_rows,
    event_records,
    produce,
    running_sink,
    wait_for,
)

pytestmark = pytest.mark.integration
EVIL = "'); DROP TABLE analytics_events; --"


def _config(**overrides: object) -> SinkConfig:
    base: dict[str, object] = {
        "group_id": f"g-{uuid.uuid4().hex[:8]}",
        "batch_max_records": 40,
        "batch_max_seconds": 0.1,
        "session_timeout_ms": 6_000,
    }
    return SinkConfig.model_validate({**base, **overrides})


def _poison() -> list[Record]:
    valid = orjson.loads(encode(sample_event("login")))
    bad = {
        "not-json": b"\x00\xffnot json",
        "unknown-type": orjson.dumps({**valid, "type": "no_such_type"}),
        "wrong-types": orjson.dumps({**valid, "schema_version": "one", "user_id": 7}),
        "oversize": b"{" + b" " * MAX_EVENT_BYTES + b"}",
        "naive-time": orjson.dumps({**valid, "occurred_at": "2026-03-01T12:00:00"}),
        "empty": b"",
        "nul": orjson.dumps({**valid, "properties": {"method": "sso", "provider": "a\u0000b"}}),
    }
    return [(name.encode(), value, [("bs.test", name.encode())]) for name, value in bad.items()]


def _valid_events(n: int) -> list:  # type: ignore[type-arg]
    events = []
    for i in range(n):
        events += sample_events(user_id=f"user-{i % 17}")
    return events


def test_poison_pills_go_to_the_dlq_and_every_valid_event_is_stored_once(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    valid = _valid_events(30)
    valid.append(sample_event("login", properties={"method": "sso", "provider": EVIL}))
    poison = _poison()
    records = event_records(valid)
    mixed = records[:100] + poison[:4] + records[100:200] + poison[4:] + records[200:]
    produce(kafka_settings, topics.events, mixed)
    config = _config()
    with running_sink(config, kafka_settings, topics, pg_schema.conninfo) as sink:
        wait_for(lambda: count_rows(pg_schema.conninfo) >= len(valid), what="rows")
        wait_for(
            lambda: (
                sum(
                    s.value
                    for m in sink.metrics.dlq.collect()
                    for s in m.samples
                    if s.name.endswith("_total")
                )
                >= len(poison)
            ),
            what="dlq",
        )
    assert count_rows(pg_schema.conninfo) == len(valid)
    ids = {str(e.event_id) for e in valid}
    with psycopg.connect(pg_schema.conninfo) as conn:
        stored = {str(r[0]) for r in conn.execute("SELECT event_id FROM analytics_events")}
        evil = conn.execute(
            "SELECT properties->>'provider' FROM analytics_events WHERE properties ? 'provider'"
            " AND properties->>'provider' LIKE '%%DROP%%'"
        ).fetchall()
    assert stored == ids
    assert evil == [(EVIL,)]

    letters = inspect(kafka_settings.librdkafka(), topics.dlq)
    assert len(letters) == len(poison)
    by_key = {d.key: d for d in letters}
    assert set(by_key) == {key for key, _v, _h in poison}
    stages = {k.decode(): d.info["stage"] for k, d in by_key.items() if k}
    assert stages["not-json"] == "decode" and stages["empty"] == "decode"
    assert stages["unknown-type"] == "validate" and stages["naive-time"] == "validate"
    assert stages["nul"] == "validate"  # the contract refuses U+0000, which jsonb cannot hold
    for letter in by_key.values():
        assert letter.info["topic"] == topics.events and letter.info["group"] == config.group_id
        assert letter.errors and all({"field", "rule", "message"} <= set(e) for e in letter.errors)
    assert by_key[b"naive-time"].errors[0]["field"] == "occurred_at"


def test_replay_from_offset_zero_and_redelivery_add_no_rows(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    valid = _valid_events(20)
    produce(kafka_settings, topics.events, event_records(valid))
    with running_sink(_config(), kafka_settings, topics, pg_schema.conninfo):
        wait_for(lambda: count_rows(pg_schema.conninfo) == len(valid), what="first pass")
    with running_sink(_config(), kafka_settings, topics, pg_schema.conninfo) as replay:
        wait_for(
            lambda: replay.metrics.duplicates_skipped._value.get() == len(valid),
            what="replay skipped",
        )
    assert count_rows(pg_schema.conninfo) == len(valid)
    assert replay.metrics.events_written._value.get() == 0


def test_future_events_are_clamped_with_the_original_kept(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    far = datetime.now(UTC) + timedelta(days=30)
    event = sample_event("logout", occurred_at=far)
    produce(kafka_settings, topics.events, event_records([event]))
    with running_sink(_config(), kafka_settings, topics, pg_schema.conninfo) as sink:
        wait_for(lambda: count_rows(pg_schema.conninfo) == 1)
    with psycopg.connect(pg_schema.conninfo) as conn:
        row = conn.execute("SELECT occurred_at, properties FROM analytics_events").fetchone()
    assert row is not None
    assert row[0] < far - timedelta(days=29)
    assert datetime.fromisoformat(row[1][ORIGINAL_OCCURRED_AT]) == far
    assert sink.metrics.clamped._value.get() == 1


def test_an_erased_user_is_deleted_and_later_events_are_dropped(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    before = [sample_event("search", user_id=u) for u in ("gone", "kept", "gone")]
    produce(kafka_settings, topics.events, event_records(before))
    with running_sink(_config(), kafka_settings, topics, pg_schema.conninfo) as sink:
        wait_for(lambda: count_rows(pg_schema.conninfo) == 3)
        with psycopg.connect(pg_schema.conninfo) as conn:
            report = erase_user(conn, "gone", reason="test")
            again = erase_user(conn, "gone")
        assert (report.rows_deleted, report.newly_erased) == (2, True)
        assert (again.rows_deleted, again.newly_erased) == (0, False)
        after = [sample_event("search", user_id=u) for u in ("gone", "kept")]
        produce(kafka_settings, topics.events, event_records(after))
        wait_for(lambda: sink.metrics.erased_dropped._value.get() == 1, what="erased dropped")
    assert count_rows(pg_schema.conninfo, "user_id = 'gone'") == 0
    assert count_rows(pg_schema.conninfo, "user_id = 'kept'") == 2


def test_metrics_and_health_are_served(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    produce(kafka_settings, topics.events, event_records(_valid_events(2)))
    with running_sink(_config(), kafka_settings, topics, pg_schema.conninfo) as sink:
        server = serve(sink.metrics.registry, sink.health, 0, "127.0.0.1")
        port = server.server_address[1]
        try:
            wait_for(lambda: count_rows(pg_schema.conninfo) == 20)
            wait_for(lambda: sink.metrics.batches._value.get() >= 1)
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            health = httpx.get(f"http://127.0.0.1:{port}/health")
        finally:
            server.shutdown()
            server.server_close()
    assert "brainstream_sink_events_written_total 20.0" in metrics
    for name in (
        "brainstream_sink_duplicates_skipped_total",
        "brainstream_sink_batch_seconds",
        "brainstream_sink_consumer_lag",
        "brainstream_sink_dlq_total",
    ):
        assert name in metrics
    assert health.status_code == 200 and json.loads(health.text)["ok"] is True


def test_a_rebalance_mid_run_keeps_exactly_once(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    valid = _valid_events(600)  # 6,000 events, half before and half during the rebalance
    records = event_records(valid)
    produce(kafka_settings, topics.events, records[:3000])
    config = _config(batch_max_records=100)
    with running_sink(config, kafka_settings, topics, pg_schema.conninfo):
        wait_for(lambda: count_rows(pg_schema.conninfo) > 300, what="first rows")
        with running_sink(config, kafka_settings, topics, pg_schema.conninfo):  # joins: rebalance
            produce(kafka_settings, topics.events, records[3000:])
            wait_for(lambda: count_rows(pg_schema.conninfo) >= len(valid), what="all rows")
    with psycopg.connect(pg_schema.conninfo) as conn:
        ids = [str(r[0]) for r in conn.execute("SELECT event_id FROM analytics_events")]
    assert len(ids) == len(valid) and set(ids) == {str(e.event_id) for e in valid}


def test_an_erasure_racing_the_sink_leaves_none_of_the_users_rows(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    events = [
        sample_event("page_view", user_id="gone" if i % 2 else f"u{i % 9}") for i in range(6_000)
    ]
    produce(kafka_settings, topics.events, event_records(events))
    with running_sink(
        _config(batch_max_records=50), kafka_settings, topics, pg_schema.conninfo
    ) as sink:
        wait_for(lambda: count_rows(pg_schema.conninfo, "user_id = 'gone'") > 0, what="rows")
        with psycopg.connect(pg_schema.conninfo) as conn:
            erase_user(conn, "gone")  # while batches keep committing
        wait_for(
            lambda: (
                sink.metrics.events_written._value.get() + sink.metrics.erased_dropped._value.get()
                >= len(events)
            ),
            what="all consumed",
        )
    assert count_rows(pg_schema.conninfo, "user_id = 'gone'") == 0
    assert count_rows(pg_schema.conninfo) == 3_000
    assert sink.metrics.erased_dropped._value.get() > 0
