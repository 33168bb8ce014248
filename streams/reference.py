"""The reference: every aggregate recomputed by SQL from ``analytics_events``, and the check
that the streamed tables equal it (tolerance 0, every bucket of every granularity: type buckets
per minute/hour/day with exact distinct users per hour/day, user days with their hour counts).

``rebuild`` fills the ``*_rebuilt`` tables; ``verify`` rebuilds and compares in one
REPEATABLE READ transaction, so both sides are read from the same snapshot. The comparison is
meaningful once the workers and the raw sink have caught up with the same topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from psycopg import sql

from eventlog.db import Connection

_HOURS: Final = ", ".join(
    f"count(*) FILTER (WHERE extract(hour FROM e.occurred_at AT TIME ZONE 'UTC') = {h})"
    for h in range(24)
)
_REFERENCE: Final[dict[str, str]] = {
    "agg_type_buckets": """
        SELECT g.granularity, date_trunc(g.granularity, e.occurred_at, 'UTC'), e.event_type,
               count(*),
               CASE WHEN g.granularity = 'minute' THEN NULL ELSE count(DISTINCT e.user_id) END
        FROM analytics_events e
        CROSS JOIN (VALUES ('minute'), ('hour'), ('day')) AS g(granularity)
        WHERE NOT EXISTS (SELECT FROM erased_users x WHERE x.user_id = e.user_id)
        GROUP BY 1, 2, 3""",
    "agg_user_days": f"""
        SELECT e.user_id, e.event_type, (e.occurred_at AT TIME ZONE 'UTC')::date,
               ARRAY[{_HOURS}]::int4[], count(*), min(e.occurred_at), max(e.occurred_at)
        FROM analytics_events e
        WHERE NOT EXISTS (SELECT FROM erased_users x WHERE x.user_id = e.user_id)
        GROUP BY 1, 2, 3""",  # noqa: S608 (_HOURS: a constant of this module)
}
_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "agg_type_buckets": ("granularity", "bucket", "event_type"),
    "agg_user_days": ("user_id", "event_type", "day"),
}
_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "agg_type_buckets": ("event_count", "distinct_users"),
    "agg_user_days": ("event_count", "hours", "first_seen", "last_seen"),
}
TABLES: Final = tuple(_REFERENCE)


@dataclass(frozen=True, slots=True)
class Difference:
    """One key whose streamed and rebuilt values differ (``None``: the row is missing)."""

    table: str
    key: tuple[Any, ...]
    streamed: tuple[Any, ...] | None
    rebuilt: tuple[Any, ...] | None


@dataclass(slots=True)
class VerifyReport:
    rows: dict[str, int] = field(default_factory=dict)
    """Rows of each rebuilt table."""
    differences: dict[str, int] = field(default_factory=dict)
    samples: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(self.differences.values())


def rebuild(conn: Connection) -> dict[str, int]:
    """Recompute every ``*_rebuilt`` table (in the caller's transaction); rows per table."""
    rows = {}
    for table, select in _REFERENCE.items():
        target = sql.Identifier(f"{table}_rebuilt")
        conn.execute(sql.SQL("TRUNCATE {}").format(target))
        cur = conn.execute(sql.SQL("INSERT INTO {} ").format(target) + sql.SQL(select))
        rows[table] = cur.rowcount
    return rows


def verify(conn: Connection, *, fresh: bool = True, samples: int = 20) -> VerifyReport:
    """Compare the streamed tables with the reference (rebuilt first unless ``fresh=False``)."""
    report = VerifyReport()
    with conn.transaction():  # its own transaction: call it with none open
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if fresh:
            report.rows = rebuild(conn)
        for table in TABLES:
            count, found = _compare(conn, table, samples - len(report.samples))
            report.differences[table] = count
            report.samples.extend(found)
    return report


def _compare(conn: Connection, table: str, limit: int) -> tuple[int, list[Difference]]:
    keys, values = _KEYS[table], _VALUES[table]
    differs = sql.SQL(" OR ").join(
        sql.SQL("s.{0} IS DISTINCT FROM r.{0}").format(sql.Identifier(v)) for v in values
    )
    query = sql.SQL(
        "SELECT {keys}, {sv}, {rv}, s.{probe} IS NULL, r.{probe} IS NULL, count(*) OVER () "
        "FROM {live} s FULL JOIN {ref} r USING ({keys}) WHERE {differs} LIMIT {limit}"
    ).format(
        keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
        sv=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(v)) for v in values),
        rv=sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(v)) for v in values),
        probe=sql.Identifier(values[0]),
        live=sql.Identifier(table),
        ref=sql.Identifier(f"{table}_rebuilt"),
        differs=differs,
        limit=sql.Literal(max(limit, 1)),
    )
    rows = conn.execute(query).fetchall()
    if not rows:
        return 0, []
    nk, nv = len(keys), len(values)
    found = [
        Difference(
            table,
            tuple(r[:nk]),
            None if r[nk + 2 * nv] else tuple(r[nk : nk + nv]),
            None if r[nk + 2 * nv + 1] else tuple(r[nk + nv : nk + 2 * nv]),
        )
        for r in rows
    ]
    return int(rows[0][-1]), found[: max(limit, 0)]
