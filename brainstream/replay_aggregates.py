"""``replay --to aggregates``: rebuild the aggregate tables from the accepted stream, swap them
in at once.

1. Empty shadow copies of the aggregate tables are created (:mod:`brainstream.shadow`).
2. The whole accepted stream (every partition, up to the end offsets captured now) is folded
   into them with the workers' own pure fold and upsert, erased users left out, behind fences
   of its own (by source offset, as the workers), so a range the sink forwarded twice counts
   once.
3. One transaction swaps them in: it locks this projection's offset fences (live workers wait),
   folds the accepted records written meanwhile (those the workers applied, and possibly more),
   removes users erased during the rebuild (their minute counts from a second read of the
   stream), moves each fence to ``max(live fence, rebuilt position)``, and replaces the tables.

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

from eventlog import fence
from eventlog.db import Connection, erased_users
from eventlog.offsets import Positions
from eventlog.ranges import LogRange, PartitionRange
from eventlog.reader import LogReader, Message, plan
from schemas.accepted import AcceptedBatch, InvalidBatch, decode_batch
from schemas.db import ERASURE_LOCK_KEY, STREAM_OFFSETS_TABLE
from schemas.errors import BrainstreamError
from sinks.export.progress import NoProgress, Progress
from streams.erasure import erase_user_aggregates
from streams.fold import MINUTE_US, fold, to_datetime
from streams.writer import upsert


class RebuildRunning(BrainstreamError):
    """Another aggregate rebuild holds the schema's rebuild lock."""

    def __init__(self, schema: str) -> None:
        super().__init__(f"an aggregate rebuild of schema {schema!r} is already running")
        self.schema = schema


@dataclass(slots=True)
class RebuildResult:
    ranges: list[PartitionRange] = field(default_factory=list)
    read: int = 0
    """Accepted records read."""
    counted: int = 0
    """Events counted."""
    below_fence: int = 0
    """Events skipped as already folded (a range the sink forwarded twice)."""
    erased: int = 0
    invalid: int = 0
    caught_up: int = 0
    """Records read at the swap: those written during the rebuild."""
    positions: Positions = field(default_factory=Positions)
    """Per source (topic, partition): the next source offset the rebuilt tables lack."""
    fences: dict[int, int] = field(default_factory=dict)
    """The projection's fences after the swap."""
    skipped: int = 0
    """Records deleted from the log (retention) while the rebuild ran (``skip_deleted``)."""


@dataclass(frozen=True, slots=True)
class Target:
    projection: str
    topic: str
    """The source topic (``brainstream.events``): the fences' key."""


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
                    _apply(conn, batch, erased, result)
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
    conn: Connection, batch: Iterable[Message], erased: Set[str], result: RebuildResult
) -> None:
    """Fold one read of accepted records into the shadow tables (search_path), committed."""
    fresh: list[AcceptedBatch] = []
    for msg in batch:
        result.read += 1
        try:
            accepted = decode_batch(msg.value())
        except InvalidBatch:
            result.invalid += 1
            continue
        kept = result.positions.admit(accepted)
        result.below_fence += len(accepted) - len(kept)
        fresh.append(kept)
    with conn.transaction():
        for accepted in fresh:
            skip = {u for u in accepted.user_ids if u in erased}
            deltas = fold(accepted, skip)
            result.erased += len(accepted) - deltas.events
            result.counted += deltas.events
            upsert(conn, deltas)


def _minutes_of(
    reader: LogReader, ranges: list[PartitionRange], users: Set[str]
) -> dict[str, dict[tuple[Any, str], int]]:
    """Per user of ``users``: events per (minute bucket, type) in ``ranges`` (fenced)."""
    out: dict[str, dict[tuple[Any, str], int]] = {u: {} for u in users}
    positions = Positions()
    for prange in ranges:
        for batch in reader.read(prange):
            for msg in batch:
                try:
                    accepted = decode_batch(msg.value())
                except InvalidBatch:
                    continue
                kept = positions.admit(accepted)
                for kind, user, at in zip(
                    kept.types, kept.user_ids, kept.occurred_at_us, strict=True
                ):
                    if user in out:
                        minute = (to_datetime(at - at % MINUTE_US), kind)
                        out[user][minute] = out[user].get(minute, 0) + 1
    return out


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
    table = sql.Identifier(live, STREAM_OFFSETS_TABLE)
    fences = fence.lock_all(conn, target.projection, target.topic, table)
    now_erased = erased_users(conn, live)
    marks = reader.watermarks()
    for prange in result.ranges:
        behind = PartitionRange(prange.partition, prange.end, marks[prange.partition][1])
        for batch in reader.read(behind):
            _apply(conn, batch, erased | now_erased, result)
            result.caught_up += len(batch)
    newly = now_erased - set(erased)
    if newly:
        # Their events were folded before they were erased (the catch-up skipped them).
        minutes = _minutes_of(reader, result.ranges, newly)
        for user_id in sorted(newly):
            erase_user_aggregates(conn, user_id, minutes=minutes[user_id])
    moved = {p for (t, p) in result.positions if t == target.topic}
    result.fences = {
        p: max(fences.get(p, 0), result.positions.get((target.topic, p), 0))
        for p in moved | set(fences)
    }
    fence.move(conn, target.projection, target.topic, result.fences, table)


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
