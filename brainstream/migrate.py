"""Applies the versioned SQL migrations of ``schemas.sql`` (idempotent, one at a time)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from schemas.errors import BrainstreamError
from schemas.sql import Migration, migrations

_LOCK_KEY = 0x6272_6169_6E73  # "brains": serialises concurrent migrators
_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


class MigrationError(BrainstreamError, RuntimeError):
    """A migration failed, or an applied one was edited after the fact."""


def migrate(
    conninfo: str,
    db_schema: str = "public",
    *,
    days_back: int = 3,
    days_ahead: int = 7,
    today: Callable[[], date] = lambda: datetime.now(UTC).date(),
) -> list[Migration]:
    """Apply pending migrations in ``db_schema`` and pre-create day partitions around today.

    Returns the migrations applied by this call (empty when the database was up to date).

    Raises:
        MigrationError: an applied migration's file was changed after it was applied.
    """
    applied_now: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        schema = sql.Identifier(db_schema)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(sql.SQL("SET search_path TO {}").format(schema))
        for migration in migrations():
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute(_LEDGER)
                row = conn.execute(
                    "SELECT checksum FROM schema_migrations WHERE version = %s",
                    (migration.version,),
                ).fetchone()
                if row is not None:
                    if row[0] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version}_{migration.name} was changed after "
                            "it was applied; add a new migration instead"
                        )
                    continue
                conn.execute(migration.text.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                applied_now.append(migration)
        day = today()
        conn.execute(
            "SELECT bs_ensure_event_partitions(%s, %s)",
            (day - timedelta(days=days_back), day + timedelta(days=days_ahead)),
        )
    return applied_now


def applied_versions(conninfo: str, db_schema: str = "public") -> list[int]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        table = sql.Identifier(db_schema, "schema_migrations")
        try:
            rows = conn.execute(sql.SQL("SELECT version FROM {} ORDER BY 1").format(table))
        except psycopg.errors.UndefinedTable:
            return []
        return [r[0] for r in rows]
