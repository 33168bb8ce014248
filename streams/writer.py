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

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import pq

from eventlog import fence
from eventlog.db import Connection, erased_among
from eventlog.offsets import admit
from schemas.accepted import AcceptedBatch
from schemas.db import ERASURE_LOCK_KEY
from streams.fold import DAY_US, Deltas, fold, fold_columns


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
    new_user_days: int
    next_offset: int
    rows: int = 0
    """Aggregate rows upserted."""


# Data-modifying CTEs always run to completion. Rows are fed in key order, so that concurrent
# writers lock the rows they share (the type buckets) in the same order: no deadlock.
# A user-day row holds 24 hour counts; ``hours`` arrives flat (24 per row, sliced by ordinality)
# and adds element by element (24 subscripts and sums in C: no set-returning subquery per row).
# Times arrive as microseconds since the epoch and days as days since it (integers convert in
# C on both sides; exact: no float on the way).
# A user is new in an hour bucket exactly when the stored count of that hour, after the upsert,
# equals this delta's count (counts only grow), and new in a day bucket when the row is new;
# the new users per hour are 24 filtered counts per (day, type) over the returned rows (no
# set-returning function per row).
# Executed unprepared (``prepare=False``), so Postgres plans it for each take's arrays: psycopg
# prepares a statement after its 5th execution on a connection, and Postgres then switches to a
# generic plan after 5 more; in a generic plan each row's slice of the hours parameter costs
# O(rows) (measured: 3,890 rows took 6.2 s in the scan of ``d``, a 27k-row take over 300 s,
# where the custom plan takes about 1 s), and every array is estimated at 10 elements.
_HOURS_SUM = ", ".join(f"a.hours[{k}] + EXCLUDED.hours[{k}]" for k in range(1, 25))
_FRESH_HOURS = ", ".join(
    f"count(*) FILTER (WHERE d.hours[{k}] > 0 AND ud.hours[{k}] = d.hours[{k}])"
    for k in range(1, 25)
)
_UPSERT = f"""
WITH d AS (
    SELECT x.user_id, x.event_type, date '1970-01-01' + x.day AS day,
           f.h[x.i * 24 - 23 : x.i * 24] AS hours, x.n,
           timestamptz 'epoch' + x.fs * interval '1 microsecond' AS fs,
           timestamptz 'epoch' + x.ls * interval '1 microsecond' AS ls
    FROM unnest(%b::text[], %b::text[], %s::int4[], %s::int8[], %s::int8[], %s::int8[])
         WITH ORDINALITY AS x(user_id, event_type, day, n, fs, ls, i),
         (SELECT %s::int4[] AS h) AS f
), ud AS (
    INSERT INTO agg_user_days AS a
        (user_id, event_type, day, hours, event_count, first_seen, last_seen)
    SELECT user_id, event_type, day, hours, n, fs, ls FROM d
    ON CONFLICT (user_id, event_type, day) DO UPDATE SET
        hours = ARRAY[{_HOURS_SUM}],
        event_count = a.event_count + EXCLUDED.event_count,
        first_seen = LEAST(a.first_seen, EXCLUDED.first_seen),
        last_seen = GREATEST(a.last_seen, EXCLUDED.last_seen)
    RETURNING a.user_id, a.event_type, a.day, a.hours, (a.xmax = 0) AS fresh
), per_day AS (
    SELECT ud.day, ud.event_type, ARRAY[{_FRESH_HOURS}] AS users
    FROM ud JOIN d USING (user_id, event_type, day)
    GROUP BY 1, 2
), fresh AS (
    SELECT 'hour' AS granularity,
           (p.day::timestamp AT TIME ZONE 'UTC') + (z.k - 1) * interval '1 hour' AS bucket,
           p.event_type, z.n AS users
    FROM per_day p, unnest(p.users) WITH ORDINALITY AS z(n, k)
    WHERE z.n > 0
    UNION ALL
    SELECT 'day', ud.day::timestamp AT TIME ZONE 'UTC', ud.event_type,
           count(*) FILTER (WHERE ud.fresh)
    FROM ud GROUP BY 1, 2, 3
)
INSERT INTO agg_type_buckets AS a (granularity, bucket, event_type, event_count, distinct_users)
SELECT t.granularity, t.bucket, t.event_type, t.n,
       CASE WHEN t.granularity = 'minute' THEN NULL ELSE coalesce(f.users, 0) END
FROM (SELECT g AS granularity, timestamptz 'epoch' + b * interval '1 microsecond' AS bucket,
             event_type, n
      FROM unnest(%b::text[], %s::int8[], %b::text[], %s::int8[]) AS u(g, b, event_type, n)) t
LEFT JOIN fresh f USING (granularity, bucket, event_type)
ORDER BY 1, 2, 3
ON CONFLICT (granularity, bucket, event_type) DO UPDATE SET
    event_count = a.event_count + EXCLUDED.event_count,
    distinct_users = a.distinct_users + EXCLUDED.distinct_users
RETURNING (SELECT count(*) FILTER (WHERE fresh) FROM ud)
"""  # noqa: S608 (_HOURS_SUM, _FRESH_HOURS: constants of this module)


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
        new_user_days=new_rows,
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


def _int_array(values: Iterable[int]) -> str:
    """Integers as a Postgres array literal (``{1,2,3}``), for a ``%s::int8[]`` parameter.

    psycopg dumps a list parameter element by element in Python (about 0.5 us an integer, with
    the GIL held: 119 ms for a take partition's 231,600 hour counts); the literal is joined in
    C and parsed by Postgres in C (9 ms for the same counts, both sides)."""
    return "{" + ",".join(map(str, values)) + "}"


def upsert(conn: Connection, deltas: Deltas) -> int:
    """Add ``deltas`` to the aggregate tables; returns how many user-day rows are new.

    Runs in the caller's transaction, or in one of its own on an idle autocommit connection."""
    if not deltas:
        return 0
    keys = sorted(deltas.day_counts)
    index = {k: i for i, k in enumerate(keys)}
    # The hour counts as the text of their array literal: mostly zeros, one shared "0" string
    hours = ["0"] * (24 * len(keys))
    for (user, kind, hour), n in deltas.hour_counts.items():
        hours[index[(user, kind, hour // 24 * DAY_US)] * 24 + hour % 24] = str(n)
    counts, first, last = deltas.day_counts, deltas.first, deltas.last
    tb = sorted(deltas.type_counts.items())
    params: list[Any] = [
        [k[0] for k in keys],
        [k[1] for k in keys],
        _int_array(k[2] // DAY_US for k in keys),
        _int_array(counts[k] for k in keys),
        _int_array(first[k] for k in keys),
        _int_array(last[k] for k in keys),
        "{" + ",".join(hours) + "}",
        [k[0] for k, _ in tb],
        _int_array(k[1] for k, _ in tb),
        [k[2] for k, _ in tb],
        _int_array(n for _, n in tb),
    ]
    with contextlib.ExitStack() as stack:
        if conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE:
            stack.enter_context(conn.transaction())  # SET LOCAL needs one
        # The fresh-hour join of the returned rows with the delta (each side thousands of rows,
        # estimated at a dozen: no statistics on CTEs) is planned as two sorts and a merge; a
        # hash join takes 18% less of the statement (EXPLAIN ANALYZE, 17k events, 9,650 user-day
        # rows: 107 -> 88 ms). For the rest of this transaction only.
        conn.execute("SET LOCAL enable_mergejoin = off")
        rows = conn.execute(_UPSERT, params, prepare=False).fetchall()
    return int(rows[0][0]) if rows else 0
