"""Batch bookkeeping (pure): the offsets a processed batch covers (forwarded as its range,
committed as one past its last).

confluent-kafka types a message's topic, partition and offset as optional (a ``Message`` built
by hand may lack them); a consumed record always has all three."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Message

TopicPartitionKey = tuple[str, int]


def offset_ranges(records: Iterable[Message]) -> dict[int, tuple[int, int]]:
    """Per source partition, the (first, last) offset of ``records`` (inclusive)."""
    ranges: dict[int, tuple[int, int]] = {}
    for record in records:
        partition: int = record.partition()  # type: ignore[assignment]  # set when consumed
        offset: int = record.offset()  # type: ignore[assignment]
        lo, hi = ranges.get(partition, (offset, offset))
        ranges[partition] = (min(lo, offset), max(hi, offset))
    return ranges


def without_partitions(records: list[Message], revoked: set[TopicPartitionKey]) -> list[Message]:
    """Abandon the not-yet-written records of revoked partitions (their new owner reads them)."""
    if not revoked:
        return records
    return [r for r in records if (r.topic(), r.partition()) not in revoked]
