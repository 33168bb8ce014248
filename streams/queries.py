"""Rolling windows over the aggregate tables.

A window is the last whole buckets of its granularity, the one holding ``now`` included (it is
still filling): 5m and 1h are 5 and 60 minute buckets, 24h is 24 hour buckets, 7d is 7 UTC day
buckets. Event counts over a window are sums of ``agg_type_buckets`` rows. Distinct users over a
window are exact: the users with a ``agg_user_days`` row whose ``last_seen`` is at or after the
window's start, i.e. who did something since then (only the rows of the window's UTC days are
read, through the index on ``day``). A user's lifetime totals are the sums of their day rows.
A user's own counts over a window come from the raw table's ``(user_id, occurred_at)`` index,
equal to the aggregates by construction (both hold exactly what the sink stored). The dashboard
charts these same windows, so a label means the same numbers everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from eventlog.db import Connection
from streams.buckets import STEP, Granularity, truncate
from streams.errors import UnknownWindow


@dataclass(frozen=True, slots=True)
class Window:
    """The last ``spans`` buckets of ``granularity``, the one holding ``now`` included."""

    name: str
    granularity: Granularity
    spans: int

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """``[start, end)``: ``end`` is the end of the bucket holding ``now``."""
        step = STEP[self.granularity]
        end = truncate(now, self.granularity) + step
        return end - self.spans * step, end


WINDOWS: Final[dict[str, Window]] = {
    w.name: w
    for w in (
        Window("5m", "minute", 5),
        Window("1h", "minute", 60),
        Window("24h", "hour", 24),
        # Distinct users over day buckets: a week of hour buckets is 24 times the rows.
        Window("7d", "day", 7),
    )
}


def window(name: str) -> Window:
    """The rolling window called ``name``.

    Raises:
        UnknownWindow: no window of :data:`WINDOWS` has that name.
    """
    try:
        return WINDOWS[name]
    except KeyError:
        raise UnknownWindow(name, tuple(WINDOWS)) from None


@dataclass(frozen=True, slots=True)
class TypeCount:
    event_type: str
    events: int
    distinct_users: int


@dataclass(frozen=True, slots=True)
class UserCount:
    event_type: str
    events: int
    first_seen: datetime
    last_seen: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
        }


_TYPES = """
SELECT c.event_type, c.events, coalesce(u.users, 0)
FROM (SELECT event_type, sum(event_count)::bigint AS events FROM agg_type_buckets
      WHERE granularity = %(g)s AND bucket >= %(lo)s AND bucket < %(hi)s GROUP BY 1) c
LEFT JOIN (SELECT event_type, count(DISTINCT user_id) AS users FROM agg_user_days
           WHERE day >= (%(lo)s AT TIME ZONE 'UTC')::date AND last_seen >= %(lo)s GROUP BY 1) u
USING (event_type)
ORDER BY c.events DESC, c.event_type
"""
_ALL_USERS = """
SELECT count(DISTINCT user_id) FROM agg_user_days
WHERE day >= (%(lo)s AT TIME ZONE 'UTC')::date AND last_seen >= %(lo)s
"""
_USER = """
SELECT event_type, count(*), min(occurred_at), max(occurred_at)
FROM analytics_events
WHERE user_id = %(u)s AND occurred_at >= %(lo)s AND occurred_at < %(hi)s
GROUP BY 1 ORDER BY 1
"""
_TOTALS = """
SELECT event_type, sum(event_count)::int8, min(first_seen), max(last_seen) FROM agg_user_days
WHERE user_id = %s GROUP BY 1 ORDER BY 1
"""


def _range(w: Window, now: datetime | None) -> dict[str, Any]:
    start, end = w.bounds(now if now is not None else datetime.now(UTC))
    return {"g": w.granularity, "lo": start, "hi": end}


def types_in_window(conn: Connection, w: Window, now: datetime | None = None) -> list[TypeCount]:
    """Events and exact distinct users per type over the window."""
    rows = conn.execute(_TYPES, _range(w, now)).fetchall()
    return [TypeCount(t, int(n), int(u)) for t, n, u in rows]


def users_in_window(conn: Connection, w: Window, now: datetime | None = None) -> int:
    """Distinct users of any type over the window."""
    row = conn.execute(_ALL_USERS, _range(w, now)).fetchone()
    return int(row[0]) if row else 0


def user_in_window(
    conn: Connection, user_id: str, w: Window, now: datetime | None = None
) -> list[UserCount]:
    rows = conn.execute(_USER, {"u": user_id, **_range(w, now)}).fetchall()
    return [UserCount(t, int(n), f, last) for t, n, f, last in rows]


def user_totals(conn: Connection, user_id: str) -> list[UserCount]:
    rows = conn.execute(_TOTALS, (user_id,)).fetchall()
    return [UserCount(t, int(n), f, last) for t, n, f, last in rows]


def types_json(conn: Connection, w: Window, now: datetime | None = None) -> dict[str, Any]:
    """The ``/aggregates/types`` document."""
    now = now if now is not None else datetime.now(UTC)
    counts = types_in_window(conn, w, now)
    start, end = w.bounds(now)
    return {
        "window": w.name,
        "granularity": w.granularity,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "types": {c.event_type: {"events": c.events, "users": c.distinct_users} for c in counts},
        "events": sum(c.events for c in counts),
        "users": users_in_window(conn, w, now),
    }


def user_json(conn: Connection, user_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The ``/aggregates/users/{user_id}`` document: lifetime totals and every window."""
    return {
        "user_id": user_id,
        "totals": {c.event_type: c.as_json() for c in user_totals(conn, user_id)},
        "windows": {
            name: {c.event_type: c.as_json() for c in user_in_window(conn, user_id, w, now)}
            for name, w in WINDOWS.items()
        },
    }
