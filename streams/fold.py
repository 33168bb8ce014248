"""Pure folding of a batch of records into bucket deltas (no broker, no database).

Distinct users cannot be decided here: whether a user was already counted in a bucket is in
the database. So the fold yields per-(bucket, user, type) deltas and per-(bucket, type) event
count deltas; the writer adds one distinct user per user-bucket row it newly inserts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from streams.buckets import buckets_of
from streams.records import Record

UserBucketKey = tuple[str, datetime, str, str]
"""(granularity, bucket, user_id, event_type)"""
TypeBucketKey = tuple[str, datetime, str]
"""(granularity, bucket, event_type)"""
UserTotalKey = tuple[str, str]
"""(user_id, event_type)"""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)


@dataclass(slots=True)
class Seen:
    """Events of one key in this batch, and their earliest and latest event times."""

    count: int
    first: datetime
    last: datetime

    def add(self, moment: datetime) -> None:
        self.count += 1
        if moment < self.first:
            self.first = moment
        elif moment > self.last:
            self.last = moment


@dataclass(slots=True)
class Deltas:
    """What one batch adds to the aggregate tables."""

    user_buckets: dict[UserBucketKey, Seen] = field(default_factory=dict)
    type_counts: dict[TypeBucketKey, int] = field(default_factory=dict)
    user_totals: dict[UserTotalKey, Seen] = field(default_factory=dict)
    events: int = 0

    def __bool__(self) -> bool:
        return self.events > 0


def fold(records: Iterable[Record], deltas: Deltas | None = None) -> Deltas:
    """Fold ``records`` into ``deltas`` (a new one by default) and return it."""
    out = deltas if deltas is not None else Deltas()
    user_buckets, type_counts, totals = out.user_buckets, out.type_counts, out.user_totals
    # The three buckets of an event depend only on its minute: computed once per minute.
    minutes: dict[int, tuple[tuple[str, datetime], ...]] = {}
    n = 0
    for rec in records:
        moment, user, kind = rec.occurred_at, rec.user_id, rec.event_type
        index = (moment - _EPOCH) // _MINUTE
        buckets = minutes.get(index)
        if buckets is None:
            buckets = minutes[index] = buckets_of(moment)
        for granularity, bucket in buckets:
            key = (granularity, bucket, user, kind)
            seen = user_buckets.get(key)
            if seen is None:
                user_buckets[key] = Seen(1, moment, moment)
            else:
                seen.add(moment)
            tkey = (granularity, bucket, kind)
            type_counts[tkey] = type_counts.get(tkey, 0) + 1
        total = totals.get((user, kind))
        if total is None:
            totals[(user, kind)] = Seen(1, moment, moment)
        else:
            total.add(moment)
        n += 1
    out.events += n
    return out
