"""Erasure of a user's aggregates, inside the caller's transaction.

The caller (``brainstream erase-user``) holds the exclusive erasure lock, so no worker batch is
in flight; workers drop the user's later events because they read ``erased_users`` under the
shared lock. Per-type buckets lose the user's events and one distinct user per bucket the user
appeared in; buckets left empty are deleted, as a rebuild would not produce them.
"""

from __future__ import annotations

from typing import Any

import psycopg

_SUBTRACT = """
WITH u AS (
    DELETE FROM agg_user_buckets WHERE user_id = %s
    RETURNING granularity, bucket, event_type, event_count
)
UPDATE agg_type_buckets a
SET event_count = a.event_count - u.event_count, distinct_users = a.distinct_users - 1
FROM u
WHERE a.granularity = u.granularity AND a.bucket = u.bucket AND a.event_type = u.event_type
RETURNING a.granularity, a.bucket, a.event_type, a.event_count
"""
_DROP_EMPTY = """
DELETE FROM agg_type_buckets a
USING unnest(%s::text[], %s::timestamptz[], %s::text[]) AS e(granularity, bucket, event_type)
WHERE a.granularity = e.granularity AND a.bucket = e.bucket AND a.event_type = e.event_type
  AND a.event_count = 0
"""


def erase_user_aggregates(conn: psycopg.Connection[Any], user_id: str) -> None:
    """Remove ``user_id`` from every aggregate table (no commit: the caller's transaction)."""
    rows = conn.execute(_SUBTRACT, (user_id,)).fetchall()
    empty = [(g, b, t) for g, b, t, n in rows if n == 0]
    if empty:
        grans, buckets, types = (list(c) for c in zip(*empty, strict=True))
        conn.execute(_DROP_EMPTY, (grans, buckets, types))
    conn.execute("DELETE FROM agg_user_totals WHERE user_id = %s", (user_id,))
