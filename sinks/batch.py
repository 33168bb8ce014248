"""Batch bookkeeping (pure): the offsets a processed batch covers (forwarded as its range,
committed as one past its last).

confluent-kafka types a message's topic, partition and offset as optional (a ``Message`` built
by hand may lack them); a consumed record always has all three."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, Message

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


def is_fatal(err: KafkaError) -> bool:
    """Whether librdkafka's client is unusable after ``err``.

    A consumer reports a fatal error (e.g. fenced by another member with the same
    ``group.instance.id``) as a message whose error code is ``_FATAL`` and whose ``fatal()``
    flag is not set; only the error callback gets the flagged underlying error. Both mean the
    client must be recreated (see librdkafka's ``rd_kafka_fatal_error``).
    """
    return bool(err.fatal()) or err.code() == KafkaError._FATAL
