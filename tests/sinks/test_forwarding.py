"""The sink forwards what it stored to the accepted stream (real broker and database).

Duplicates (the same bytes produced again, the same event re-sent from the SDK's spool) and
records dead-lettered at decode or validate (the contract refuses what Postgres cannot hold, so
a record's content no longer reaches a persist-stage refusal; the writer's bisection is covered
in test_forward_rule.py) are never forwarded; the stream describes exactly the raw table's rows,
one record per batch and source partition."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from producers.spool import Spool, read_records
from schemas import encode
from schemas.config import KafkaSettings, TopicSettings
from sinks.config import SinkConfig
from sinks.dlq_admin import inspect
from tests.fixtures.samples import nul_login, sample_event, sample_events
from tests.fixtures.services import PgSchema
from tests.sinks.accepted import fold, processed_ranges, read_accepted, stored
from tests.sinks.conftest import Record, count_rows, event_records, produce, running_sink, wait_for
from tests.sinks.faults import lag

pytestmark = pytest.mark.integration


def _config() -> SinkConfig:
    return SinkConfig(
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        batch_max_records=50,
        batch_max_seconds=0.1,
        session_timeout_ms=6_000,
    )


def _poison() -> list[Record]:
    valid = orjson.loads(encode(sample_event("login")))
    bad = {
        "decode": b"\x00\xffnot json",
        "validate": orjson.dumps({**valid, "type": "no_such_type"}),
        # the contract refuses U+0000 (Postgres jsonb cannot hold it): validate, not persist
        "nul": encode(nul_login()),
    }
    return [(stage.encode(), value, [("bs.test", stage.encode())]) for stage, value in bad.items()]


def _spooled(records: list[Record], directory: Path) -> list[Record]:
    """``records`` written to the SDK's spool and read back, as a re-send after a timeout."""
    spool = Spool(directory, 1 << 24)
    for key, value, headers in records:
        spool.append(key, value, [(k, v) for k, v in headers if isinstance(v, bytes)])
    segment = spool.take()
    assert segment is not None
    resent = [(k, v, list(h)) for k, v, h in read_records(segment.path)]
    spool.release(segment)
    spool.close()
    return resent  # type: ignore[return-value]


def test_the_accepted_stream_is_exactly_the_stored_rows(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    events = []
    for i in range(25):
        events += sample_events(user_id=f"user-{i % 13}")
    records = event_records(events)
    again = records[::20]  # 5%: the same bytes produced again, later
    resent = _spooled(records[7::25], tmp_path / "spool")  # and re-sent from the spool
    poison = _poison()
    mixed = records[:90] + poison[:2] + records[90:] + again + poison[2:] + resent
    produce(kafka_settings, topics.events, mixed)
    config = _config()
    with running_sink(config, kafka_settings, topics, pg_schema.conninfo):
        wait_for(lambda: lag(kafka_settings, config.group_id, topics.events) == 0, what="lag")
    assert count_rows(pg_schema.conninfo) == len(events)

    batches = read_accepted(kafka_settings, topics.accepted)
    folded = fold(batches)
    rows = stored(pg_schema.conninfo)
    assert folded.counted == rows  # same coordinates, same content
    assert folded.skipped == 0  # no crash: nothing forwarded twice
    assert len(folded.counted) == len({e.event_id for e in events})
    # Every offset of the topic was processed and is covered by some record's range.
    assert sum(hi - lo + 1 for lo, hi in processed_ranges(batches).values()) == len(mixed)
    letters = inspect(kafka_settings.librdkafka(), topics.dlq)
    assert sorted(d.info["stage"] for d in letters) == ["decode", "validate", "validate"]
    refused = {(int(d.info["partition"]), int(d.info["offset"])) for d in letters}
    assert not refused & set(folded.counted)


def test_a_replay_forwards_nothing_new_and_says_so_for_every_range(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    events = sample_events(user_id="u") * 1
    produce(kafka_settings, topics.events, event_records(events))
    with running_sink(_config(), kafka_settings, topics, pg_schema.conninfo):
        wait_for(lambda: count_rows(pg_schema.conninfo) == len(events), what="first pass")
    first = read_accepted(kafka_settings, topics.accepted)
    second_group = _config()  # a second group from offset 0 re-processes every offset
    with running_sink(second_group, kafka_settings, topics, pg_schema.conninfo):
        wait_for(lambda: lag(kafka_settings, second_group.group_id, topics.events) == 0)
    both = read_accepted(kafka_settings, topics.accepted)
    assert len(both) > len(first)
    folded = fold(both)  # the second pass said exactly what the first said
    assert folded.counted == stored(pg_schema.conninfo)
    assert folded.skipped == len(events)
