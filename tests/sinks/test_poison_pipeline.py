"""Issue 17 on the real pipeline: a poison record of each kind mid-stream, between valid
events of the same user, through the running sink (Kafka -> Postgres, DLQ): the sink survives,
every neighbour is stored, every poison record is dead-lettered with its stage and rule. And
every event ``track()`` accepts in a property run is stored by the sink's real decode and
persist path."""

from __future__ import annotations

import json
import math
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers import Tracker
from schemas import encode
from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from sinks.dlq_admin import inspect
from sinks.records import split
from sinks.writer import create_staging, write_batch
from tests.fixtures.custom import meter_registered
from tests.fixtures.samples import sample_event
from tests.fixtures.services import PgSchema, Services
from tests.sinks.conftest import count_rows, message, produce, running_sink, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def meter() -> Iterator[None]:
    with meter_registered():
        yield


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(encode(sample_event("page_view", user_id="u1")))
    doc.update(changes)
    return doc


def _raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()  # writes 2**64, NaN and Infinity as given


POISON = {
    "year-1": _raw(_doc(occurred_at="0001-01-01T00:00:00+01:00")),
    "count-2**64": _raw(_doc(type="meter", properties={"count": 2**64, "value": 1.0})),
    "value-nan": _raw(_doc(type="meter", properties={"count": 1, "value": math.nan})),
    "occurred_at-0": _raw(_doc(occurred_at=0)),
    "occurred_at-seconds": _raw(_doc(occurred_at=1767225600)),
    "duration-true": _raw(_doc(properties={"path": "/x", "duration_ms": True})),
    "duration-string": _raw(_doc(properties={"path": "/x", "duration_ms": "1200"})),
    "nul": _raw(_doc(properties={"path": "/x", "referrer": "/a\u0000"})),
}
RULES = {
    "year-1": ("occurred_at", "out_of_range"),
    "count-2**64": ("properties.count", "out_of_range"),
    "value-nan": ("properties.value", "finite_number"),
    "occurred_at-0": ("occurred_at", "datetime_type"),
    "occurred_at-seconds": ("occurred_at", "datetime_type"),
    "duration-true": ("properties.duration_ms", "int_type"),
    "duration-string": ("properties.duration_ms", "int_type"),
    "nul": ("properties.referrer", "string_pattern_mismatch"),  # its own pattern excludes it
}


def test_a_poison_record_of_each_kind_mid_stream_stops_no_consumer(
    services: Services,
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    pg_schema: PgSchema,
    tmp_path: Path,
) -> None:
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, str | bytes | None]]]] = []
    valid = 0
    for name, value in POISON.items():
        for _ in range(2):  # a valid event of the same user on each side
            records.append((b"u1", encode(sample_event("page_view", user_id="u1")), []))
            valid += 1
        records.append((b"u1", value, [("bs.test", name.encode())]))
    records.append((b"u1", encode(sample_event("page_view", user_id="u1")), []))
    valid += 1
    produce(kafka_settings, topics.events, records)
    config = SinkConfig.model_validate(
        {"group_id": f"g-{uuid.uuid4().hex[:8]}", "batch_max_records": 7, "batch_max_seconds": 0.1}
    )
    with running_sink(config, kafka_settings, topics, pg_schema.conninfo):
        wait_for(lambda: count_rows(pg_schema.conninfo) >= valid, what="neighbours stored")
        wait_for(
            lambda: len(inspect(kafka_settings.librdkafka(), topics.dlq)) >= len(POISON),
            what="dead letters",
        )
    assert count_rows(pg_schema.conninfo) == valid
    letters = inspect(kafka_settings.librdkafka(), topics.dlq)
    assert len(letters) == len(POISON)
    for letter in letters:
        assert letter.info["stage"] == "validate"
        assert [(e["field"], e["rule"]) for e in letter.errors] in [[r] for r in RULES.values()]


offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m))
)
numbers = st.one_of(st.integers(min_value=-(2**65), max_value=2**65), st.floats(), st.booleans())
calls = st.one_of(
    st.builds(
        lambda when, ms: ("page_view", {"occurred_at": when, "path": "/x", "duration_ms": ms}),
        st.datetimes(timezones=offsets),
        st.integers(min_value=-10, max_value=2**40),
    ),
    st.builds(lambda c, v: ("meter", {"count": c, "value": v}), numbers, numbers),
    st.builds(lambda p: ("login", {"method": "sso", "provider": p}), st.text(max_size=16)),
)


def test_every_event_track_accepts_is_stored_by_the_sinks_decode_and_persist(
    pg_schema: PgSchema,
) -> None:
    sent: list[tuple[bytes, bytes]] = []
    accepted: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        tracker = Tracker(
            KafkaSettings(bootstrap_servers="127.0.0.1:9"),
            topic="t",
            spool_dir=Path(tmp),
            source="web",
        )
        tracker._produce = lambda _t, value, key, headers: sent.append((key, value))  # type: ignore[method-assign,assignment]

        @settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], database=None)
        @given(calls)
        def drive(call: tuple[str, dict[str, Any]]) -> None:
            type_name, props = call
            event_id = tracker.track(type_name, "u1", **props)  # never raises
            if event_id is not None:
                accepted.append(event_id)

        with tracker:
            drive()
    assert accepted and len(accepted) == len(sent)
    now = int(time.time() * 1000)
    records = [message(v, key=k, offset=i, timestamp_ms=now) for i, (k, v) in enumerate(sent)]
    rows, rejected = split(records, SinkConfig())
    assert not rejected, [r.errors for r in rejected]
    with psycopg.connect(pg_schema.conninfo) as conn:
        create_staging(conn)
        result = write_batch(conn, rows)
        assert not result.rejected
        stored = {
            str(r[0]): r[1]
            for r in conn.execute("SELECT event_id, occurred_at FROM analytics_events")
        }
    assert set(stored) == set(accepted)
    assert all(
        datetime(1970, 1, 1, tzinfo=UTC) <= t < datetime(9999, 1, 1, tzinfo=UTC)
        for t in stored.values()
    )
