"""Offset bookkeeping (pure): the offsets a consumed batch covers, the offsets to commit after
it, the records of revoked partitions, fatal client errors, and the in-memory offset fence of a
replay of the accepted stream.

confluent-kafka types a message's topic, partition and offset as optional (a ``Message`` built
by hand may lack them); a consumed record always has all three.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, Message

from schemas.accepted import AcceptedBatch

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


def next_offsets(topic: str, ranges: Mapping[int, tuple[int, int]]) -> dict[TopicPartitionKey, int]:
    """The offsets to commit once ``ranges`` (of ``topic``) are processed: one past each last."""
    return {(topic, partition): last + 1 for partition, (_, last) in ranges.items()}


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


def admit(position: int, batch: AcceptedBatch) -> tuple[AcceptedBatch, int]:
    """The offset fence applied to one accepted batch of a source partition.

    ``position`` is the next source offset not yet applied. Returns the events of ``batch`` at
    or after it, and the position once ``batch`` is applied (past its ``last_offset``, never
    backwards), so a range forwarded twice is counted once."""
    return batch.after(position - 1), max(position, batch.last_offset + 1)


class Positions(dict[TopicPartitionKey, int]):
    """Per source (topic, partition), the next source offset not yet applied (0: none)."""

    def admit(self, batch: AcceptedBatch) -> AcceptedBatch:
        """The events of ``batch`` not yet applied; records ``batch`` as applied."""
        key = (batch.topic, batch.partition)
        kept, self[key] = admit(self.get(key, 0), batch)
        return kept
