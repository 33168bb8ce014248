"""Batch bookkeeping (pure): which offsets a processed batch lets the consumer commit."""

from __future__ import annotations

from collections.abc import Iterable

from sinks.records import Incoming

TopicPartitionKey = tuple[str, int]


def next_offsets(records: Iterable[Incoming]) -> dict[TopicPartitionKey, int]:
    """The offset to commit per partition: one past the highest offset seen."""
    result: dict[TopicPartitionKey, int] = {}
    for r in records:
        key = (r.topic, r.partition)
        if r.offset + 1 > result.get(key, -1):
            result[key] = r.offset + 1
    return result


def without_partitions(records: list[Incoming], revoked: set[TopicPartitionKey]) -> list[Incoming]:
    """Abandon the not-yet-written records of revoked partitions (their new owner reads them)."""
    if not revoked:
        return records
    return [r for r in records if (r.topic, r.partition) not in revoked]
