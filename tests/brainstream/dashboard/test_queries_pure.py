"""Window arithmetic and series filling, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from brainstream.dashboard.cache import TtlCache
from brainstream.dashboard.queries import (
    WINDOWS,
    Distinct,
    fill,
    top,
    truncate,
    window,
)
from streams.errors import UnknownWindow

NOW = datetime(2026, 3, 14, 15, 9, 26, 535_000, tzinfo=UTC)


def test_one_hour_is_sixty_minute_buckets_ending_with_the_current_one() -> None:
    start, end = WINDOWS["1h"].bounds(NOW)
    assert end == datetime(2026, 3, 14, 15, 10, tzinfo=UTC)
    assert end - start == timedelta(hours=1)
    labels = WINDOWS["1h"].labels(NOW)
    assert len(labels) == 60
    assert labels[0] == start and labels[-1] == datetime(2026, 3, 14, 15, 9, tzinfo=UTC)


def test_a_day_is_24_hour_buckets() -> None:
    w = window("24h")
    start, end = w.bounds(NOW)
    assert (w.granularity, w.span) == ("hour", "hour")
    assert end == datetime(2026, 3, 14, 16, tzinfo=UTC)
    assert end - start == timedelta(hours=24) == timedelta(hours=len(w.labels(NOW)))


def test_a_week_is_seven_utc_days_charted_by_the_hour_up_to_now() -> None:
    w = window("7d")
    start, end = w.bounds(NOW)
    assert (start, end) == (datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC))
    labels = w.labels(NOW)
    assert labels[0] == start and labels[-1] == datetime(2026, 3, 14, 15, tzinfo=UTC)
    assert len(labels) == 6 * 24 + 16


def test_unknown_window_names_the_choices() -> None:
    with pytest.raises(UnknownWindow, match="1h, 24h, 7d"):
        window("5m")


def test_truncate_works_in_utc_whatever_the_input_zone() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert truncate(local, "minute") == datetime(2026, 3, 14, 15, 9, tzinfo=UTC)
    assert truncate(local, "hour") == datetime(2026, 3, 14, 15, tzinfo=UTC)
    assert truncate(local, "day") == datetime(2026, 3, 14, tzinfo=UTC)


def test_fill_makes_dense_series_and_drops_rows_outside_the_window() -> None:
    buckets = WINDOWS["1h"].labels(NOW)
    rows = [
        (buckets[0], "login", 2),
        (buckets[-1], "login", 5),
        (buckets[3], "search", 7),
        (buckets[0] - timedelta(minutes=1), "search", 100),
    ]
    counts = fill(buckets, rows)
    assert list(counts) == ["login", "search"]
    assert counts["login"][0] == 2 and counts["login"][-1] == 5 and sum(counts["login"]) == 7
    assert sum(counts["search"]) == 7 and len(counts["search"]) == 60


def test_top_orders_by_events_and_keeps_distinct_users_per_type() -> None:
    users = Distinct({"login": 3, "search": 2}, 4, NOW)
    t = top(WINDOWS["1h"], NOW, {"search": 5, "login": 9, "logout": 5}, users)
    assert [(x.event_type, x.events, x.distinct_users) for x in t.types] == [
        ("login", 9, 3),
        ("logout", 5, 0),
        ("search", 5, 2),
    ]
    assert (t.events, t.distinct_users, t.distinct_as_of) == (19, 4, NOW)
    assert (t.start, t.end) == WINDOWS["1h"].bounds(NOW)


def test_ttl_cache_reuses_values_until_they_are_older_than_the_ttl() -> None:
    now = [0.0]
    computed: list[int] = []

    def compute() -> int:
        computed.append(len(computed))
        return computed[-1]

    cache: TtlCache[int] = TtlCache(clock=lambda: now[0])
    assert cache.get("7d", 10.0, compute) == 0
    now[0] = 9.9
    assert cache.get("7d", 10.0, compute) == 0
    assert cache.get("1h", 0.0, compute) == 1  # a ttl of 0 never reuses
    assert cache.get("1h", 0.0, compute) == 2
    now[0] = 10.0
    assert cache.get("7d", 10.0, compute) == 3
