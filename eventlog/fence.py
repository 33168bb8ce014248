"""The offset fence of a projection, in Postgres (``stream_offsets``).

Per (projection, source topic, source partition), the next SOURCE offset the projection has not
applied. A writer locks its fence row ``FOR UPDATE``, skips what lies below it
(:func:`eventlog.offsets.admit`) and moves it in the same transaction as the rows it writes,
so two processes that both believe they own a partition serialise on the row and the later
one skips what the earlier one applied; a range delivered twice is applied once. The fence is
keyed by the projection's name, not by a Kafka consumer group, so a new group or an offset
reset never applies an event twice.

``table`` defaults to ``stream_offsets`` of the search_path; a rebuild that writes into a
shadow schema passes the live one (``sql.Identifier(schema, STREAM_OFFSETS_TABLE)``).
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg import sql

from eventlog.db import Connection
from schemas.db import STREAM_OFFSETS_TABLE

OFFSETS = sql.Identifier(STREAM_OFFSETS_TABLE)

_CREATE = sql.SQL(
    "INSERT INTO {} (consumer_group, topic, kafka_partition, next_offset)"
    " VALUES (%(p)s, %(t)s, %(k)s, 0) ON CONFLICT DO NOTHING"
)
_READ = sql.SQL(
    "SELECT next_offset FROM {}"
    " WHERE consumer_group = %(p)s AND topic = %(t)s AND kafka_partition = %(k)s FOR UPDATE"
)
_READ_ALL = sql.SQL(
    "SELECT kafka_partition, next_offset FROM {} WHERE consumer_group = %(p)s AND topic = %(t)s"
    " ORDER BY kafka_partition FOR UPDATE"
)
_MOVE = sql.SQL(
    "INSERT INTO {} AS s (consumer_group, topic, kafka_partition, next_offset)"
    " VALUES (%(p)s, %(t)s, %(k)s, %(n)s) ON CONFLICT (consumer_group, topic, kafka_partition)"
    " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = clock_timestamp()"
)


def lock(
    conn: Connection, projection: str, topic: str, partition: int, table: sql.Composable = OFFSETS
) -> int:
    """The fence of one source partition, created at 0 if missing and locked until the end of
    the caller's transaction (open one first)."""
    key = {"p": projection, "t": topic, "k": partition}
    conn.execute(_CREATE.format(table), key)
    row = conn.execute(_READ.format(table), key).fetchone()
    assert row is not None  # inserted just above
    return int(row[0])


def lock_all(
    conn: Connection, projection: str, topic: str, table: sql.Composable = OFFSETS
) -> dict[int, int]:
    """Every existing fence of ``projection`` over ``topic`` (partition -> next offset), locked
    in partition order until the end of the caller's transaction (live writers wait)."""
    rows = conn.execute(_READ_ALL.format(table), {"p": projection, "t": topic}).fetchall()
    return {int(p): int(n) for p, n in rows}


def move(
    conn: Connection,
    projection: str,
    topic: str,
    fences: Mapping[int, int],
    table: sql.Composable = OFFSETS,
) -> None:
    """Set the fences ``fences`` (partition -> next offset), in partition order, creating any
    that is missing. Call it in the transaction that wrote what the fences now cover."""
    query = _MOVE.format(table)
    for partition, offset in sorted(fences.items()):
        conn.execute(query, {"p": projection, "t": topic, "k": partition, "n": offset})
