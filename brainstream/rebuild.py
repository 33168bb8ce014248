"""``replay --to aggregates``: rebuild the aggregate tables from the log, swap them in at once.

1. Empty shadow copies of the aggregate tables are created (:mod:`brainstream.shadow`).
2. The whole log (every partition, up to the end offsets captured now) is folded into them with
   the workers' own pure fold and upsert, erased users left out.
3. One transaction swaps them in: it locks this projection's offset fences (live workers wait),
   folds whatever the workers applied past the captured ends meanwhile, removes users erased
   during the rebuild, moves each fence to ``max(fence, end)``, and replaces the tables.

Readers see the old tables until that transaction commits and the new ones after; workers
resume behind the moved fences, so no event is counted twice or lost. Events older than the
log's retention are not in the log and so are not in the rebuilt tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from schemas import InvalidEvent
from schemas.db import ERASED_USERS_TABLE, ERASURE_LOCK_KEY, STREAM_OFFSETS_TABLE
from sinks.export.config import LogRange
from sinks.export.progress import NoProgress, Progress
from sinks.export.ranges import PartitionRange
from sinks.export.reader import LogReader, Message, plan
from streams.erasure import erase_user_aggregates
from streams.fold import fold
from streams.records import FutureSkew, Record, decode_record
from streams.writer import upsert

Connection = psycopg.Connection[Any]


class RebuildRunning(Exception):
    def __init__(self, schema: str) -> None:
        super().__init__(f"an aggregate rebuild of schema {schema!r} is already running")
        self.schema = schema


@dataclass(slots=True)
class RebuildResult:
    ranges: list[PartitionRange] = field(default_factory=list)
    read: int = 0
    counted: int = 0
    erased: int = 0
    invalid: int = 0
    caught_up: int = 0
    """Records read at the swap: those the live workers applied during the rebuild."""
    fences: dict[int, int] = field(default_factory=dict)
    """The projection's fences after the swap."""
    skipped: int = 0
    """Records deleted from the log (retention) while the rebuild ran (``skip_deleted``)."""


@dataclass(frozen=True, slots=True)
class Target:
    projection: str
    topic: str
    skew: FutureSkew


def rebuild_aggregates(
    reader: LogReader,
    conninfo: str,
    target: Target,
    erased: Set[str],
    *,
    progress: Progress | None = None,
) -> RebuildResult:
    from brainstream import shadow

    progress = progress or NoProgress()
    with psycopg.connect(conninfo) as conn:
        live = _current_schema(conn)
        _lock_rebuild(conn, live)
        result = RebuildResult(ranges=plan(reader, LogRange()))
        skipped_before = reader.skipped
        shadow_name = shadow.create(conn, live)
        try:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(shadow_name)))
            conn.commit()
            progress.start(sum(r.size for r in result.ranges))
            for prange in result.ranges:
                for batch in reader.read(prange):
                    _apply(conn, batch, target.skew, erased, result)
                    progress.advance(len(batch))
            with conn.transaction():
                _finish(conn, reader, live, target, erased, result)
                shadow.swap(conn, live)
            result.skipped = reader.skipped - skipped_before
        except BaseException:
            conn.rollback()
            shadow.drop(conn, live)
            raise
        finally:
            progress.close()
    return result


def _apply(
    conn: Connection,
    batch: Iterable[Message],
    skew: FutureSkew,
    erased: Set[str],
    result: RebuildResult,
) -> None:
    """Fold one batch into the shadow tables (the connection's search_path), committed."""
    records: list[Record] = []
    for msg in batch:
        result.read += 1
        _kind, ts = msg.timestamp()
        try:
            record = decode_record(msg.partition(), msg.offset(), msg.value(), ts or None, skew)
        except InvalidEvent:
            result.invalid += 1
            continue
        if record.user_id in erased:
            result.erased += 1
            continue
        records.append(record)
    result.counted += len(records)
    with conn.transaction():
        upsert(conn, fold(records))


def _finish(
    conn: Connection,
    reader: LogReader,
    live: str,
    target: Target,
    erased: Set[str],
    result: RebuildResult,
) -> None:
    """Inside the swap transaction: catch up with the live workers, erasures, fences."""
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ERASURE_LOCK_KEY,))
    fences = _lock_fences(conn, live, target, [r.partition for r in result.ranges])
    now_erased = _erased_now(conn, live)
    for prange in result.ranges:
        behind = PartitionRange(prange.partition, prange.end, fences[prange.partition])
        for batch in reader.read(behind):
            _apply(conn, batch, target.skew, erased | now_erased, result)
            result.caught_up += len(batch)
    for user_id in sorted(now_erased - set(erased)):
        erase_user_aggregates(conn, user_id)
    result.fences = {r.partition: max(fences[r.partition], r.end) for r in result.ranges}
    _move_fences(conn, live, target, result.fences)


def _lock_fences(
    conn: Connection, live: str, target: Target, partitions: list[int]
) -> dict[int, int]:
    table = sql.Identifier(live, STREAM_OFFSETS_TABLE)
    insert = sql.SQL(
        "INSERT INTO {} (consumer_group, topic, kafka_partition, next_offset)"
        " VALUES (%s, %s, %s, 0) ON CONFLICT DO NOTHING"
    ).format(table)
    for partition in partitions:
        conn.execute(insert, (target.projection, target.topic, partition))
    rows = conn.execute(
        sql.SQL(
            "SELECT kafka_partition, next_offset FROM {} WHERE consumer_group = %s AND topic = %s"
            " ORDER BY kafka_partition FOR UPDATE"
        ).format(table),
        (target.projection, target.topic),
    ).fetchall()
    return {int(p): int(n) for p, n in rows}


def _move_fences(conn: Connection, live: str, target: Target, fences: dict[int, int]) -> None:
    update = sql.SQL(
        "UPDATE {} SET next_offset = %s, updated_at = clock_timestamp()"
        " WHERE consumer_group = %s AND topic = %s AND kafka_partition = %s"
    ).format(sql.Identifier(live, STREAM_OFFSETS_TABLE))
    for partition, offset in fences.items():
        conn.execute(update, (offset, target.projection, target.topic, partition))


def _erased_now(conn: Connection, live: str) -> set[str]:
    query = sql.SQL("SELECT user_id FROM {}").format(sql.Identifier(live, ERASED_USERS_TABLE))
    return {row[0] for row in conn.execute(query)}


def _current_schema(conn: Connection) -> str:
    row = conn.execute("SELECT current_schema()").fetchone()
    assert row is not None and row[0], "no schema on the search_path"
    return str(row[0])


def _lock_rebuild(conn: Connection, live: str) -> None:
    """One rebuild per schema at a time (a session lock, released when the connection closes)."""
    row = conn.execute(
        "SELECT pg_try_advisory_lock(hashtext(%s))", (f"brainstream.rebuild:{live}",)
    ).fetchone()
    conn.commit()
    if not row or not row[0]:
        raise RebuildRunning(live)
