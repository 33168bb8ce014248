"""What the dashboard reads: bucket series and top types from the aggregate tables; a user's
lifetime per-type counts come from ``streams.queries`` and the raw timeline from ``sinks.queries``.

Windows are those of :mod:`streams.queries`: a whole number of buckets ending with the current
(partial) bucket, so their sums are exactly the sums of the aggregate rows, and distinct users
are the users whose ``last_seen`` is at or after the window's start (exact, from the rows of
``agg_user_days`` for the window's days: a distinct count cannot be summed over buckets).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from psycopg import sql

from eventlog.db import Connection
from schemas.db import TYPE_BUCKETS_TABLE, USER_DAYS_TABLE
from streams.buckets import STEP, Granularity, truncate
from streams.errors import UnknownWindow
from streams.queries import UserCount, user_totals
from streams.queries import Window as StreamWindow
from streams.queries import window as stream_window


@dataclass(frozen=True, slots=True)
class ChartWindow:
    """A window of :mod:`streams.queries` (the same range, the same exact distinct counts, so
    ``brainstream top`` and the dashboard agree), charted in ``granularity`` buckets (as fine
    as the window's own or finer, so the chart covers exactly the same range)."""

    name: str
    granularity: Granularity
    extent: StreamWindow

    @property
    def span(self) -> Granularity:
        """The granularity the window is made of."""
        return self.extent.granularity

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """``[start, end)``: the window's buckets, the last one holding ``now``."""
        return self.extent.bounds(now)

    def labels(self, now: datetime) -> list[datetime]:
        """The chart's buckets, from the window's start up to the one holding ``now``."""
        start, _ = self.bounds(now)
        step = STEP[self.granularity]
        count = (truncate(now, self.granularity) - start) // step + 1
        return [start + i * step for i in range(count)]


WINDOWS: Final[dict[str, ChartWindow]] = {
    "1h": ChartWindow("1h", "minute", stream_window("1h")),
    "24h": ChartWindow("24h", "hour", stream_window("24h")),
    "7d": ChartWindow("7d", "hour", stream_window("7d")),
}


def window(name: str) -> ChartWindow:
    """The dashboard's window called ``name``.

    Raises:
        UnknownWindow: the dashboard charts no window of that name.
    """
    try:
        return WINDOWS[name]
    except KeyError:
        raise UnknownWindow(name, tuple(WINDOWS)) from None


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


def series(conn: Connection, w: ChartWindow, now: datetime) -> Series:
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
class Distinct:
    """Distinct users per type and overall over a window, as of ``as_of``."""

    per_type: dict[str, int]
    overall: int
    as_of: datetime


@dataclass(frozen=True, slots=True)
class Top:
    window: str
    start: datetime
    end: datetime
    types: list[TypeTotal]
    events: int
    distinct_users: int
    distinct_as_of: datetime


_RANGE = sql.SQL("granularity = %(g)s AND bucket >= %(start)s AND bucket < %(end)s")
_EVENTS = sql.SQL(
    "SELECT event_type, sum(event_count)::bigint FROM {types} WHERE {range} GROUP BY event_type"
).format(types=sql.Identifier(TYPE_BUCKETS_TABLE), range=_RANGE)
# One scan for both: per type, and overall (the empty grouping set, event_type NULL).
_DISTINCT = sql.SQL(
    "SELECT event_type, count(DISTINCT user_id) FROM {users}"
    " WHERE day >= (%(start)s AT TIME ZONE 'UTC')::date AND last_seen >= %(start)s"
    " GROUP BY GROUPING SETS ((event_type), ())"
).format(users=sql.Identifier(USER_DAYS_TABLE))


def _params(w: ChartWindow, now: datetime) -> dict[str, Any]:
    start, end = w.bounds(now)
    return {"g": w.span, "start": start, "end": end}


def event_totals(conn: Connection, w: ChartWindow, now: datetime) -> dict[str, int]:
    """Events per type over the window (cheap: one row per type and bucket)."""
    return {str(t): int(n) for t, n in conn.execute(_EVENTS, _params(w, now))}


def distinct_users(conn: Connection, w: ChartWindow, now: datetime) -> Distinct:
    """Exact distinct users over the window (one index range of ``agg_user_days.day``:
    the rows of the days the window spans, those with last_seen since its start)."""
    per_type, overall = {}, 0
    for event_type, users in conn.execute(_DISTINCT, _params(w, now)):
        if event_type is None:
            overall = int(users)
        else:
            per_type[str(event_type)] = int(users)
    return Distinct(per_type, overall, now)


def top(w: ChartWindow, now: datetime, events: dict[str, int], users: Distinct) -> Top:
    """Types by events, most frequent first, with their distinct users."""
    types = [
        TypeTotal(t, n, users.per_type.get(t, 0))
        for t, n in sorted(events.items(), key=lambda item: (-item[1], item[0]))
    ]
    start, end = w.bounds(now)
    return Top(w.name, start, end, types, sum(events.values()), users.overall, users.as_of)


# -- users ----------------------------------------------------------------------------------
def user_counts(conn: Connection, user_id: str) -> list[UserCount]:
    """The user's lifetime events per type (sums of ``agg_user_days``), most frequent first."""
    return sorted(user_totals(conn, user_id), key=lambda c: (-c.events, c.event_type))
