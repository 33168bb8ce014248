"""Retention of ``analytics_events``: drop whole day partitions, pre-create future ones.

Dropping a partition is catalog work plus unlinking its files: the cost grows with the number
of partitions dropped, not with the rows in them. Only the rows of expired days that sit in the
default partition (very late events) are deleted row by row.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

import psycopg
from psycopg import sql

from schemas.db import ERASURE_LOCK_KEY, EVENTS_TABLE
from sinks.config import RetentionConfig

PARTITION_PREFIX = f"{EVENTS_TABLE}_p"
DEFAULT_PARTITION = f"{EVENTS_TABLE}_default"
_DAY = re.compile(re.escape(PARTITION_PREFIX) + r"(\d{8})$")

_PARTITIONS = """
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass(%s)
"""


@dataclass(frozen=True, slots=True)
class RetentionReport:
    cutoff: date
    """Events before 00:00 UTC of this day are gone."""
    dropped: list[str]
    default_rows_deleted: int
    created: int
    seconds: float


def partition_day(name: str) -> date | None:
    match = _DAY.match(name)
    return datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def expired(names: Iterable[str], cutoff: date) -> list[str]:
    """Day partitions whose whole day lies before ``cutoff``, oldest first."""
    dated = [(day, n) for n in names if (day := partition_day(n)) is not None and day < cutoff]
    return [n for _day, n in sorted(dated)]


def cutoff_for(today: date, config: RetentionConfig) -> date:
    return today - timedelta(days=config.days)


def run_retention(
    conn: psycopg.Connection[tuple[object, ...]], config: RetentionConfig, today: date
) -> RetentionReport:
    """Apply retention as of ``today`` (UTC). Needs the table owner's role (partition DDL)."""
    started = time.perf_counter()
    cutoff = cutoff_for(today, config)
    dropped = _drop_expired(conn, cutoff, config)
    deleted, created = _maintain(conn, cutoff, today, config)
    return RetentionReport(cutoff, dropped, deleted, created, time.perf_counter() - started)


def _set_lock_timeout(conn: psycopg.Connection[tuple[object, ...]], seconds: float) -> None:
    conn.execute(
        "SELECT set_config('lock_timeout', %s, true)", (f"{max(1, round(seconds * 1000))}ms",)
    )


def _drop_expired(
    conn: psycopg.Connection[tuple[object, ...]], cutoff: date, config: RetentionConfig
) -> list[str]:
    # Plain DROP: brief ACCESS EXCLUSIVE on the parent, bounded by lock_timeout; the sink's
    # inserts simply wait for it. No advisory lock here, so a slow reader cannot stall the sink.
    with conn.transaction():
        _set_lock_timeout(conn, config.lock_timeout_seconds)
        names = [str(r[0]) for r in conn.execute(_PARTITIONS, (EVENTS_TABLE,))]
        victims = expired(names, cutoff)
        if victims:
            tables = sql.SQL(", ").join(map(sql.Identifier, victims))
            conn.execute(sql.SQL("DROP TABLE {}").format(tables))
    return victims


def _maintain(
    conn: psycopg.Connection[tuple[object, ...]],
    cutoff: date,
    today: date,
    config: RetentionConfig,
) -> tuple[int, int]:
    # Creating a partition moves its rows out of the default partition; the exclusive erasure
    # lock keeps sink batches from adding rows to the default partition meanwhile.
    with conn.transaction():
        _set_lock_timeout(conn, config.lock_timeout_seconds)
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ERASURE_LOCK_KEY,))
        limit = datetime.combine(cutoff, dtime(0), UTC)
        deleted = conn.execute(
            sql.SQL("DELETE FROM {} WHERE occurred_at < %s").format(
                sql.Identifier(DEFAULT_PARTITION)
            ),
            (limit,),
        ).rowcount
        row = conn.execute(
            "SELECT bs_ensure_event_partitions(%s, %s)",
            (today, today + timedelta(days=config.days_ahead)),
        ).fetchone()
    return deleted, int(str(row[0])) if row else 0
