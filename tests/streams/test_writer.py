"""The fenced transaction, erasure, verify and the window queries against a real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from brainstream.dashboard import queries as dashboard
from schemas.accepted import AcceptedBatch
from schemas.db import ERASURE_LOCK_KEY
from streams import queries
from streams.buckets import truncate
from streams.erasure import erase_user_aggregates
from streams.fold import fold, to_us
from streams.reference import verify
from streams.writer import apply_batch, fold_partition, upsert
from tests.fixtures.samples import sample_event
from tests.fixtures.services import PgSchema
from tests.streams.helpers import Placed, accepted_batches, copy_raw, make_events, place

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


def one_partition(events: list[Any]) -> list[Placed]:
    return place(events, 1)


def store(
    pg: PgSchema, conn: psycopg.Connection[Any], recs: list[tuple[str, str, datetime]]
) -> None:
    """The sink's and the worker's work for ``(type, user, occurred_at)`` events."""
    placed = one_partition([sample_event(t, user_id=u, occurred_at=at) for t, u, at in recs])
    copy_raw(pg.conninfo, placed)
    apply_batch(conn, "aggregates", fold_partition("t", 0, run(placed)))


def run(placed: list[Placed], per_batch: int = 500) -> list[AcceptedBatch]:
    return accepted_batches(placed, "t", per_batch)


def test_fence_applies_each_offset_once_and_distinct_users_are_exact(pg_schema: PgSchema) -> None:
    placed = one_partition(make_events(3000, 50, end=NOW, seed=1))
    copy_raw(pg_schema.conninfo, placed)
    batches = run(placed, 1000)  # offsets 0-999, 1000-1999, 2000-2999
    with psycopg.connect(pg_schema.conninfo) as conn:
        first = apply_batch(conn, "aggregates", fold_partition("t", 0, batches[:2]))
        again = apply_batch(conn, "aggregates", fold_partition("t", 0, batches[1:]))
        replay = apply_batch(conn, "aggregates", fold_partition("t", 0, batches))
        assert (first.counted, first.next_offset) == (2000, 2000)
        assert (again.counted, again.below_fence, again.next_offset) == (1000, 1000, 3000)
        assert (replay.counted, replay.below_fence) == (0, 3000)
        report = verify(conn)
    assert report.ok, report.samples
    assert report.rows["agg_type_buckets"] > 0


def test_a_range_forwarded_twice_counts_once(pg_schema: PgSchema) -> None:
    """The sink crashed between its commit and its produce: the same range is forwarded again,
    here even inside one take of the agent."""
    placed = one_partition(make_events(100, 5, end=NOW, seed=4, late_fraction=0))
    copy_raw(pg_schema.conninfo, placed)
    a, b = run(placed, 60)
    with psycopg.connect(pg_schema.conninfo) as conn:
        done = apply_batch(conn, "aggregates", fold_partition("t", 0, [a, a, b, b]))
        assert (done.counted, done.below_fence, done.next_offset) == (100, 100, 100)
        assert verify(conn).ok


def test_a_range_that_accepted_nothing_moves_the_fence(pg_schema: PgSchema) -> None:
    with psycopg.connect(pg_schema.conninfo) as conn:
        done = apply_batch(
            conn, "aggregates", fold_partition("t", 2, [AcceptedBatch("t", 2, 7, 8)])
        )
        assert (done.counted, done.next_offset) == (0, 9)
        row = conn.execute("SELECT next_offset FROM stream_offsets WHERE kafka_partition = 2")
        assert row.fetchone() == (9,)


def test_erasure_subtracts_a_user_and_later_events_are_dropped(pg_schema: PgSchema) -> None:
    """Stored but not yet counted when the user is erased: 500 of the user's events are in the
    raw table and the accepted stream, behind the fence; they must not be subtracted, and the
    worker must then skip them."""
    placed = one_partition(make_events(2000, 20, end=NOW, seed=2))
    victim = placed[0].event.user_id
    copy_raw(pg_schema.conninfo, placed)
    batches = run(placed, 500)
    with psycopg.connect(pg_schema.conninfo) as conn:
        apply_batch(conn, "aggregates", fold_partition("t", 0, batches[:3]))
        with conn.transaction():  # what `brainstream erase-user` does around our function
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (ERASURE_LOCK_KEY,))
            conn.execute("INSERT INTO erased_users (user_id) VALUES (%s)", (victim,))
            erase_user_aggregates(conn, victim, topic="t")
            conn.execute("DELETE FROM analytics_events WHERE user_id = %s", (victim,))
        late = apply_batch(conn, "aggregates", fold_partition("t", 0, batches))
        assert late.erased == sum(1 for x in placed[1500:] if x.event.user_id == victim) > 0
        report = verify(conn)
        left = conn.execute(
            "SELECT count(*) FROM agg_user_days WHERE user_id = %(u)s", {"u": victim}
        ).fetchone()
    assert report.ok, report.samples
    assert left == (0,)


def test_erasure_of_the_only_user_of_a_bucket_deletes_the_bucket(pg_schema: PgSchema) -> None:
    at = NOW - timedelta(days=2)
    lonely = AcceptedBatch("t", 0, 0, 0)
    lonely.append(0, "logout", "solo", to_us(at), 1)
    with psycopg.connect(pg_schema.conninfo) as conn:
        upsert(conn, fold(lonely))
        erase_user_aggregates(conn, "solo", minutes={(truncate(at, "minute"), "logout"): 1})
        rows = conn.execute("SELECT count(*) FROM agg_type_buckets").fetchone()
    assert rows == (0,)


def test_verify_reports_each_kind_of_difference(pg_schema: PgSchema) -> None:
    placed = one_partition(make_events(500, 10, end=NOW, seed=3))
    copy_raw(pg_schema.conninfo, placed)
    with psycopg.connect(pg_schema.conninfo) as conn:
        apply_batch(conn, "aggregates", fold_partition("t", 0, run(placed)))
        conn.execute(
            "UPDATE agg_type_buckets SET distinct_users = distinct_users + 1 WHERE ctid ="
            " (SELECT min(ctid) FROM agg_type_buckets WHERE granularity = 'hour')"
        )
        conn.execute("DELETE FROM agg_user_days WHERE ctid = (SELECT min(ctid) FROM agg_user_days)")
        conn.execute(
            "INSERT INTO agg_user_days VALUES ('ghost', 'login', %s, %s, 1, %s, %s)",
            (NOW.date(), [1] + [0] * 23, NOW, NOW),
        )
        conn.execute(  # one hour moved within its day: the day's total still agrees
            "UPDATE agg_user_days SET hours = hours[24:24] || hours[1:23] WHERE ctid ="
            " (SELECT max(ctid) FROM agg_user_days WHERE user_id <> 'ghost')"
        )
        conn.commit()
        report = verify(conn)
    assert not report.ok
    assert report.differences == {"agg_type_buckets": 1, "agg_user_days": 3}
    ghost = next(d for d in report.samples if d.key[0] == "ghost")
    assert ghost.rebuilt is None and ghost.streamed is not None
    missing = [d for d in report.samples if d.table == "agg_user_days" and d.streamed is None]
    assert len(missing) == 1 and missing[0].rebuilt is not None


def test_windows_sum_buckets_and_count_distinct_users_exactly(pg_schema: PgSchema) -> None:
    at = NOW - timedelta(minutes=30)
    old = NOW - timedelta(hours=5)
    recs = [
        ("login", "a", at),
        ("login", "a", at + timedelta(minutes=5)),
        ("login", "b", at),
        ("search", "a", at),
        ("login", "c", old),
    ]
    with psycopg.connect(pg_schema.conninfo) as conn:
        store(pg_schema, conn, recs)
        hour = {c.event_type: c for c in queries.types_in_window(conn, queries.window("1h"), NOW)}
        day = {c.event_type: c for c in queries.types_in_window(conn, queries.window("24h"), NOW)}
        assert (hour["login"].events, hour["login"].distinct_users) == (3, 2)
        assert (day["login"].events, day["login"].distinct_users) == (4, 3)
        assert queries.types_in_window(conn, queries.window("5m"), NOW) == []
        doc = queries.user_json(conn, "a", NOW)
        assert doc["totals"]["login"]["events"] == 2
        assert doc["windows"]["1h"]["search"]["events"] == 1
        assert queries.types_json(conn, queries.window("7d"), NOW)["users"] == 3
    with pytest.raises(queries.UnknownWindow):
        queries.window("2w")


def test_the_cli_and_the_dashboard_count_the_same_windows(pg_schema: PgSchema) -> None:
    """``brainstream top`` (``streams.queries``) and the dashboard give a window label the same
    numbers: the last whole buckets, the current one included, and nothing before them."""
    now = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
    ago = [  # (age, user): each window's edge is straddled
        (timedelta(seconds=30), "a"),
        (timedelta(minutes=58), "b"),
        (timedelta(minutes=60), "c"),  # in the minute holding now - 1h: not in 1h
        (timedelta(hours=23), "d"),
        (timedelta(hours=24), "e"),  # in the hour holding now - 24h: not in 24h
        (timedelta(days=6), "f"),
        (timedelta(days=6, hours=16), "g"),  # 2026-03-07 23:09: before the seven UTC days
    ]
    recs = [("login", user, now - age) for age, user in ago]
    expected = {"1h": {"a", "b"}, "24h": {"a", "b", "c", "d"}, "7d": set("abcdef")}
    with psycopg.connect(pg_schema.conninfo) as conn:
        store(pg_schema, conn, recs)
        for name, users in expected.items():
            cli = queries.types_json(conn, queries.window(name), now)
            w = dashboard.window(name)
            assert dashboard.event_totals(conn, w, now) == {"login": len(users)}, name
            distinct = dashboard.distinct_users(conn, w, now)
            assert (distinct.per_type, distinct.overall) == ({"login": len(users)}, len(users))
            assert cli["types"] == {"login": {"events": len(users), "users": len(users)}}, name
            assert (cli["since"], cli["until"]) == tuple(t.isoformat() for t in w.bounds(now))


def test_the_upsert_is_planned_for_each_take_never_prepared(pg_schema: PgSchema) -> None:
    # psycopg prepares a statement after its 5th execution on a connection and Postgres picks a
    # generic plan after 5 more, where the upsert's cost per row grows with the take (a 27k-row
    # take ran for minutes): a worker's connection applies thousands of takes.
    placed = one_partition(make_events(2400, 50, end=NOW, seed=3))
    copy_raw(pg_schema.conninfo, placed)
    with psycopg.connect(pg_schema.conninfo) as conn:
        for batch in run(placed, 200):
            apply_batch(conn, "aggregates", fold_partition("t", 0, [batch]))
        report = verify(conn)
        prepared = conn.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s",
            ("%agg_user_days%",),
        ).fetchall()
    assert prepared == []
    assert report.ok, report.samples
