"""Applies one partition's batch and moves its offset fence in ONE Postgres transaction.

Order inside the transaction: the shared erasure lock, the fence row ``FOR UPDATE`` (so two
workers that both believe they own a partition serialise here and the later one skips what the
earlier one applied), drop records below the fence and records of erased users, upsert the
folded deltas, move the fence past the last offset of the batch. Kafka offsets are committed
only after this transaction commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from schemas.db import ERASURE_LOCK_KEY
from streams.fold import Deltas, fold
from streams.records import Record

Connection = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class PartitionBatch:
    """One partition's share of an agent batch: decoded records and undecodable offsets."""

    partition: int
    records: Sequence[Record]
    invalid_offsets: Sequence[int] = ()
    folded: Deltas | None = None
    """``fold(records)`` computed ahead (off the transaction's path); used when every record
    turns out fresh and counted, the common case."""

    @property
    def last_offset(self) -> int:
        return max(
            max((r.offset for r in self.records), default=-1),
            max(self.invalid_offsets, default=-1),
        )


@dataclass(frozen=True, slots=True)
class Applied:
    """What one fenced transaction did."""

    partition: int
    counted: int
    below_fence: int
    """Records skipped as already applied (below the fence, or repeated in the batch)."""
    erased: int
    new_user_buckets: int
    next_offset: int


_LOCK_FENCE = """
INSERT INTO stream_offsets (consumer_group, topic, kafka_partition, next_offset)
VALUES (%(p)s, %(t)s, %(k)s, 0) ON CONFLICT DO NOTHING;
"""
_READ_FENCE = """
SELECT next_offset FROM stream_offsets
WHERE consumer_group = %(p)s AND topic = %(t)s AND kafka_partition = %(k)s FOR UPDATE
"""
_MOVE_FENCE = """
UPDATE stream_offsets SET next_offset = %(n)s, updated_at = clock_timestamp()
WHERE consumer_group = %(p)s AND topic = %(t)s AND kafka_partition = %(k)s
"""
_ERASED = "SELECT user_id FROM erased_users WHERE user_id = ANY(%s)"

# Data-modifying CTEs always run to completion. Type-bucket rows are fed in key order so that
# concurrent workers lock the buckets they share in the same order (no deadlock).
_UPSERT = """
WITH d AS (
    SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::text[], %b::int8[],
                         %b::timestamptz[], %b::timestamptz[])
        AS d(granularity, bucket, user_id, event_type, n, first_seen, last_seen)
), ub AS (
    INSERT INTO agg_user_buckets AS a
        (granularity, bucket, user_id, event_type, event_count, first_seen, last_seen)
    SELECT * FROM d
    ON CONFLICT (granularity, bucket, user_id, event_type) DO UPDATE SET
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
SELECT t.granularity, t.bucket, t.event_type, t.n, coalesce(f.users, 0)
FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::int8[])
    AS t(granularity, bucket, event_type, n)
LEFT JOIN fresh f USING (granularity, bucket, event_type)
ORDER BY 1, 2, 3
ON CONFLICT (granularity, bucket, event_type) DO UPDATE SET
    event_count = a.event_count + EXCLUDED.event_count,
    distinct_users = a.distinct_users + EXCLUDED.distinct_users
RETURNING (SELECT count(*) FILTER (WHERE fresh) FROM ub)
"""


def apply_batch(conn: Connection, projection: str, topic: str, batch: PartitionBatch) -> Applied:
    """Apply ``batch`` behind its partition's fence, in one transaction (committed on return)."""
    key = {"p": projection, "t": topic, "k": batch.partition}
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ERASURE_LOCK_KEY,))
        conn.execute(_LOCK_FENCE, key)
        row = conn.execute(_READ_FENCE, key).fetchone()
        assert row is not None  # inserted just above
        fence: int = row[0]
        # Keyed by offset: a record redelivered after a rebalance may sit twice in one batch.
        fresh = list({r.offset: r for r in batch.records if r.offset >= fence}.values())
        erased = _erased_users(conn, {r.user_id for r in fresh})
        counted = [r for r in fresh if r.user_id not in erased] if erased else fresh
        if len(counted) == len(batch.records) and batch.folded is not None:
            deltas = batch.folded
        else:
            deltas = fold(counted)
        new_rows = upsert(conn, deltas) if counted else 0
        next_offset = max(fence, batch.last_offset + 1)
        if next_offset != fence:
            conn.execute(_MOVE_FENCE, {**key, "n": next_offset})
    return Applied(
        batch.partition,
        counted=len(counted),
        below_fence=len(batch.records) - len(fresh),
        erased=len(fresh) - len(counted),
        new_user_buckets=new_rows,
        next_offset=next_offset,
    )


def upsert(conn: Connection, deltas: Deltas) -> int:
    """Add ``deltas`` to the aggregate tables; returns how many user-bucket rows are new."""
    if not deltas:
        return 0
    # Only the type buckets are shared between partitions (and so between workers): they are
    # locked in key order. A user's rows belong to one partition, whose fence row serialises
    # every writer of it, so they need no order.
    ub = deltas.user_buckets.items()
    ut = deltas.user_totals.items()
    tb = sorted(deltas.type_counts.items())
    params: list[Any] = [
        *_columns([(*k, s.count, s.first, s.last) for k, s in ub], 7),
        *_columns([(*k, s.count, s.first, s.last) for k, s in ut], 5),
        *_columns([(*k, n) for k, n in tb], 4),
    ]
    rows = conn.execute(_UPSERT, params).fetchall()
    return int(rows[0][0]) if rows else 0


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _erased_users(conn: Connection, users: set[str]) -> set[str]:
    if not users:
        return set()
    return {r[0] for r in conn.execute(_ERASED, (list(users),))}
