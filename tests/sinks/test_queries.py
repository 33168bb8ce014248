"""Query helpers on the real database: keyset paging is exact and the plans use the indexes."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from brainstream.migrate import migrate
from sinks.config import SinkConfig
from sinks.queries import TIMELINE_QUERY, counts_by_type, explain, user_timeline
from sinks.records import split
from sinks.writer import create_staging, write_batch
from tests.fixtures.samples import sample_event
from tests.fixtures.services import PgSchema
from tests.sinks.conftest import as_incoming

pytestmark = pytest.mark.integration
START = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
TYPES = ["page_view", "search", "login", "task_created"]
N = 20_000


@pytest.fixture(scope="module")
def filled(services: object, request: pytest.FixtureRequest) -> Iterator[tuple[str, list]]:  # type: ignore[type-arg]
    pg: PgSchema = request.getfixturevalue("pg_schema_module")
    events = [
        sample_event(
            TYPES[i % 4], user_id=f"u{i % 200}", occurred_at=START + timedelta(seconds=i * 8)
        )  # spread over ~2 days
        for i in range(N)
    ]
    rows, _ = split([as_incoming(e) for e in events], SinkConfig())
    with psycopg.connect(pg.conninfo) as conn:
        create_staging(conn)
        write_batch(conn, rows)
        conn.execute("ANALYZE analytics_events")
        conn.commit()
    yield pg.conninfo, events


@pytest.fixture(scope="module")
def pg_schema_module(services: object) -> Iterator[PgSchema]:
    dsn = services.postgres_dsn  # type: ignore[attr-defined]
    name = f"t_{uuid.uuid4().hex[:12]}"
    migrate(dsn, name, days_back=3, days_ahead=3)
    yield PgSchema(name, make_conninfo(dsn, options=f"-c search_path={name}"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def test_timeline_pages_cover_a_users_events_newest_first_exactly(
    filled: tuple[str, list],  # type: ignore[type-arg]
) -> None:
    conninfo, events = filled
    mine = sorted(
        (e for e in events if e.user_id == "u7"),
        key=lambda e: (e.occurred_at, e.event_id),
        reverse=True,
    )
    seen = []
    with psycopg.connect(conninfo) as conn:
        page, cursor = user_timeline(conn, "u7", limit=13)
        seen += page
        while cursor is not None:
            page, cursor = user_timeline(conn, "u7", limit=13, after=cursor)
            seen += page
    assert [e.event_id for e in seen] == [e.event_id for e in mine]


def test_counts_by_type_match_the_events(filled: tuple[str, list]) -> None:  # type: ignore[type-arg]
    conninfo, events = filled
    lo, hi = START + timedelta(hours=3), START + timedelta(hours=5)
    expected = Counter(e.type for e in events if lo <= e.occurred_at < hi)
    with psycopg.connect(conninfo) as conn:
        assert counts_by_type(conn, lo, hi) == dict(expected)
        assert counts_by_type(conn, lo, hi, ["login"]) == {"login": expected["login"]}


def test_the_plans_use_the_indexes(filled: tuple[str, list]) -> None:  # type: ignore[type-arg]
    conninfo, _ = filled
    far = datetime.max.replace(tzinfo=UTC)
    with psycopg.connect(conninfo) as conn:
        timeline = explain(
            conn,
            TIMELINE_QUERY,
            {
                "user": "u7",
                "at": far,
                "id": _max_uuid(),
                "since": datetime.min.replace(tzinfo=UTC),
                "limit": 20,
            },
        )
        counts = explain(
            conn,
            sql.SQL(
                "SELECT event_type, count(*) FROM analytics_events WHERE occurred_at >= %(a)s"
                " AND occurred_at < %(b)s GROUP BY event_type"
            ),
            {"a": START + timedelta(hours=3), "b": START + timedelta(hours=4)},
        )
        by_type = explain(
            conn,
            sql.SQL(
                "SELECT count(*) FROM analytics_events WHERE event_type = ANY(%(t)s)"
                " AND occurred_at >= %(a)s AND occurred_at < %(b)s"
            ),
            {"t": ["login"], "a": START + timedelta(hours=3), "b": START + timedelta(hours=4)},
        )
    assert "user_id_occurred_at_idx" in timeline and "Seq Scan" not in timeline, timeline
    assert "occurred_at_idx" in counts and "Seq Scan" not in counts, counts
    # The planner may pick either time-series index here: both are index scans.
    assert "Index" in by_type and "Seq Scan" not in by_type, by_type


def _max_uuid() -> object:
    return uuid.UUID(int=(1 << 128) - 1)
