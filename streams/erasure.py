"""Erasure of a user's aggregates, inside the caller's transaction.

The caller (``brainstream erase-user``) holds the exclusive erasure lock, so no worker batch is
in flight; workers drop the user's later events because they read ``erased_users`` under the
shared lock. Call it BEFORE the user's raw rows are deleted (same transaction):

- hour and day buckets: the user's ``agg_user_days`` rows are deleted, and their events (per
  hour of the day from the row's hour counts, per day from its total) and one distinct user
  subtracted from the per-type buckets they fall in;
- minute buckets keep no per-user rows: the user's events per minute and type are counted from
  the raw rows the workers have applied, i.e. those whose source offset is below their
  partition's fence (``stream_offsets``; rows the workers have not applied yet were never
  counted, and the workers will now skip them as erased);

Buckets left empty are deleted, as a rebuild would not produce them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from eventlog.db import Connection
from schemas.topics import EVENTS

_SUBTRACT = """
WITH u AS (
    DELETE FROM agg_user_days WHERE user_id = %s
    RETURNING event_type, day::timestamp AT TIME ZONE 'UTC' AS day, hours, event_count
), b AS (
    SELECT 'day' AS granularity, u.day AS bucket, u.event_type, u.event_count AS n FROM u
    UNION ALL
    SELECT 'hour', u.day + (z.k - 1) * interval '1 hour', u.event_type, z.e
    FROM u, unnest(u.hours) WITH ORDINALITY AS z(e, k)
    WHERE z.e > 0
)
UPDATE agg_type_buckets a
SET event_count = a.event_count - b.n, distinct_users = a.distinct_users - 1
FROM b
WHERE a.granularity = b.granularity AND a.bucket = b.bucket AND a.event_type = b.event_type
"""
_APPLIED_MINUTES: Final = """
SELECT date_trunc('minute', e.occurred_at, 'UTC'), e.event_type, count(*)
FROM analytics_events e
JOIN stream_offsets s
  ON s.consumer_group = %(p)s AND s.topic = %(t)s AND s.kafka_partition = e.kafka_partition
 AND e.kafka_offset < s.next_offset
WHERE e.user_id = %(u)s
GROUP BY 1, 2
"""
_SUBTRACT_MINUTES = """
UPDATE agg_type_buckets a SET event_count = a.event_count - m.n
FROM unnest(%s::timestamptz[], %s::text[], %s::int8[]) AS m(bucket, event_type, n)
WHERE a.granularity = 'minute' AND a.bucket = m.bucket AND a.event_type = m.event_type
"""
_DROP_EMPTY = "DELETE FROM agg_type_buckets WHERE event_count <= 0"

MinuteCounts = Mapping[tuple[datetime, str], int]
"""Events per (minute bucket, event type)."""


def applied_minutes(
    conn: Connection, user_id: str, projection: str, topic: str
) -> dict[tuple[datetime, str], int]:
    """The user's events per minute and type that the projection's workers have counted."""
    rows = conn.execute(_APPLIED_MINUTES, {"p": projection, "t": topic, "u": user_id})
    return {(bucket, kind): int(n) for bucket, kind, n in rows}


def erase_user_aggregates(
    conn: Connection,
    user_id: str,
    *,
    projection: str = "aggregates",
    topic: str = EVENTS,
    minutes: MinuteCounts | None = None,
) -> None:
    """Remove ``user_id`` from every aggregate table (no commit: the caller's transaction).

    ``minutes``: the user's counted events per minute bucket and type; by default read from the
    raw rows below the fences of ``projection`` over source ``topic`` (so call this before the
    raw rows are deleted).
    """
    if minutes is None:
        minutes = applied_minutes(conn, user_id, projection, topic)
    conn.execute(_SUBTRACT, (user_id,))
    if minutes:
        keys = sorted(minutes)
        conn.execute(
            _SUBTRACT_MINUTES,
            ([b for b, _ in keys], [t for _, t in keys], [minutes[k] for k in keys]),
            prepare=False,  # planned for these arrays, never a generic plan (streams.writer)
        )
    conn.execute(_DROP_EMPTY)
