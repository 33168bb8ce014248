"""The batch write against the real Postgres: idempotence, data-error bisection, erasure filter."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from sinks.config import SinkConfig
from sinks.records import Row, split
from sinks.writer import PrivilegeMissing, create_staging, require_privileges, write_batch
from tests.fixtures.samples import sample_event
from tests.fixtures.services import PgSchema
from tests.sinks.conftest import as_incoming

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)


def _rows(n: int, user: str = "user-1", **overrides: object) -> list[Row]:
    events = [
        sample_event("page_view", user_id=user, occurred_at=NOW, **overrides) for _ in range(n)
    ]
    rows, rejected = split([as_incoming(e) for e in events], SinkConfig())
    assert not rejected
    return rows


def _login_rows(providers: list[str]) -> list[Row]:
    events = [
        sample_event("login", occurred_at=NOW, properties={"method": "oauth", "provider": p})
        for p in providers
    ]
    rows, _ = split([as_incoming(e) for e in events], SinkConfig())
    return rows


@pytest.fixture
def conn(pg_schema: PgSchema) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(pg_schema.conninfo) as c:
        create_staging(c)
        yield c


def _count(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute("SELECT count(*) FROM analytics_events").fetchone()
    conn.commit()
    return int(row[0]) if row else -1  # type: ignore[call-overload]


def test_a_batch_is_written_once_and_redelivery_is_skipped(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    rows = _rows(50)
    first = write_batch(conn, rows)
    assert (first.staged, first.inserted, first.duplicates) == (50, 50, 0)
    again = write_batch(conn, rows[10:] + rows[:5])
    assert (again.inserted, again.duplicates) == (0, 45)
    assert _count(conn) == 50


def test_a_duplicate_inside_one_batch_is_stored_once(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    rows = _rows(3)
    result = write_batch(conn, rows + rows[:1])
    assert (result.inserted, result.duplicates) == (3, 1)


def test_a_nul_character_is_isolated_and_the_rest_is_written(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    # the contract refuses U+0000 before a row is built: rows that bypass it stand for any
    # value the database refuses
    rows = _login_rows([f"p{i}" for i in range(40)])
    for i, text in ((7, "bad\\u0000one"), (31, "\\u0000")):
        rows[i] = replace(rows[i], properties=f'{{"method":"oauth","provider":"{text}"}}')
    result = write_batch(conn, rows)
    assert result.inserted == 38
    rejected = {id(r.origin) for r in result.rejected}
    assert rejected == {id(rows[7].origin), id(rows[31].origin)}
    assert {r.stage for r in result.rejected} == {"persist"}
    assert {r.error_class for r in result.rejected} == {"UntranslatableCharacter"}
    assert all("\u0000" not in e.message for r in result.rejected for e in r.errors)
    assert _count(conn) == 38


def test_sql_in_a_property_is_stored_verbatim(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    evil = "'); DROP TABLE analytics_events; --"
    write_batch(conn, _login_rows([evil]))
    row = conn.execute("SELECT properties->>'provider' FROM analytics_events").fetchone()
    assert row == (evil,)


def test_events_of_erased_users_are_dropped_and_counted(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    conn.execute("INSERT INTO erased_users (user_id) VALUES ('gone')")
    conn.commit()
    result = write_batch(conn, _rows(4, user="gone") + _rows(3, user="kept"))
    assert (result.inserted, result.erased, result.duplicates) == (3, 4, 0)


def test_late_and_future_rows_land_in_the_default_partition(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    late = sample_event("login", occurred_at=NOW - timedelta(days=400))
    rows, _ = split([as_incoming(late)], SinkConfig())
    write_batch(conn, rows + _rows(1))
    parts = conn.execute(
        "SELECT tableoid::regclass::text FROM analytics_events ORDER BY occurred_at"
    ).fetchall()
    assert str(parts[0][0]).endswith("analytics_events_default")
    assert "analytics_events_p" in str(parts[1][0])


def test_the_sink_role_can_insert_and_read_but_not_delete_or_ddl(pg_schema: PgSchema) -> None:
    with psycopg.connect(pg_schema.conninfo, autocommit=True) as conn:
        conn.execute("SET ROLE brainstream_sink")
        conn.autocommit = False
        _check_sink_role(conn)


def _check_sink_role(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    create_staging(conn)
    assert write_batch(conn, _rows(2)).inserted == 2
    for statement in (
        "DELETE FROM analytics_events",
        "DROP TABLE analytics_events_default",
        "DELETE FROM erased_users",
        "INSERT INTO erased_users VALUES ('x')",
        "UPDATE analytics_events SET source = 'x'",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(statement.encode())


def test_a_value_the_client_cannot_encode_is_isolated_and_the_rest_is_written(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    """A fault while COPY encodes one row (here a text psycopg cannot encode as UTF-8) is that
    row's rejection at the persist stage, not the batch's: the sink would crash-loop on it."""
    rows = _rows(12)
    rows[5] = replace(rows[5], source="web\ud800")
    result = write_batch(conn, rows)
    assert result.inserted == 11
    assert [id(r.origin) for r in result.rejected] == [id(rows[5].origin)]
    assert result.rejected[0].stage == "persist"
    assert _count(conn) == 11


def test_the_privileges_the_sink_needs_are_checked_and_named_as_grants(
    pg_schema: PgSchema,
) -> None:
    with psycopg.connect(pg_schema.conninfo, autocommit=True) as conn:
        conn.execute("SET ROLE brainstream_sink")  # the migrations' grants: all there
        conn.autocommit = False
        require_privileges(conn)
    with psycopg.connect(pg_schema.conninfo, autocommit=True) as conn:
        conn.execute("SET ROLE brainstream_reader")  # read-only: SELECT, never INSERT
        conn.autocommit = False
        with pytest.raises(PrivilegeMissing) as caught:
            require_privileges(conn)
    assert "INSERT ON analytics_events" in caught.value.missing
    assert not [m for m in caught.value.missing if m.startswith("SELECT")]
    assert "GRANT INSERT ON analytics_events TO brainstream_reader" in str(caught.value)
