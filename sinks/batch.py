"""Batch bookkeeping (pure): which offsets a processed batch lets the consumer commit.

confluent-kafka types a message's topic, partition and offset as optional (a ``Message`` built
by hand may lack them); a consumed record always has all three."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Message

TopicPartitionKey = tuple[str, int]


def next_offsets(records: Iterable[Message]) -> dict[TopicPartitionKey, int]:
    """The offset to commit per partition: one past the highest offset seen."""
    result: dict[TopicPartitionKey, int] = {}
    for r in records:
        key: TopicPartitionKey = (r.topic(), r.partition())  # type: ignore[assignment]
        offset: int = r.offset() + 1  # type: ignore[operator]
        if offset > result.get(key, -1):
            result[key] = offset
    return result


def without_partitions(records: list[Message], revoked: set[TopicPartitionKey]) -> list[Message]:
    """Abandon the not-yet-written records of revoked partitions (their new owner reads them)."""
    if not revoked:
        return records
    return [r for r in records if (r.topic(), r.partition()) not in revoked]
