"""Pure folding of accepted events into bucket deltas (no broker, no database).

Input: the columns of an :class:`schemas.accepted.AcceptedBatch` (already past the fence, erased
users removed). Output: what the batch adds to each aggregate table:

- ``type_counts``: events per (granularity, bucket, type), minute, hour and day;
- ``user_buckets``: per (granularity, bucket, user, type), hour and day: events, first and last
  seen (the membership behind the exact distinct users per hour and day);
- ``user_totals``: per (user, type): events, first and last seen.

Distinct users per hour/day cannot be decided here (whether a user was already counted in a
bucket is in the database): the writer adds one per user-bucket row it newly inserts.

The loop touches two dictionaries per event (minute per type; hour per user and type); the hour,
day and total rows are derived from those, so a batch's cost grows with its distinct keys, not
its events. Times are integers (microseconds since the epoch, UTC) until the writer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from schemas.accepted import AcceptedBatch

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
K = TypeVar("K")

UserBucketKey = tuple[str, int, str, str]
"""(granularity, bucket start in microseconds, user_id, event_type)"""
TypeBucketKey = tuple[str, int, str]
"""(granularity, bucket start in microseconds, event_type)"""
UserTotalKey = tuple[str, str]
"""(user_id, event_type)"""


def to_datetime(us: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=us)


def to_us(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


@dataclass(slots=True)
class Seen:
    """Events of one key, and their earliest and latest times (microseconds)."""

    count: int
    first: int
    last: int

    def merge(self, other: Seen) -> None:
        self.count += other.count
        if other.first < self.first:
            self.first = other.first
        if other.last > self.last:
            self.last = other.last


@dataclass(slots=True)
class Deltas:
    """What a batch adds to the aggregate tables."""

    type_counts: dict[TypeBucketKey, int] = field(default_factory=dict)
    user_buckets: dict[UserBucketKey, Seen] = field(default_factory=dict)
    user_totals: dict[UserTotalKey, Seen] = field(default_factory=dict)
    events: int = 0

    def __bool__(self) -> bool:
        return self.events > 0

    def rows(self) -> int:
        """Aggregate rows this delta touches (upserts)."""
        return len(self.type_counts) + len(self.user_buckets) + len(self.user_totals)


def fold_columns(types: Sequence[str], users: Sequence[str], times_us: Sequence[int]) -> Deltas:
    """Fold parallel columns (event type, user id, occurred-at in microseconds) into deltas."""
    out = Deltas(events=len(types))
    if not types:
        return out
    minutes = Counter(zip(types, [t // MINUTE_US for t in times_us], strict=True))
    hours: dict[tuple[str, str, int], list[int]] = {}
    get = hours.get
    for kind, user, at in zip(types, users, times_us, strict=True):
        key = (user, kind, at // HOUR_US)
        seen = get(key)
        if seen is None:
            hours[key] = [1, at, at]
        else:
            seen[0] += 1
            if at < seen[1]:
                seen[1] = at
            elif at > seen[2]:
                seen[2] = at
    counts = out.type_counts
    for (kind, minute), n in minutes.items():
        start = minute * MINUTE_US
        for bucket in (
            ("minute", start, kind),
            ("hour", start - start % HOUR_US, kind),
            ("day", start - start % DAY_US, kind),
        ):
            counts[bucket] = counts.get(bucket, 0) + n
    buckets, totals = out.user_buckets, out.user_totals
    for (user, kind, hour), (n, first, last) in hours.items():
        start = hour * HOUR_US
        buckets[("hour", start, user, kind)] = Seen(n, first, last)
        _merge(buckets, ("day", start - start % DAY_US, user, kind), n, first, last)
        _merge(totals, (user, kind), n, first, last)
    return out


def _merge(table: dict[K, Seen], key: K, n: int, first: int, last: int) -> None:
    seen = table.get(key)
    if seen is None:
        table[key] = Seen(n, first, last)
    else:
        seen.merge(Seen(n, first, last))


def fold(batch: AcceptedBatch, skip_users: frozenset[str] | set[str] = frozenset()) -> Deltas:
    """Fold every event of ``batch`` (its users in ``skip_users`` left out)."""
    if not skip_users:
        return fold_columns(batch.types, batch.user_ids, batch.occurred_at_us)
    keep = [i for i, u in enumerate(batch.user_ids) if u not in skip_users]
    return fold_columns(
        [batch.types[i] for i in keep],
        [batch.user_ids[i] for i in keep],
        [batch.occurred_at_us[i] for i in keep],
    )
