"""Applies one source partition's accepted batches and moves its fence in ONE transaction.

Order inside the transaction: the shared erasure lock, the fence row ``FOR UPDATE`` (so two
workers that both believe they own a partition serialise here and the later one skips what the
earlier one applied), drop the events at or below the fence and those of erased users, upsert
the folded deltas, move the fence past the batches' ``last_offset``. The fence is keyed by the
SOURCE coordinates the sink processed (``stream_offsets``: projection, source topic, source
partition, next source offset to apply), so a range the sink forwards twice (a crash between
its commit and its produce), a redelivered accepted record or a second worker never counts an
event twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from eventlog import fence
from eventlog.db import Connection, erased_among
from eventlog.offsets import admit
from schemas.accepted import AcceptedBatch
from schemas.db import ERASURE_LOCK_KEY
from streams.fold import Deltas, fold, fold_columns, to_datetime


@dataclass(frozen=True, slots=True)
class PartitionBatch:
    """Consecutive accepted batches of one source (topic, partition), in offset order."""

    topic: str
    partition: int
    batches: Sequence[AcceptedBatch]
    folded: Deltas | None = None
    """The fold of every event of ``batches``, computed ahead; used when none is skipped (the
    common case)."""

    @property
    def last_offset(self) -> int:
        return max(b.last_offset for b in self.batches)

    @property
    def events(self) -> int:
        return sum(len(b) for b in self.batches)


@dataclass(frozen=True, slots=True)
class Applied:
    """What one fenced transaction did."""

    partition: int
    counted: int
    below_fence: int
    """Events skipped as already applied (at or below the fence)."""
    erased: int
    new_user_buckets: int
    next_offset: int
    rows: int = 0
    """Aggregate rows upserted."""


# Data-modifying CTEs always run to completion. Rows are fed in key order, so that concurrent
# writers lock the rows they share (the type buckets) in the same order: no deadlock.
_UPSERT = """
WITH ub AS (
    INSERT INTO agg_user_buckets AS a
        (granularity, bucket, user_id, event_type, event_count, first_seen, last_seen)
    SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::text[], %b::int8[],
                         %b::timestamptz[], %b::timestamptz[])
    ON CONFLICT (user_id, granularity, bucket, event_type) DO UPDATE SET
        event_count = a.event_count + EXCLUDED.event_count,
        first_seen = LEAST(a.first_seen, EXCLUDED.first_seen),
        last_seen = GREATEST(a.last_seen, EXCLUDED.last_seen)
    RETURNING a.granularity, a.bucket, a.event_type, (a.xmax = 0) AS fresh
), fresh AS (
    SELECT granularity, bucket, event_type, count(*) FILTER (WHERE fresh) AS users
    FROM ub GROUP BY 1, 2, 3
), ut AS (
    INSERT INTO agg_user_totals AS a (user_id, event_type, event_count, first_seen, last_seen)
    SELECT * FROM unnest(%b::text[], %b::text[], %b::int8[], %b::timestamptz[],
                         %b::timestamptz[])
    ON CONFLICT (user_id, event_type) DO UPDATE SET
        event_count = a.event_count + EXCLUDED.event_count,
        first_seen = LEAST(a.first_seen, EXCLUDED.first_seen),
        last_seen = GREATEST(a.last_seen, EXCLUDED.last_seen)
)
INSERT INTO agg_type_buckets AS a (granularity, bucket, event_type, event_count, distinct_users)
SELECT t.granularity, t.bucket, t.event_type, t.n,
       CASE WHEN t.granularity = 'minute' THEN NULL ELSE coalesce(f.users, 0) END
FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::int8[])
    AS t(granularity, bucket, event_type, n)
LEFT JOIN fresh f USING (granularity, bucket, event_type)
ORDER BY 1, 2, 3
ON CONFLICT (granularity, bucket, event_type) DO UPDATE SET
    event_count = a.event_count + EXCLUDED.event_count,
    distinct_users = a.distinct_users + EXCLUDED.distinct_users
RETURNING (SELECT count(*) FILTER (WHERE fresh) FROM ub)
"""


def fold_partition(topic: str, partition: int, batches: Sequence[AcceptedBatch]) -> PartitionBatch:
    """Fold ``batches`` ahead of the transaction (all their events, as if none were skipped)."""
    if len(batches) == 1:
        folded = fold(batches[0])
    else:
        folded = fold_columns(
            [t for b in batches for t in b.types],
            [u for b in batches for u in b.user_ids],
            [t for b in batches for t in b.occurred_at_us],
        )
    return PartitionBatch(topic, partition, batches, folded)


def apply_batch(conn: Connection, projection: str, batch: PartitionBatch) -> Applied:
    """Apply ``batch`` behind its source partition's fence, in one transaction (committed)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ERASURE_LOCK_KEY,))
        start = fence.lock(conn, projection, batch.topic, batch.partition)
        fresh, position = [], start
        for b in batch.batches:
            kept_batch, position = admit(position, b)
            fresh.append(kept_batch)
        total = batch.events
        kept = sum(len(b) for b in fresh)
        erased = erased_among(conn, (u for b in fresh for u in b.user_ids))
        if kept == total and not erased and batch.folded is not None:
            deltas = batch.folded
        else:
            deltas = _fold_kept(fresh, erased)
        new_rows = upsert(conn, deltas)
        if position != start:
            fence.move(conn, projection, batch.topic, {batch.partition: position})
    return Applied(
        batch.partition,
        counted=deltas.events,
        below_fence=total - kept,
        erased=kept - deltas.events,
        new_user_buckets=new_rows,
        next_offset=position,
        rows=deltas.rows(),
    )


def _fold_kept(batches: Sequence[AcceptedBatch], erased: set[str]) -> Deltas:
    types: list[str] = []
    users: list[str] = []
    times: list[int] = []
    for b in batches:
        for kind, user, at in zip(b.types, b.user_ids, b.occurred_at_us, strict=True):
            if user not in erased:
                types.append(kind)
                users.append(user)
                times.append(at)
    return fold_columns(types, users, times)


@lru_cache(maxsize=4096)
def _moment(us: int) -> datetime:
    return to_datetime(us)


def upsert(conn: Connection, deltas: Deltas) -> int:
    """Add ``deltas`` to the aggregate tables; returns how many user-bucket rows are new."""
    if not deltas:
        return 0
    m, d = _moment, to_datetime
    ub = sorted(deltas.user_buckets.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))
    ut = sorted(deltas.user_totals.items())
    tb = sorted(deltas.type_counts.items())
    params: list[Any] = [
        *_columns([(g, m(b), u, t, s.count, d(s.first), d(s.last)) for (g, b, u, t), s in ub], 7),
        *_columns([(u, t, s.count, d(s.first), d(s.last)) for (u, t), s in ut], 5),
        *_columns([(g, m(b), t, n) for (g, b, t), n in tb], 4),
    ]
    rows = conn.execute(_UPSERT, params).fetchall()
    return int(rows[0][0]) if rows else 0


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]
