"""Pure parts of the workers: buckets, the fold of accepted batches, grouping. No broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.accepted import AcceptedBatch, encode_batch
from streams.buckets import buckets_of, truncate
from streams.fold import Deltas, fold, to_datetime, to_us
from streams.processor import RawRecord, group
from streams.writer import fold_partition

T0 = datetime(2026, 3, 1, 12, 34, 56, 789, tzinfo=UTC)

Event = tuple[str, str, datetime]
"""(user, type, occurred_at)"""


def batch(events: list[Event], partition: int = 0, start: int = 0) -> AcceptedBatch:
    out = AcceptedBatch("t", partition, start, start + max(len(events), 1) - 1)
    for i, (user, kind, at) in enumerate(events):
        out.append(start + i, kind, user, to_us(at), 1)
    return out


def test_truncate_every_granularity_in_utc() -> None:
    local = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert truncate(local, "minute") == datetime(2026, 3, 1, 12, 34, tzinfo=UTC)
    assert truncate(local, "hour") == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert truncate(local, "day") == datetime(2026, 3, 1, tzinfo=UTC)
    assert buckets_of(local) == tuple((g, truncate(T0, g)) for g in ("minute", "hour", "day"))
    with pytest.raises(ValueError):
        truncate(T0, "week")


def test_microseconds_round_trip_exactly() -> None:
    for moment in (T0, datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)):
        assert to_datetime(to_us(moment)) == moment


def test_fold_counts_per_bucket_user_and_type() -> None:
    later = T0 + timedelta(minutes=2)
    deltas = fold(
        batch(
            [("u1", "login", T0), ("u1", "login", later), ("u2", "login", T0), ("u1", "search", T0)]
        )
    )
    us = {g: to_us(truncate(T0, g)) for g in ("minute", "hour", "day")}
    assert deltas.events == 4
    assert deltas.type_counts[("minute", us["minute"], "login")] == 2
    assert deltas.type_counts[("hour", us["hour"], "login")] == 3
    assert deltas.type_counts[("day", us["day"], "search")] == 1
    day = deltas.user_days[("u1", "login", us["day"])]
    assert (day.count, day.first, day.last) == (2, to_us(T0), to_us(later))
    assert day.hours == [0] * 12 + [2] + [0] * 11  # 12:34 and 12:36 UTC
    assert len(deltas.user_days) == 3  # one row per user, type and day: no minute or hour rows
    assert not fold(batch([]))


def test_fold_leaves_out_the_users_it_is_told_to_skip() -> None:
    deltas = fold(batch([("u1", "login", T0), ("gone", "login", T0)]), {"gone"})
    assert deltas.events == 1 and {k[:2] for k in deltas.user_days} == {("u1", "login")}


events_st = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "u3"]),
        st.sampled_from(["login", "search"]),
        st.datetimes(
            min_value=datetime(2026, 1, 1), max_value=datetime(2026, 1, 3), timezones=st.just(UTC)
        ),
    ),
    max_size=60,
)


def _flat(d: Deltas) -> tuple[object, ...]:
    return (
        d.events,
        d.type_counts,
        {k: (tuple(v.hours), v.count, v.first, v.last) for k, v in d.user_days.items()},
    )


def _reference(events: list[Event]) -> tuple[object, ...]:
    """The fold by definition, one event at a time (what the SQL reference computes)."""
    counts: dict[tuple[str, int, str], int] = {}
    days: dict[tuple[str, str, int], tuple[tuple[int, ...], int, int, int]] = {}
    for user, kind, moment in events:
        at = to_us(moment)
        for g, start in buckets_of(moment):
            counts[(g, to_us(start), kind)] = counts.get((g, to_us(start), kind), 0) + 1
        key = (user, kind, to_us(truncate(moment, "day")))
        hours, n, first, last = days.get(key, ((0,) * 24, 0, at, at))
        hour = moment.astimezone(UTC).hour
        hours = (*hours[:hour], hours[hour] + 1, *hours[hour + 1 :])
        days[key] = (hours, n + 1, min(first, at), max(last, at))
    return (len(events), counts, days)


@given(events_st)
def test_fold_equals_the_definition(events: list[Event]) -> None:
    assert _flat(fold(batch(events))) == _reference(events)


@given(events_st, st.integers(0, 60))
def test_a_prepared_run_of_batches_folds_as_one(events: list[Event], cut: int) -> None:
    """Two consecutive accepted records of a partition, applied in one transaction, fold the same
    as one record holding both."""
    first, second = batch(events[:cut]), batch(events[cut:], start=max(cut, 1) + 10)
    prepared = fold_partition("t", 0, [first, second])
    assert prepared.folded is not None
    assert _flat(prepared.folded) == _reference(events)


@given(events_st)
def test_type_hour_and_day_counts_are_the_sums_of_user_days(events: list[Event]) -> None:
    deltas = fold(batch(events))
    sums: dict[tuple[object, ...], int] = {}
    for (_user, kind, day), row in deltas.user_days.items():
        assert row.count == sum(row.hours)
        sums[("day", day, kind)] = sums.get(("day", day, kind), 0) + row.count
        for h, n in enumerate(row.hours):
            if n:
                key = ("hour", day + h * 3_600_000_000, kind)
                sums[key] = sums.get(key, 0) + n
    assert sums == {k: n for k, n in deltas.type_counts.items() if k[0] != "minute"}


def test_group_keeps_record_order_per_source_partition_and_names_invalid_records() -> None:
    a = batch([("u1", "login", T0)], partition=1, start=5)
    b = batch([("u2", "login", T0)], partition=0, start=3)
    c = batch([("u1", "login", T0)], partition=1, start=9)
    raws = [
        RawRecord(1, 0, encode_batch(a)),
        RawRecord(0, 0, b"junk"),
        RawRecord(0, 1, encode_batch(b)),
        RawRecord(1, 1, encode_batch(c)),
        RawRecord(2, 0, None),
    ]
    groups, invalid = group(raws)
    assert invalid == 2
    assert [x.first_offset for x in groups[("t", 1)]] == [5, 9]
    assert [x.first_offset for x in groups[("t", 0)]] == [3]
