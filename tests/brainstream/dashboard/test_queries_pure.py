"""Window arithmetic and series filling, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from brainstream.dashboard.queries import WINDOWS, UnknownWindow, fill, truncate, window

NOW = datetime(2026, 3, 14, 15, 9, 26, 535_000, tzinfo=UTC)


def test_one_hour_is_sixty_minute_buckets_ending_with_the_current_one() -> None:
    start, end = WINDOWS["1h"].bounds(NOW)
    assert end == datetime(2026, 3, 14, 15, 10, tzinfo=UTC)
    assert end - start == timedelta(hours=1)
    labels = WINDOWS["1h"].labels(NOW)
    assert len(labels) == 60
    assert labels[0] == start and labels[-1] == datetime(2026, 3, 14, 15, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "granularity", "span"), [("24h", "hour", 24), ("7d", "hour", 168)]
)
def test_longer_windows_use_hour_buckets(name: str, granularity: str, span: int) -> None:
    w = window(name)
    start, end = w.bounds(NOW)
    assert w.granularity == granularity
    assert end == datetime(2026, 3, 14, 16, tzinfo=UTC)
    assert end - start == timedelta(hours=span) == timedelta(hours=len(w.labels(NOW)))


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
