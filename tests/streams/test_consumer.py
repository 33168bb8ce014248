"""The worker's consumer side without a broker: commit positions and ahead-of-time folding."""

from __future__ import annotations

from schemas import codec
from streams.consumer import next_offsets
from streams.fold import fold
from streams.processor import RawRecord, split
from streams.records import FutureSkew
from tests.streams.helpers import make_events


def test_next_offsets_are_one_past_the_last_record_of_each_partition() -> None:
    raws = [RawRecord(p, o, None, None) for p, o in [(0, 5), (1, 2), (0, 7), (0, 6), (1, 0)]]
    assert next_offsets(raws) == {0: 8, 1: 3}
    assert next_offsets([]) == {}


def test_prefolded_partitions_equal_the_fold_of_their_records() -> None:
    events = make_events(500, 20, seed=5)
    raws = [RawRecord(i % 3, i // 3, codec.to_record(e)[1], None) for i, e in enumerate(events)] + [
        RawRecord(1, 9_999, b"not json", None)
    ]
    parts = split(raws, FutureSkew(), prefold=True)
    assert [b.partition for b, _ in parts] == [0, 1, 2]
    for batch, _ in parts:
        assert batch.folded is not None
        expected = fold(batch.records)
        assert batch.folded.events == expected.events == len(batch.records)
        assert batch.folded.type_counts == expected.type_counts
    assert parts[1][0].invalid_offsets == [9_999]
    assert all(b.folded is None for b, _ in split(raws, FutureSkew()))
