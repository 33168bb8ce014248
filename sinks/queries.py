"""Read helpers over ``analytics_events`` that match its indexes.

- a user's timeline, newest first, keyset-paged on (occurred_at, event_id): index
  (user_id, occurred_at);
- counts by type over a time range: index (occurred_at), or (event_type, occurred_at) when
  the types are given.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import sql
from psycopg.rows import class_row

from eventlog.db import Connection
from schemas.db import EVENTS_TABLE

_EVENTS = sql.Identifier(EVENTS_TABLE)


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    event_id: uuid.UUID
    occurred_at: datetime
    event_type: str
    source: str
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after the last event of a page (exclusive)."""

    occurred_at: datetime
    event_id: uuid.UUID

    def token(self) -> str:
        return f"{self.occurred_at.isoformat()}/{self.event_id}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        at, _, event_id = token.rpartition("/")
        return cls(datetime.fromisoformat(at), uuid.UUID(event_id))


_TIMELINE = sql.SQL(
    "SELECT event_id, occurred_at, event_type, source, properties FROM {events}"
    " WHERE user_id = %(user)s AND occurred_at <= %(at)s AND occurred_at >= %(since)s"
    " AND (occurred_at, event_id) < (%(at)s, %(id)s)"
    " ORDER BY occurred_at DESC, event_id DESC LIMIT %(limit)s"
).format(events=_EVENTS)

_MAX_UUID = uuid.UUID(int=(1 << 128) - 1)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def user_timeline(
    conn: Connection,
    user_id: str,
    *,
    limit: int = 50,
    after: Cursor | None = None,
    until: datetime | None = None,
    since: datetime | None = None,
) -> tuple[list[TimelineEvent], Cursor | None]:
    """One page of ``user_id``'s events, newest first; pass the returned cursor for the next."""
    if after is not None:
        at, event_id = after.occurred_at, after.event_id
    else:
        at, event_id = until or _LATEST, _MAX_UUID
    params = {
        "user": user_id,
        "at": at,
        "id": event_id,
        "since": since or _EARLIEST,
        "limit": limit,
    }
    with conn.cursor(row_factory=class_row(TimelineEvent)) as cur:
        page = cur.execute(_TIMELINE, params).fetchall()
    last = page[-1] if len(page) == limit else None
    return page, Cursor(last.occurred_at, last.event_id) if last else None


def counts_by_type(
    conn: Connection, start: datetime, end: datetime, types: list[str] | None = None
) -> dict[str, int]:
    """Events per type with ``start <= occurred_at < end``."""
    where: sql.Composable = sql.SQL("occurred_at >= %(start)s AND occurred_at < %(end)s")
    if types is not None:
        where = sql.SQL("event_type = ANY(%(types)s) AND ") + where
    query = sql.SQL(
        "SELECT event_type, count(*) FROM {events} WHERE {where} GROUP BY event_type ORDER BY 1"
    ).format(events=_EVENTS, where=where)
    rows = conn.execute(query, {"start": start, "end": end, "types": types}).fetchall()
    return {str(t): int(n) for t, n in rows}


def explain(conn: Connection, query: sql.Composable, params: dict[str, Any]) -> str:
    """The plan of ``query`` as text (used by tests and ``brainstream events explain``)."""
    rows = conn.execute(sql.SQL("EXPLAIN ") + query, params).fetchall()
    return "\n".join(str(r[0]) for r in rows)


TIMELINE_QUERY = _TIMELINE
