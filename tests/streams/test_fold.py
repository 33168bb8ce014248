"""Pure parts of the workers: buckets, fold, decoding, splitting, backoff. No broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import InvalidEvent, codec
from streams.backoff import delays
from streams.buckets import buckets_of, truncate
from streams.fold import Deltas, fold
from streams.processor import RawRecord, split
from streams.records import FutureSkew, Record, decode_record
from tests.fixtures.samples import sample_event

T0 = datetime(2026, 3, 1, 12, 34, 56, 789, tzinfo=UTC)


def rec(offset: int, user: str = "u1", kind: str = "login", at: datetime = T0) -> Record:
    return Record(0, offset, kind, user, at)


def test_truncate_every_granularity_in_utc() -> None:
    local = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert truncate(local, "minute") == datetime(2026, 3, 1, 12, 34, tzinfo=UTC)
    assert truncate(local, "hour") == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert truncate(local, "day") == datetime(2026, 3, 1, tzinfo=UTC)
    assert buckets_of(local) == tuple((g, truncate(T0, g)) for g in ("minute", "hour", "day"))
    with pytest.raises(ValueError):
        truncate(T0, "week")


def test_fold_counts_per_bucket_user_and_type() -> None:
    later = T0 + timedelta(minutes=2)
    deltas = fold([rec(0), rec(1, at=later), rec(2, user="u2"), rec(3, kind="search")])
    minute = truncate(T0, "minute")
    assert deltas.events == 4
    assert deltas.type_counts[("minute", minute, "login")] == 2
    assert deltas.type_counts[("hour", truncate(T0, "hour"), "login")] == 3
    assert deltas.type_counts[("day", truncate(T0, "day"), "search")] == 1
    seen = deltas.user_buckets[("hour", truncate(T0, "hour"), "u1", "login")]
    assert (seen.count, seen.first, seen.last) == (2, T0, later)
    total = deltas.user_totals[("u1", "login")]
    assert (total.count, total.first, total.last) == (2, T0, later)
    assert not fold([])


events_st = st.lists(
    st.builds(
        rec,
        st.integers(0, 10_000),
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
        {k: (v.count, v.first, v.last) for k, v in d.user_buckets.items()},
        {k: (v.count, v.first, v.last) for k, v in d.user_totals.items()},
    )


@given(events_st, st.integers(0, 60))
def test_fold_of_a_split_batch_equals_fold_of_the_whole(records: list[Record], cut: int) -> None:
    """Folding is associative: a batch cut anywhere (a crash, a rebalance) folds the same."""
    assert _flat(fold(records[cut:], fold(records[:cut]))) == _flat(fold(records))


@given(events_st)
def test_type_counts_are_the_sums_of_user_buckets(records: list[Record]) -> None:
    deltas = fold(records)
    sums: dict[tuple[object, ...], int] = {}
    for (g, b, _user, kind), seen in deltas.user_buckets.items():
        sums[(g, b, kind)] = sums.get((g, b, kind), 0) + seen.count
    assert sums == deltas.type_counts


def test_decode_record_keeps_coordinates_and_envelope_fields() -> None:
    event = sample_event("search", user_id="u9", occurred_at=T0)
    got = decode_record(2, 41, codec.encode(event), None)
    assert got == Record(2, 41, "search", "u9", T0)


def test_decode_record_rejects_what_the_sink_dead_letters() -> None:
    with pytest.raises(InvalidEvent):
        decode_record(0, 0, b'{"type": "login"}', None)
    with pytest.raises(InvalidEvent):
        decode_record(0, 0, None, None)


def test_future_skew_clamps_or_skips_like_the_sink() -> None:
    stamp = (T0 - timedelta(hours=2)).replace(microsecond=0)
    value = codec.encode(sample_event("login", occurred_at=T0))
    ms = int(stamp.timestamp() * 1000)
    assert decode_record(0, 0, value, ms).occurred_at == stamp
    assert decode_record(0, 0, value, ms, FutureSkew(3 * 3600)).occurred_at == T0
    with pytest.raises(InvalidEvent):
        decode_record(0, 0, value, ms, FutureSkew(60, "skip"))


def test_split_groups_by_partition_and_keeps_invalid_offsets() -> None:
    good = codec.encode(sample_event("login", occurred_at=T0))
    raws = [RawRecord(1, 5, good, 1), RawRecord(0, 3, b"junk", 1), RawRecord(1, 6, good, None)]
    (p0, stamps0), (p1, stamps1) = split(raws, FutureSkew())
    assert (p0.partition, list(p0.records), list(p0.invalid_offsets), p0.last_offset) == (
        0,
        [],
        [3],
        3,
    )
    assert [r.offset for r in p1.records] == [5, 6] and p1.last_offset == 6
    assert (stamps0, stamps1) == ([], [1])


def test_backoff_doubles_up_to_the_cap() -> None:
    it = delays(0.5, 3.0)
    assert [next(it) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
