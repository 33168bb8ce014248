"""Reading a bounded slice of a topic with a plain, assigned consumer (no group, no commits):
what the export, ``replay --to raw`` and ``replay --to aggregates`` read the log with.

Partitions are read one after the other in ascending order, offsets ascending within each:
the order of an export is a pure function of its per-partition ranges. Because the events
topic is keyed by user, this is also every user's own order.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from eventlog.clients import consumer_conf
from eventlog.errors import ExportStalled, RecordsGone, TimeLookupFailed, TopicMissing
from eventlog.ranges import LogRange, PartitionRange, epoch_ms, from_times, resolve
from schemas.config import access_refused

Message = Any
"""A ``confluent_kafka.Message`` (the library ships no type information)."""

_POLL_SECONDS = 0.2
_RETRY_SECONDS = 0.1
_GONE = frozenset({KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE})


def reader_conf(connection: Mapping[str, Any], group_id: str) -> dict[str, Any]:
    """The configuration of a :class:`LogReader`'s consumer: only ever ``assign()``-ed, its
    group id is never joined or committed. Records deleted (retention) after the range was
    planned fail the read (``auto.offset.reset=error``), never skipped unseen."""
    extra = {
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 10,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        "queued.max.messages.kbytes": 16_384,
    }
    return consumer_conf(connection, group_id, offset_reset="error", extra=extra)


class ReadLimits(Protocol):
    """How a read polls and how long it waits (``sinks.export.config.ExportConfig`` is one)."""

    @property
    def poll_batch(self) -> int:
        """Records asked of one ``consume`` call."""

    @property
    def stall_seconds(self) -> float:
        """Fail a partition that delivers nothing for this long before its end offset."""

    @property
    def kafka_timeout_seconds(self) -> float:
        """Bound of each metadata, watermark and time lookup."""


class LogReader:
    """Watermarks, time lookups and bounded reads of one topic."""

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        config: ReadLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        skip_deleted: bool = False,
        principal: str | None = None,
    ) -> None:
        self._consumer = consumer
        self.topic = topic
        self._principal = principal
        """The consumer's SASL principal, named when the cluster refuses it the topic."""
        self._config = config
        self._clock = clock
        self._skip_deleted = skip_deleted
        self.skipped = 0
        """Records of planned ranges deleted before they were read (``skip_deleted`` only)."""

    @property
    def stall_seconds(self) -> float:
        """How long a read may deliver nothing before it fails."""
        return self._config.stall_seconds

    def partitions(self) -> list[int]:
        meta = self._consumer.list_topics(self.topic, timeout=self._config.kafka_timeout_seconds)
        info = meta.topics.get(self.topic)
        if info is not None:
            doing = f"describing topic {self.topic!r}"
            if (denied := access_refused(info.error, self._principal, doing)) is not None:
                raise denied
        if info is None or info.error is not None or not info.partitions:
            raise TopicMissing(self.topic)
        return sorted(info.partitions)

    def watermarks(self) -> dict[int, tuple[int, int]]:
        timeout = self._config.kafka_timeout_seconds
        return {
            p: self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, p), timeout=timeout, cached=False
            )
            for p in self.partitions()
        }

    def offsets_for_times(self, partitions: list[int], epoch_ms: int) -> dict[int, int]:
        """First offset whose timestamp is at or after ``epoch_ms``, per partition (-1: none).

        A partition the broker cannot answer for yet (e.g. right after writes, before its high
        watermark moved) is asked again until ``kafka_timeout_seconds``; never guessed.
        """
        deadline = self._clock() + self._config.kafka_timeout_seconds
        answers: dict[int, int] = {}
        while True:
            pending = [p for p in partitions if p not in answers]
            asked = [TopicPartition(self.topic, p, epoch_ms) for p in pending]
            found = self._consumer.offsets_for_times(
                asked, timeout=self._config.kafka_timeout_seconds
            )
            errors = {}
            for tp in found:
                if tp.error is None and tp.offset >= -1:
                    answers[tp.partition] = tp.offset
                else:
                    errors[tp.partition] = tp.error
            if not errors:
                return answers
            if self._clock() > deadline:
                raise TimeLookupFailed(self.topic, epoch_ms, errors)
            time.sleep(_RETRY_SECONDS)

    def read(self, prange: PartitionRange) -> Iterator[list[Message]]:
        """Batches of the records in ``[start, end)`` of one partition, in offset order."""
        if prange.size <= 0:
            return
        self._consumer.assign([TopicPartition(self.topic, prange.partition, prange.start)])
        try:
            yield from self._batches(prange)
        finally:
            # A generator abandoned by an exception may be finalised after its consumer was
            # closed, which has no assignment left to drop.
            with contextlib.suppress(RuntimeError):
                self._consumer.unassign()

    def _batches(self, prange: PartitionRange) -> Iterator[list[Message]]:
        last_seen, position = self._clock(), prange.start
        while position < prange.end:
            messages = self._consumer.consume(self._config.poll_batch, _POLL_SECONDS)
            try:
                batch, position = _take(messages, prange, position)
            except RecordsGone:
                if not self._skip_deleted:
                    raise
                position = self._skip_to_log_start(prange, position)
                continue
            if batch:
                last_seen = self._clock()
                yield batch
            elif self._clock() - last_seen > self._config.stall_seconds:
                raise ExportStalled(
                    prange.partition, position, prange.end, self._clock() - last_seen
                )

    def _skip_to_log_start(self, prange: PartitionRange, position: int) -> int:
        tp = TopicPartition(self.topic, prange.partition)
        low, _high = self._consumer.get_watermark_offsets(
            tp, timeout=self._config.kafka_timeout_seconds, cached=False
        )
        start = min(max(low, position), prange.end)
        self.skipped += start - position
        self._consumer.assign([TopicPartition(self.topic, prange.partition, start)])
        return start


def _take(
    messages: list[Message], prange: PartitionRange, position: int
) -> tuple[list[Message], int]:
    """The records of ``messages`` below the end, and the new position (next offset to read)."""
    batch: list[Message] = []
    for msg in messages:
        err = msg.error()
        if err is not None:
            if err.code() in _GONE:
                raise RecordsGone(prange.partition, position)
            if (denied := access_refused(err, None, f"reading topic {msg.topic()!r}")) is not None:
                raise denied
            if err.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(err)
            # At the partition's current end: nothing at or past ``offset`` is readable yet, and
            # everything before it has been delivered (gaps are transaction markers).
            position = max(position, msg.offset())
            continue
        offset = msg.offset()
        if offset >= prange.end:
            return batch, prange.end
        batch.append(msg)
        position = offset + 1
    return batch, position


def plan(reader: LogReader, log_range: LogRange) -> list[PartitionRange]:
    """Per-partition ``[start, end)``, ends captured now (so the run is finite)."""
    marks = reader.watermarks()
    if log_range.kind != "time":
        return resolve(marks, log_range.start_offsets, log_range.end_offsets)
    parts = sorted(marks)

    def at(moment: datetime | None) -> dict[int, int]:
        if moment is None:
            return {}
        return from_times(reader.offsets_for_times(parts, epoch_ms(moment)), marks)

    return resolve(marks, at(log_range.since), at(log_range.until))
