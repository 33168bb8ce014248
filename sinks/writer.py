"""One batch, one transaction: COPY into a staging table, then INSERT … ON CONFLICT DO NOTHING.

Fast path first: in the common case (no event of the batch stored yet) the rows are COPYed
straight into ``analytics_events`` inside a savepoint, after the batch's erased users were looked
up and left out. The primary key still guards exactly-once: if any row is already stored
(redelivery, replay, a duplicate inside the batch, a concurrent writer), the COPY fails with a
unique violation, the savepoint is rolled back and the batch takes the staging path, whose
``ON CONFLICT DO NOTHING`` skips and counts the duplicates. The savepoint costs a wasted COPY on
redelivered batches only; a straight COPY costs about half of ``INSERT … SELECT … ON CONFLICT``.

A fault of one row (:data:`ROW_FAULTS`: a data or constraint error of the server, e.g. a NUL
that ``jsonb`` refuses, or a value the client cannot encode for COPY) rolls back to a savepoint
and the batch is bisected until the offending rows are isolated; they are returned as
rejections for the DLQ (stage ``persist``) and the rest is written in the same transaction.
Connection and transaction failures propagate (``psycopg.OperationalError``) for the caller to
retry the whole batch.

Every path also says which rows the table now holds *by their own source coordinate*
(``WriteResult.accepted``, the sink's forwarding rule, :mod:`sinks.forward`): on the fast path
every row COPYed was stored by it; on the staging path a join of the staged rows with the
table on the primary key and the lineage columns finds them, whether this transaction
inserted them or an earlier processing of the same offsets did (a crash, a zombie).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.types.json import set_json_dumps

from eventlog.db import erased_among
from schemas import FieldError
from schemas.db import ERASED_USERS_TABLE, ERASURE_LOCK_KEY, EVENTS_TABLE
from schemas.errors import BrainstreamError
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


ROW_FAULTS: tuple[type[Exception], ...] = (
    psycopg.DataError,
    psycopg.IntegrityError,
    ValueError,
    TypeError,
    OverflowError,
)
"""Failures a single row can cause: the server's data (22xxx) and integrity (23xxx) errors, and
the client's errors while encoding a value for COPY. Anything else (connection, protocol,
SQL) concerns the whole batch and propagates."""


@dataclass(slots=True)
class WriteResult:
    staged: int = 0
    inserted: int = 0
    erased: int = 0
    """Rows dropped because their user is in ``erased_users``."""
    rejected: list[Rejection] = field(default_factory=list)
    accepted: list[Row] = field(default_factory=list)
    """The rows whose stored row carries their own (partition, offset): what the batch
    forwards. Excludes duplicates stored by another record, erased users and rejections."""

    @property
    def duplicates(self) -> int:
        """Rows skipped by ON CONFLICT: already stored (redelivery or replay)."""
        return self.staged - self.inserted - self.erased

    def add(self, other: WriteResult) -> None:
        self.staged += other.staged
        self.inserted += other.inserted
        self.erased += other.erased
        self.rejected.extend(other.rejected)
        self.accepted.extend(other.accepted)


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
_COPY_DIRECT = sql.SQL("COPY {events} ({cols}) FROM STDIN (FORMAT BINARY)").format(
    events=sql.Identifier(EVENTS_TABLE), cols=_cols()
)
DIRECT_TYPES = (*COPY_TYPES[:-1], "jsonb")
_STORED_HERE = sql.SQL(
    "SELECT s.kafka_partition, s.kafka_offset FROM {stage} s JOIN {events} e"
    " ON e.event_id = s.event_id AND e.occurred_at = s.occurred_at"
    " WHERE e.kafka_partition = s.kafka_partition AND e.kafka_offset = s.kafka_offset"
).format(stage=sql.Identifier(STAGE_TABLE), events=sql.Identifier(EVENTS_TABLE))
_CLEAR = sql.SQL("DELETE FROM {stage}").format(stage=sql.Identifier(STAGE_TABLE))


PRIVILEGES = {EVENTS_TABLE: ("SELECT", "INSERT"), ERASED_USERS_TABLE: ("SELECT",)}
"""What the sink does to each table (the grants of migration 0010 to ``brainstream_sink``);
it also needs TEMPORARY on the database, for its staging table."""


class PrivilegeMissing(BrainstreamError):
    """The sink's Postgres role lacks a privilege the sink needs; the one line names the role
    and the grants that fix it."""

    def __init__(self, role: str, missing: list[str]) -> None:
        grants = "; ".join(f"GRANT {m} TO {role}" for m in missing)
        super().__init__(
            f"Postgres role {role!r} lacks {', '.join(missing)}, which the sink needs: "
            f"{grants} (or to brainstream_sink, the group role the migrations grant it to), "
            "or check BRAINSTREAM_POSTGRES_DSN"
        )
        self.role = role
        self.missing = missing


def require_privileges(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Check, in one query, that the connection's role holds :data:`PRIVILEGES` and
    TEMPORARY on the database (a table not migrated yet is left to the write to report).

    Raises:
        PrivilegeMissing: what is missing, named as grants."""
    checks = [(table, p) for table, privileges in PRIVILEGES.items() for p in privileges]
    probes = sql.SQL(", ").join(
        sql.SQL("has_table_privilege(to_regclass({}), {})").format(table, p) for table, p in checks
    )
    with conn.transaction():
        row = conn.execute(
            sql.SQL(
                "SELECT current_user, current_database(),"
                " has_database_privilege(current_database(), 'TEMPORARY'), {}"
            ).format(probes)
        ).fetchone()
    assert row is not None
    role, database, temporary, *held = row
    missing = [
        f"{p} ON {table}" for (table, p), ok in zip(checks, held, strict=True) if ok is False
    ]
    if not temporary:
        missing.append(f"TEMPORARY ON DATABASE {database}")
    if missing:
        raise PrivilegeMissing(str(role), missing)


def create_staging(conn: psycopg.Connection[tuple[object, ...]]) -> None:
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
                return _copy_direct(conn, rows)
        except psycopg.errors.UniqueViolation:
            pass  # some rows are stored already: the staging path skips them
        except ROW_FAULTS:
            return _bisect(conn, rows)
        try:
            with conn.transaction():
                return _write(conn, rows, clear=False)
        except ROW_FAULTS:
            return _bisect(conn, rows)


def _verbatim(text: str) -> str:
    return text


def _copy_direct(conn: psycopg.Connection[tuple[object, ...]], rows: list[Row]) -> WriteResult:
    """COPY the rows of not-erased users straight into the table (fails on any stored row).

    The shared erasure lock is held, so ``erased_users`` cannot gain a user of this batch
    before the commit."""
    erased = _erased_among(conn, rows)
    kept = [r for r in rows if r.user_id not in erased] if erased else rows
    with conn.cursor() as cur:
        set_json_dumps(_verbatim, context=cur)  # properties are validated JSON text already
        with cur.copy(_COPY_DIRECT) as copy:
            copy.set_types(list(DIRECT_TYPES))
            for row in kept:
                copy.write_row(row.copy_values())
    return WriteResult(
        staged=len(rows), inserted=len(kept), erased=len(rows) - len(kept), accepted=kept
    )


def _erased_among(conn: psycopg.Connection[tuple[object, ...]], rows: list[Row]) -> set[str]:
    return erased_among(conn, (r.user_id for r in rows))


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
        here = {(int(p), int(o)) for p, o in cur.execute(_STORED_HERE)}  # type: ignore[call-overload]
        if clear:
            cur.execute(_CLEAR)
    accepted = [r for r in rows if (r.kafka_partition, r.kafka_offset) in here]
    return WriteResult(staged=len(rows), inserted=inserted, erased=erased, accepted=accepted)


def _bisect(conn: psycopg.Connection[tuple[object, ...]], rows: list[Row]) -> WriteResult:
    result = WriteResult()
    pending = [rows]
    while pending:
        part = pending.pop()
        try:
            with conn.transaction():
                result.add(_write(conn, part, clear=True))
        except ROW_FAULTS as exc:
            if len(part) == 1:
                result.rejected.append(_persist_rejection(part[0], exc))
            else:
                half = len(part) // 2
                pending += [part[half:], part[:half]]
    return result


def _persist_rejection(row: Row, exc: Exception) -> Rejection:
    # The server's message may quote the value; only the SQLSTATE and class travel on.
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        error = FieldError("<row>", sqlstate, "rejected by the database")
    else:
        error = FieldError(
            "<row>", "client", f"not encodable for the database ({type(exc).__name__})"
        )
    return Rejection(row.origin, "persist", type(exc).__name__, (error,))
