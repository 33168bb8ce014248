"""Migrations on the real Postgres: idempotent, recorded, partitioned as the design says."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from brainstream.migrate import MigrationError, applied_versions, migrate
from schemas.sql import migrations
from tests.fixtures.services import PgSchema, Services

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_schema(services: Services) -> Iterator[str]:
    name = f"m_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(services.postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def test_migrate_is_idempotent_and_records_versions(services: Services, fresh_schema: str) -> None:
    first = migrate(services.postgres_dsn, fresh_schema)
    assert [m.version for m in first] == [m.version for m in migrations()]
    assert migrate(services.postgres_dsn, fresh_schema) == []
    assert applied_versions(services.postgres_dsn, fresh_schema) == [m.version for m in first]


def test_an_edited_applied_migration_is_refused(services: Services, fresh_schema: str) -> None:
    migrate(services.postgres_dsn, fresh_schema)
    with psycopg.connect(services.postgres_dsn, autocommit=True) as conn:
        table = sql.Identifier(fresh_schema, "schema_migrations")
        conn.execute(sql.SQL("UPDATE {} SET checksum = 'x' WHERE version = 1").format(table))
    with pytest.raises(MigrationError, match="changed after"):
        migrate(services.postgres_dsn, fresh_schema)


def test_events_table_is_partitioned_by_day_with_default_and_indexes(pg_schema: PgSchema) -> None:
    with psycopg.connect(pg_schema.conninfo) as conn:
        parts = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'analytics_events'::regclass ORDER BY 1"
            )
        ]
        today = datetime.now(UTC).date()
        assert "analytics_events_default" in parts
        assert f"analytics_events_p{today:%Y%m%d}" in parts
        assert f"analytics_events_p{today + timedelta(days=7):%Y%m%d}" in parts
        indexes = {
            r[0]
            for r in conn.execute(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indrelid = 'analytics_events'::regclass"
            )
        }
        joined = " | ".join(indexes)
        for cols in (
            "(user_id, occurred_at)",
            "(event_type, occurred_at)",
            "(occurred_at)",
            "(event_id, occurred_at)",
        ):
            assert cols in joined, joined
        kind = conn.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'analytics_events' "
            "AND column_name = 'properties'"
        ).fetchone()
        assert kind == ("jsonb",)


def test_new_partition_adopts_rows_parked_in_the_default_partition(pg_schema: PgSchema) -> None:
    old_day = date(2020, 2, 29)
    with psycopg.connect(pg_schema.conninfo) as conn:
        conn.execute(
            "INSERT INTO analytics_events (event_id, occurred_at, schema_version, event_type, "
            "user_id, source, properties) VALUES (%s, %s, 1, 'login', 'u1', 'tests', '{}')",
            (uuid.uuid4(), datetime(2020, 2, 29, 23, 59, tzinfo=UTC)),
        )
        where = conn.execute(
            "SELECT tableoid::regclass::text FROM analytics_events WHERE user_id = 'u1'"
        ).fetchone()
        assert where == ("analytics_events_default",)
        created = conn.execute(
            "SELECT bs_ensure_event_partitions(%s, %s)", (old_day, old_day)
        ).fetchone()
        assert created == (1,)
        where = conn.execute(
            "SELECT tableoid::regclass::text FROM analytics_events WHERE user_id = 'u1'"
        ).fetchone()
        assert where == ("analytics_events_p20200229",)
        again = conn.execute("SELECT bs_ensure_event_partitions(%s, %s)", (old_day, old_day))
        assert again.fetchone() == (0,)
