"""One batch, one transaction: COPY into a staging table, then INSERT … ON CONFLICT DO NOTHING.

A data error (e.g. a NUL that ``jsonb`` refuses) rolls back to a savepoint and the batch is
bisected until the offending rows are isolated; they are returned as rejections for the DLQ and
the rest is written in the same transaction. Connection and transaction failures propagate
(``psycopg.OperationalError``) for the caller to retry the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from schemas import FieldError
from schemas.db import ERASED_USERS_TABLE, ERASURE_LOCK_KEY, EVENTS_TABLE
from sinks.records import Rejection, Row

STAGE_TABLE = "bs_sink_stage"
COLUMNS = (
    "event_id",
    "occurred_at",
    "kafka_offset",
    "kafka_partition",
    "schema_version",
    "event_type",
    "user_id",
    "source",
    "properties",
)
COPY_TYPES = ("uuid", "timestamptz", "int8", "int4", "int2", "text", "text", "text", "text")


@dataclass(slots=True)
class WriteResult:
    staged: int = 0
    inserted: int = 0
    erased: int = 0
    """Rows dropped because their user is in ``erased_users``."""
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        """Rows skipped by ON CONFLICT: already stored (redelivery or replay)."""
        return self.staged - self.inserted - self.erased

    def add(self, other: WriteResult) -> None:
        self.staged += other.staged
        self.inserted += other.inserted
        self.erased += other.erased
        self.rejected.extend(other.rejected)


def _cols() -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, COLUMNS))


_CREATE_STAGE = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS {stage} (event_id uuid, occurred_at timestamptz,"
    " kafka_offset bigint, kafka_partition integer, schema_version smallint, event_type text,"
    " user_id text, source text, properties text) ON COMMIT DELETE ROWS"
).format(stage=sql.Identifier(STAGE_TABLE))
_COPY = sql.SQL("COPY {stage} ({cols}) FROM STDIN (FORMAT BINARY)").format(
    stage=sql.Identifier(STAGE_TABLE), cols=_cols()
)
_DROP_ERASED = sql.SQL("DELETE FROM {stage} s USING {erased} e WHERE e.user_id = s.user_id").format(
    stage=sql.Identifier(STAGE_TABLE), erased=sql.Identifier(ERASED_USERS_TABLE)
)
_INSERT = sql.SQL(
    "INSERT INTO {events} ({cols}) SELECT event_id, occurred_at, kafka_offset, kafka_partition,"
    " schema_version, event_type, user_id, source, properties::jsonb FROM {stage}"
    " ON CONFLICT DO NOTHING"
).format(events=sql.Identifier(EVENTS_TABLE), cols=_cols(), stage=sql.Identifier(STAGE_TABLE))
_CLEAR = sql.SQL("DELETE FROM {stage}").format(stage=sql.Identifier(STAGE_TABLE))


def prepare(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create this session's staging table (temporary, unlogged by nature, emptied at commit)."""
    with conn.transaction():
        conn.execute(_CREATE_STAGE)


def write_batch(conn: psycopg.Connection[tuple[object, ...]], rows: list[Row]) -> WriteResult:
    """Write ``rows`` in one transaction (committed on return)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ERASURE_LOCK_KEY,))
        if not rows:
            return WriteResult()
        try:
            with conn.transaction():
                return _write(conn, rows, clear=False)
        except psycopg.DataError:
            return _bisect(conn, rows)


def _write(
    conn: psycopg.Connection[tuple[object, ...]], rows: list[Row], *, clear: bool
) -> WriteResult:
    with conn.cursor() as cur:
        with cur.copy(_COPY) as copy:
            copy.set_types(list(COPY_TYPES))
            for row in rows:
                copy.write_row(row.copy_values())
        erased = cur.execute(_DROP_ERASED).rowcount
        inserted = cur.execute(_INSERT).rowcount
        if clear:
            cur.execute(_CLEAR)
    return WriteResult(staged=len(rows), inserted=inserted, erased=erased)


def _bisect(conn: psycopg.Connection[tuple[object, ...]], rows: list[Row]) -> WriteResult:
    result = WriteResult()
    pending = [rows]
    while pending:
        part = pending.pop()
        try:
            with conn.transaction():
                result.add(_write(conn, part, clear=True))
        except psycopg.DataError as exc:
            if len(part) == 1:
                result.rejected.append(_persist_rejection(part[0], exc))
            else:
                half = len(part) // 2
                pending += [part[half:], part[:half]]
    return result


def _persist_rejection(row: Row, exc: psycopg.DataError) -> Rejection:
    # The server's message may quote the value; only the SQLSTATE and class travel on.
    rule = exc.sqlstate or "client"
    error = FieldError("<row>", rule, "rejected by the database")
    return Rejection(row.origin, "persist", type(exc).__name__, (error,))
