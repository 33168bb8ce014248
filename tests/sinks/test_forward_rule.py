"""The forwarding rule against the real Postgres: a row is forwarded by the record whose
source coordinate it carries, by every path of the writer and by every re-processing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest
from confluent_kafka import Message

from schemas import Event
from sinks.config import SinkConfig
from sinks.records import split
from sinks.writer import WriteResult, create_staging, write_batch
from tests.fixtures.samples import sample_event
from tests.fixtures.services import PgSchema
from tests.sinks.conftest import as_incoming

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)
Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def conn(pg_schema: PgSchema) -> Iterator[Conn]:
    with psycopg.connect(pg_schema.conninfo) as c:
        create_staging(c)
        yield c


def _events(n: int, user: str = "u") -> list[Event]:
    return [sample_event("page_view", user_id=f"{user}{i}", occurred_at=NOW) for i in range(n)]


def _at(events: list[Event], first_offset: int, partition: int = 0) -> list[Message]:
    return [
        as_incoming(e, partition=partition, offset=first_offset + i) for i, e in enumerate(events)
    ]


def _write(conn: Conn, records: list[Message]) -> WriteResult:
    rows, rejected = split(records, SinkConfig())
    assert not rejected
    return write_batch(conn, rows)


def _forwarded(result: WriteResult) -> list[tuple[int, int]]:
    return sorted((r.kafka_partition, r.kafka_offset) for r in result.accepted)


def test_a_new_batch_forwards_every_row_it_stored(conn: Conn) -> None:
    result = _write(conn, _at(_events(20), 100))
    assert result.inserted == 20
    assert _forwarded(result) == [(0, o) for o in range(100, 120)]


def test_reprocessing_the_same_offsets_forwards_the_same_set(conn: Conn) -> None:
    records = _at(_events(30), 0)
    first = _write(conn, records)
    again = _write(conn, records)  # a crash before the offset commit: the batch comes back
    assert (again.inserted, again.duplicates) == (0, 30)
    assert _forwarded(again) == _forwarded(first) == [(0, o) for o in range(30)]
    part = _write(conn, records[5:12])  # a smaller batch over part of the range (rebalance)
    assert _forwarded(part) == [(0, o) for o in range(5, 12)]


def test_a_later_duplicate_is_never_forwarded_and_the_original_still_is(conn: Conn) -> None:
    events = _events(10)
    original = _write(conn, _at(events, 0, partition=1))
    resent = _write(conn, _at(events[3:6], 50, partition=1))  # same bytes produced again
    assert (resent.inserted, resent.duplicates, resent.accepted) == (0, 3, [])
    mixed = _write(conn, _at(events[:10], 0, partition=1) + _at(events[3:6], 50, partition=1))
    assert _forwarded(mixed) == _forwarded(original) == [(1, o) for o in range(10)]


def test_a_duplicate_inside_one_batch_is_forwarded_once_by_the_stored_coordinate(
    conn: Conn,
) -> None:
    events = _events(5)
    records = _at(events, 10) + _at(events[2:3], 15)  # offset 15 repeats offset 12's event
    first = _write(conn, records)
    assert (first.inserted, first.duplicates) == (5, 1)
    stored = conn.execute(
        "SELECT kafka_offset FROM analytics_events WHERE event_id = %s", (events[2].event_id,)
    ).fetchall()
    conn.commit()
    assert len(stored) == 1
    stored_offset = int(str(stored[0][0]))
    assert stored_offset in (12, 15)
    expected = sorted((0, o) for o in (10, 11, 13, 14, stored_offset))
    assert _forwarded(first) == expected
    assert _forwarded(_write(conn, records)) == expected


def test_erased_users_and_persist_refusals_are_never_forwarded(conn: Conn) -> None:
    conn.execute("INSERT INTO erased_users (user_id) VALUES ('gone0')")
    conn.commit()
    good = _events(4, user="kept")
    gone = _events(1, user="gone")
    refused = [sample_event("login", user_id="refused")]
    records = _at(good[:2] + gone + refused + good[2:], 0)
    rows, rejected = split(records, SinkConfig())
    assert not rejected
    # The contract refuses what Postgres cannot hold, so a row the database refuses is made past
    # it: a lone surrogate cannot be encoded for COPY (a persist-stage fault, bisected out).
    rows[3] = replace(rows[3], source="web\ud800")

    def _write(_conn: Conn, _records: list[Message]) -> WriteResult:
        return write_batch(conn, rows)

    result = _write(conn, records)
    assert (result.inserted, result.erased, len(result.rejected)) == (4, 1, 1)
    assert _forwarded(result) == [(0, 0), (0, 1), (0, 4), (0, 5)]
    again = _write(conn, records)  # redelivered: bisected again, the same four forwarded
    assert _forwarded(again) == _forwarded(result)
    conn.execute("INSERT INTO erased_users (user_id) VALUES ('kept0')")
    conn.commit()
    later = _write(conn, records)  # erased since: its stored row stays, it is not forwarded
    assert _forwarded(later) == [(0, 1), (0, 4), (0, 5)]
