"""Pure folding of accepted events into bucket deltas (no broker, no database).

Input: the columns of an :class:`schemas.accepted.AcceptedBatch` (already past the fence, erased
users removed). Output: what the batch adds to each aggregate table:

- ``type_counts``: events per (granularity, bucket, type), minute, hour and day;
- ``user_days``: per (user, type, UTC day): events per hour of the day (24 counts), events,
  first and last seen (the membership behind the exact distinct users per hour and day, the
  per-user hour and day counts, and, summed over days, the per-user totals).

Distinct users per hour/day cannot be decided here (whether a user was already counted in a
bucket is in the database): the writer adds one per user-day row it newly inserts, and one per
hour whose count in the stored row equals this delta's.

Per event, only C-level counting and sorting run (events per minute and type; per user, type
and hour; per user, type and day; earliest and latest per user, type and day); the one Python
loop runs over the (type, minute) keys. Times are integers (microseconds since the epoch, UTC)
all the way to the database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas.accepted import AcceptedBatch

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

UserDayKey = tuple[str, str, int]
"""(user_id, event_type, UTC day start in microseconds)"""
TypeBucketKey = tuple[str, int, str]
"""(granularity, bucket start in microseconds, event_type)"""


def to_datetime(us: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=us)


def to_us(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


UserHourKey = tuple[str, str, int]
"""(user_id, event_type, hour number since the epoch, UTC)"""


@dataclass(slots=True)
class Day:
    """One user's events of one type on one UTC day: per hour of the day, and their earliest
    and latest times (microseconds)."""

    hours: list[int]
    count: int
    first: int
    last: int


@dataclass(slots=True)
class Deltas:
    """What a batch adds to the aggregate tables.

    The user-day rows are kept as columns keyed alike (``day_counts``, ``first``, ``last``, all
    keyed by :data:`UserDayKey`) plus the events per user, type and hour (``hour_counts``), which
    is how the fold computes them and how the writer sends them; :attr:`user_days` assembles
    them into rows."""

    type_counts: dict[TypeBucketKey, int] = field(default_factory=dict)
    hour_counts: dict[UserHourKey, int] = field(default_factory=dict)
    day_counts: dict[UserDayKey, int] = field(default_factory=dict)
    first: dict[UserDayKey, int] = field(default_factory=dict)
    last: dict[UserDayKey, int] = field(default_factory=dict)
    events: int = 0

    def __bool__(self) -> bool:
        return self.events > 0

    def rows(self) -> int:
        """Aggregate rows this delta touches (upserts)."""
        return len(self.type_counts) + len(self.day_counts)

    @property
    def user_days(self) -> dict[UserDayKey, Day]:
        """The user-day rows, each with its 24 hour counts."""
        out = {k: Day([0] * 24, n, self.first[k], self.last[k]) for k, n in self.day_counts.items()}
        for (user, kind, hour), n in self.hour_counts.items():
            out[(user, kind, hour // 24 * DAY_US)].hours[hour % 24] = n
        return out


def fold_columns(types: Sequence[str], users: Sequence[str], times_us: Sequence[int]) -> Deltas:
    """Fold parallel columns (event type, user id, occurred-at in microseconds) into deltas."""
    out = Deltas(events=len(types))
    if not types:
        return out
    hours = [t // HOUR_US for t in times_us]
    minutes = Counter(zip(types, [t // MINUTE_US for t in times_us], strict=True))
    out.hour_counts = Counter(zip(users, types, hours, strict=True))
    keys = list(zip(users, types, [h // 24 * DAY_US for h in hours], strict=True))
    out.day_counts = Counter(keys)
    # Earliest and latest time per user-day key: a dict built from (key, time) pairs keeps each
    # key's last value, so pairs fed in time order keep the latest, in reverse order the earliest.
    order = sorted(range(len(keys)), key=times_us.__getitem__)
    in_order = [keys[i] for i in order]
    times = [times_us[i] for i in order]
    out.last = dict(zip(in_order, times, strict=True))
    in_order.reverse()
    times.reverse()
    out.first = dict(zip(in_order, times, strict=True))
    counts = out.type_counts
    for (kind, minute), n in minutes.items():
        start = minute * MINUTE_US
        for bucket in (
            ("minute", start, kind),
            ("hour", start - start % HOUR_US, kind),
            ("day", start - start % DAY_US, kind),
        ):
            counts[bucket] = counts.get(bucket, 0) + n
    return out


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
