"""The offset fence and the erased-user lookups on the real database."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import sql

from eventlog import fence
from eventlog.db import erased_among, erased_users
from schemas.db import STREAM_OFFSETS_TABLE
from tests.fixtures.services import PgSchema

pytestmark = pytest.mark.integration


def test_a_fence_starts_at_zero_moves_and_is_read_back(pg_schema: PgSchema) -> None:
    with psycopg.connect(pg_schema.conninfo) as conn:
        with conn.transaction():
            assert fence.lock(conn, "aggregates", "t.events", 2) == 0
            fence.move(conn, "aggregates", "t.events", {2: 17, 0: 5})
        with conn.transaction():
            assert fence.lock(conn, "aggregates", "t.events", 2) == 17
            assert fence.lock_all(conn, "aggregates", "t.events") == {0: 5, 2: 17}
            assert fence.lock_all(conn, "other-projection", "t.events") == {}


def test_a_locked_fence_makes_a_second_writer_wait_for_the_commit(pg_schema: PgSchema) -> None:
    seen: list[int] = []
    with psycopg.connect(pg_schema.conninfo) as first, psycopg.connect(pg_schema.conninfo) as other:
        with first.transaction():
            fence.lock(first, "aggregates", "t.events", 0)

            def second() -> None:
                with other.transaction():
                    seen.append(fence.lock(other, "aggregates", "t.events", 0))

            waiter = threading.Thread(target=second)
            waiter.start()
            waiter.join(1.0)
            assert waiter.is_alive() and seen == []  # blocked on the row lock
            fence.move(first, "aggregates", "t.events", {0: 40})
        waiter.join(30)
    assert seen == [40]  # it reads what the first writer committed, and skips it


def test_fences_of_another_schema_are_addressed_by_a_qualified_table(pg_schema: PgSchema) -> None:
    table = sql.Identifier(pg_schema.name, STREAM_OFFSETS_TABLE)
    with psycopg.connect(pg_schema.conninfo) as conn, conn.transaction():
        conn.execute("SET LOCAL search_path TO pg_catalog")  # no stream_offsets there
        fence.move(conn, "aggregates", "t.events", {1: 9}, table)
        assert fence.lock_all(conn, "aggregates", "t.events", table) == {1: 9}


def test_erased_users_are_found_among_others_and_listed(pg_schema: PgSchema) -> None:
    with psycopg.connect(pg_schema.conninfo, autocommit=True) as conn:
        assert erased_among(conn, ["u1", "u2"]) == set()
        conn.execute("INSERT INTO erased_users (user_id) VALUES ('u2'), ('u3')")
        assert erased_among(conn, ["u1", "u2", "u2"]) == {"u2"}
        assert erased_among(conn, []) == set()
        assert erased_users(conn) == erased_users(conn, pg_schema.name) == {"u2", "u3"}
