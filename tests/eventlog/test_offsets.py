"""Offset bookkeeping: ranges of a batch, offsets to commit, revoked partitions, the fence."""

from __future__ import annotations

from confluent_kafka import KafkaError, Message

from eventlog.offsets import (
    Positions,
    admit,
    is_fatal,
    next_offsets,
    offset_ranges,
    without_partitions,
)
from schemas.accepted import AcceptedBatch
from tests.sinks.conftest import message


def _rec(partition: int, offset: int, topic: str = "t") -> Message:
    return message(b"{}", topic=topic, partition=partition, offset=offset)


def _batch(first: int, offsets: list[int], last: int, partition: int = 0) -> AcceptedBatch:
    batch = AcceptedBatch("t.events", partition, first, last)
    for o in offsets:
        batch.append(o, "login", f"u{o}", 1_767_225_600_000_000 + o, 1)
    return batch


def test_offset_ranges_span_the_lowest_to_the_highest_per_partition() -> None:
    records = [_rec(0, 5), _rec(1, 9), _rec(0, 7), _rec(0, 6)]
    assert offset_ranges(records) == {0: (5, 7), 1: (9, 9)}


def test_the_offsets_to_commit_are_one_past_each_last() -> None:
    assert next_offsets("t", {0: (5, 7), 1: (9, 9)}) == {("t", 0): 8, ("t", 1): 10}


def test_revoked_partitions_are_abandoned() -> None:
    records = [_rec(0, 5), _rec(1, 9), _rec(2, 1)]
    assert without_partitions(records, {("t", 1)}) == [records[0], records[2]]
    assert without_partitions(records, set()) is records


def test_fatal_errors_include_the_unflagged_fatal_code() -> None:
    assert is_fatal(KafkaError(KafkaError._FATAL))
    assert not is_fatal(KafkaError(KafkaError._TRANSPORT))


def test_the_fence_skips_what_it_passed_and_never_moves_back() -> None:
    kept, position = admit(0, _batch(0, [1, 3, 4], 5))
    assert (kept.offsets, position) == ([1, 3, 4], 6)
    kept, position = admit(position, _batch(3, [3, 4, 7], 8))  # a range forwarded again
    assert (kept.offsets, kept.first_offset, position) == ([7], 6, 9)
    kept, position = admit(position, _batch(0, [1], 2))  # an old record redelivered
    assert (kept.offsets, position) == ([], 9)


def test_positions_fence_each_source_partition_on_its_own() -> None:
    positions = Positions()
    assert positions.admit(_batch(0, [1, 2], 2, partition=0)).offsets == [1, 2]
    assert positions.admit(_batch(0, [0, 2], 3, partition=1)).offsets == [0, 2]
    assert positions.admit(_batch(0, [1, 2, 5], 6, partition=0)).offsets == [5]
    assert positions == {("t.events", 0): 7, ("t.events", 1): 4}
