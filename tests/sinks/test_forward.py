"""The forwarding step without a broker: batches per source partition, chunking, offsets."""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from schemas.accepted import AcceptedBatch, decode_batch
from sinks.config import SinkConfig
from sinks.forward import (
    MAX_RECORD_BYTES,
    accepted_batches,
    chunked,
    epoch_us,
)
from sinks.records import Row, split
from tests.fixtures.samples import sample_event
from tests.sinks.conftest import as_incoming

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _rows(coordinates: list[tuple[int, int]]) -> list[Row]:
    records = [
        as_incoming(
            sample_event("page_view", user_id=f"u{o}", occurred_at=T0 + timedelta(seconds=o)),
            partition=p,
            offset=o,
        )
        for p, o in coordinates
    ]
    rows, rejected = split(records, SinkConfig())
    assert not rejected
    return rows


def test_one_batch_per_source_partition_in_offset_order_with_the_processed_range() -> None:
    rows = _rows([(2, 17), (0, 5), (2, 11), (0, 3)])
    ranges = {0: (3, 9), 1: (40, 41), 2: (10, 20)}
    batches = accepted_batches("t.events", ranges, rows)
    assert [(b.partition, b.first_offset, b.last_offset) for b in batches] == [
        (0, 3, 9),
        (1, 40, 41),  # nothing accepted: the fence still moves past 40..41
        (2, 10, 20),
    ]
    assert [b.offsets for b in batches] == [[3, 5], [], [11, 17]]
    assert batches[2].user_ids == ["u11", "u17"]
    assert batches[2].types == ["page_view", "page_view"]
    assert batches[0].occurred_at_us == [
        epoch_us(T0 + timedelta(seconds=3)),
        epoch_us(rows[1].occurred_at),
    ]
    assert all(b.topic == "t.events" for b in batches)


def test_an_accepted_row_outside_the_processed_range_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the batch"):
        accepted_batches("t", {0: (0, 4)}, _rows([(0, 5)]))
    with pytest.raises(ValueError, match="outside the batch"):
        accepted_batches("t", {0: (0, 9)}, _rows([(1, 5)]))


def test_epoch_us_is_exact_where_floats_round() -> None:
    far = datetime(2262, 1, 1, 0, 0, 0, 999999, tzinfo=UTC)
    exact = calendar.timegm((2262, 1, 1, 0, 0, 0)) * 1_000_000 + 999_999
    assert epoch_us(far) == exact
    assert round(far.timestamp() * 1_000_000) != exact  # what a float would have made of it
    assert epoch_us(datetime(1970, 1, 1, tzinfo=UTC)) == 0


def _big(n: int, first: int = 100) -> AcceptedBatch:
    batch = AcceptedBatch("t.events", 4, first, first + 3 * n + 7)
    for i in range(n):
        batch.append(first + 3 * i + 1, "page_view", f"user-{i:08d}", 1_767_225_600_000_000 + i, 1)
    return batch


def test_a_batch_under_the_limit_is_one_record() -> None:
    batch = _big(1000)
    [value] = chunked(batch)
    assert decode_batch(value) == batch


def test_a_large_batch_is_chunked_into_records_that_tile_its_range() -> None:
    batch = _big(5000)
    values = chunked(batch, max_bytes=20_000)
    assert len(values) > 1
    parts = [decode_batch(v) for v in values]
    assert all(len(v) <= 20_000 for v in values)
    assert parts[0].first_offset == batch.first_offset
    assert parts[-1].last_offset == batch.last_offset
    for before, after in itertools.pairwise(parts):
        assert after.first_offset == before.last_offset + 1  # no gap, no overlap
    assert [o for p in parts for o in p.offsets] == batch.offsets
    assert [u for p in parts for u in p.user_ids] == batch.user_ids
    assert [t for p in parts for t in p.occurred_at_us] == batch.occurred_at_us


def test_the_default_limit_fits_a_full_sink_batch_of_one_partition_in_several_records() -> None:
    batch = _big(60_000)
    values = chunked(batch)
    assert len(values) > 1 and all(len(v) <= MAX_RECORD_BYTES for v in values)
    assert sum(len(decode_batch(v)) for v in values) == 60_000


def test_an_event_that_cannot_fit_is_named() -> None:
    with pytest.raises(ValueError, match="one accepted event"):
        chunked(_big(1), max_bytes=50)
