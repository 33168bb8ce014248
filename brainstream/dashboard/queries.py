"""What the dashboard reads: bucket series and top types from the aggregate tables, a user's
lifetime per-type counts from ``agg_user_totals``; the raw timeline comes from ``sinks.queries``.

A window is a whole number of buckets ending with the current (partial) bucket, so its sums are
exactly the sums of the aggregate rows, and distinct users are counted over the per-user buckets
of the same granularity (exact: a distinct count cannot be summed over buckets).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import psycopg
from psycopg import sql

from schemas.db import TYPE_BUCKETS_TABLE, USER_BUCKETS_TABLE, USER_TOTALS_TABLE

Connection = psycopg.Connection[Any]
Granularity = Literal["minute", "hour", "day"]
WindowName = Literal["1h", "24h", "7d"]

_STEP: Final[dict[Granularity, timedelta]] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    granularity: Granularity
    buckets: int

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """``[start, end)``: ``buckets`` buckets, the last one holding ``now``."""
        end = truncate(now, self.granularity) + _STEP[self.granularity]
        return end - self.buckets * _STEP[self.granularity], end

    def labels(self, now: datetime) -> list[datetime]:
        start, _ = self.bounds(now)
        return [start + i * _STEP[self.granularity] for i in range(self.buckets)]


WINDOWS: Final[dict[str, Window]] = {
    "1h": Window("1h", "minute", 60),
    "24h": Window("24h", "hour", 24),
    "7d": Window("7d", "hour", 168),
}


class UnknownWindow(ValueError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown window {name!r}; one of {', '.join(WINDOWS)}")


def window(name: str) -> Window:
    try:
        return WINDOWS[name]
    except KeyError:
        raise UnknownWindow(name) from None


def truncate(at: datetime, granularity: Granularity) -> datetime:
    at = at.astimezone(UTC)
    if granularity == "minute":
        return at.replace(second=0, microsecond=0)
    if granularity == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


# -- series ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Series:
    window: str
    granularity: Granularity
    buckets: list[datetime]
    counts: dict[str, list[int]]
    """Per event type, one count per bucket (zeros where the table has no row)."""


_SERIES = sql.SQL(
    "SELECT bucket, event_type, event_count FROM {table}"
    " WHERE granularity = %(g)s AND bucket >= %(start)s AND bucket < %(end)s"
).format(table=sql.Identifier(TYPE_BUCKETS_TABLE))


def fill(buckets: list[datetime], rows: list[tuple[datetime, str, int]]) -> dict[str, list[int]]:
    """Dense per-type series over ``buckets`` from sparse ``(bucket, type, count)`` rows."""
    index = {b: i for i, b in enumerate(buckets)}
    counts: dict[str, list[int]] = {}
    for bucket, event_type, n in rows:
        slot = index.get(bucket.astimezone(UTC))
        if slot is not None:
            counts.setdefault(event_type, [0] * len(buckets))[slot] += n
    return dict(sorted(counts.items()))


def series(conn: Connection, w: Window, now: datetime) -> Series:
    start, end = w.bounds(now)
    params = {"g": w.granularity, "start": start, "end": end}
    rows = [(b, str(t), int(n)) for b, t, n in conn.execute(_SERIES, params)]
    buckets = w.labels(now)
    return Series(w.name, w.granularity, buckets, fill(buckets, rows))


# -- top types ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TypeTotal:
    event_type: str
    events: int
    distinct_users: int


@dataclass(frozen=True, slots=True)
class Top:
    window: str
    start: datetime
    end: datetime
    types: list[TypeTotal]
    events: int
    distinct_users: int


_RANGE = sql.SQL("granularity = %(g)s AND bucket >= %(start)s AND bucket < %(end)s")
_TOP = sql.SQL(
    "SELECT t.event_type, t.events, coalesce(u.users, 0) FROM"
    " (SELECT event_type, sum(event_count)::bigint AS events FROM {types} WHERE {range}"
    "  GROUP BY event_type) AS t"
    " LEFT JOIN (SELECT event_type, count(DISTINCT user_id) AS users FROM {users} WHERE {range}"
    "  GROUP BY event_type) AS u USING (event_type)"
    " ORDER BY t.events DESC, t.event_type"
).format(
    types=sql.Identifier(TYPE_BUCKETS_TABLE),
    users=sql.Identifier(USER_BUCKETS_TABLE),
    range=_RANGE,
)
_ALL_USERS = sql.SQL("SELECT count(DISTINCT user_id) FROM {users} WHERE {range}").format(
    users=sql.Identifier(USER_BUCKETS_TABLE), range=_RANGE
)


def top_types(conn: Connection, w: Window, now: datetime) -> Top:
    start, end = w.bounds(now)
    params = {"g": w.granularity, "start": start, "end": end}
    types = [TypeTotal(str(t), int(n), int(u)) for t, n, u in conn.execute(_TOP, params)]
    row = conn.execute(_ALL_USERS, params).fetchone()
    users = int(row[0]) if row is not None else 0
    return Top(w.name, start, end, types, sum(t.events for t in types), users)


# -- users ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UserTypeCount:
    event_type: str
    events: int
    first_seen: datetime
    last_seen: datetime


_USER_TOTALS = sql.SQL(
    "SELECT event_type, event_count, first_seen, last_seen FROM {totals}"
    " WHERE user_id = %s ORDER BY event_count DESC, event_type"
).format(totals=sql.Identifier(USER_TOTALS_TABLE))


def user_counts(conn: Connection, user_id: str) -> list[UserTypeCount]:
    """The user's lifetime events per type, most frequent first."""
    return [
        UserTypeCount(str(t), int(n), first, last)
        for t, n, first, last in conn.execute(_USER_TOTALS, (user_id,))
    ]
