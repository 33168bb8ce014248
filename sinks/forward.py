"""Forwarding what the sink stored to the accepted stream (``brainstream.events.accepted``).

After a batch's transaction commits and before its offsets are committed, the sink produces,
per source partition, one record (:mod:`schemas.accepted`) listing the events that this offset
range stored, on the same partition number as the source.

The forwarding rule: an event is forwarded exactly when its stored row carries this record's
own source coordinate (``kafka_partition``, ``kafka_offset``). The writer decides that in the
batch's transaction (:attr:`sinks.writer.WriteResult.accepted`), so the rule is a fact of the
committed table, not of the process that computed it: whichever sink (a restarted one, a
zombie, the new owner after a rebalance) processes the same offsets again forwards the same
set. A later duplicate of an ``event_id`` finds a row stored by another coordinate, an erased
user's event is dropped before the insert, and a dead-lettered record has no row at all: none
of them is ever forwarded.

Record size: the producer's ``message.max.bytes`` and the broker's ``message.max.bytes`` are
1,000,000 and 1,048,588 bytes by default. Rather than ask every deployment to raise them, a
partition's batch whose encoded value exceeds :data:`MAX_RECORD_BYTES` is split into chunks
that tile its offset range (each chunk's ``first_offset..last_offset`` holds all of its
accepted events), so a consumer's fence is correct after any prefix of the chunks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from eventlog.backoff import delays
from eventlog.clients import producer_conf
from eventlog.offsets import is_fatal
from schemas.accepted import AcceptedBatch, encode_batch
from schemas.config import KafkaAccessRefused, access_refused, principal
from schemas.errors import BrainstreamError
from sinks.records import Row

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 900_000
"""Largest encoded batch value produced: under librdkafka's default ``message.max.bytes``
(1,000,000) with room for the record's framing, and under the broker's default (1,048,588)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def epoch_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (no float rounding)."""
    return (moment - _EPOCH) // _US


def accepted_batches(
    topic: str, ranges: dict[int, tuple[int, int]], accepted: Iterable[Row]
) -> list[AcceptedBatch]:
    """One batch per source partition of ``ranges`` (partition -> (first, last) offset
    processed, inclusive), holding the ``accepted`` rows of that partition in offset order.

    A partition that accepted nothing still gets its (empty) batch: a consumer's fence moves
    past the range. Raises ``ValueError`` for an accepted row outside its partition's range.
    Hot path (once per sink batch, ~1 µs per event): no per-row checks beyond the grouping.
    """
    by_partition: dict[int, list[Row]] = {p: [] for p in ranges}
    try:
        for row in accepted:
            by_partition[row.kafka_partition].append(row)
    except KeyError as exc:
        raise ValueError(f"accepted row of partition {exc.args[0]} outside the batch") from None
    batches = []
    for partition in sorted(ranges):
        first, last = ranges[partition]
        rows = by_partition[partition]
        rows.sort(key=_offset)  # already in order on the sink's paths: a linear check
        if rows and not first <= rows[0].kafka_offset <= rows[-1].kafka_offset <= last:
            raise ValueError(f"accepted row of partition {partition} outside the batch")
        batches.append(
            AcceptedBatch(
                topic,
                partition,
                first,
                last,
                [r.kafka_offset for r in rows],
                [r.event_type for r in rows],
                [r.user_id for r in rows],
                [(r.occurred_at - _EPOCH) // _US for r in rows],
                [r.schema_version for r in rows],
            )
        )
    return batches


def _offset(row: Row) -> int:
    return row.kafka_offset


def chunked(batch: AcceptedBatch, max_bytes: int = MAX_RECORD_BYTES) -> list[bytes]:
    """The record values of ``batch``, each at most ``max_bytes`` (split by halving, so the
    chunks tile ``first_offset..last_offset`` in order). Raises ``ValueError`` when a single
    event does not fit (an event is a few hundred bytes at most: the contract bounds it)."""
    value = encode_batch(batch)
    if len(value) <= max_bytes:
        return [value]
    if len(batch) <= 1:
        raise ValueError(f"one accepted event encodes to {len(value)} bytes > {max_bytes}")
    mid = len(batch) // 2
    split_at = batch.offsets[mid]  # the second half's range starts at its first event
    head = _slice(batch, 0, mid, batch.first_offset, split_at - 1)
    tail = _slice(batch, mid, len(batch), split_at, batch.last_offset)
    return chunked(head, max_bytes) + chunked(tail, max_bytes)


def _slice(batch: AcceptedBatch, lo: int, hi: int, first: int, last: int) -> AcceptedBatch:
    return AcceptedBatch(
        batch.topic,
        batch.partition,
        first,
        last,
        batch.offsets[lo:hi],
        batch.types[lo:hi],
        batch.user_ids[lo:hi],
        batch.occurred_at_us[lo:hi],
        batch.schema_versions[lo:hi],
    )


_STOP_GRACE_SECONDS = 10
_PERMANENT = frozenset(
    {
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
    }
)


class ForwardStopped(BrainstreamError):
    """Shutdown was requested before the accepted batches were acknowledged."""


class Forwarder:
    """Produces accepted batches (acks=all, idempotent) and waits until each is acknowledged.

    A record the broker does not acknowledge is produced again, with backoff, until it is or
    ``stop`` is set (then :class:`ForwardStopped`: the caller must not commit the offsets,
    so the range is processed and forwarded again). Producing the same content twice is
    harmless: a consumer's offset fence skips it.
    """

    def __init__(
        self,
        kafka_conf: dict[str, Any],
        topic: str,
        *,
        retry_initial_seconds: float = 0.2,
        retry_max_seconds: float = 10.0,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self._producer = producer_factory(producer_conf(kafka_conf, linger_ms=0, compression="lz4"))
        self.topic = topic
        self._principal = principal(kafka_conf)
        self._retry = (retry_initial_seconds, retry_max_seconds)
        self.records = 0
        self.bytes = 0

    def check(self, partitions: int, timeout: float = 30.0) -> None:
        """Raise :class:`ForwardError` unless the topic exists with at least ``partitions``
        partitions (the events topic's count: batch records keep the source's number), or
        :class:`KafkaAccessRefused` when this principal may not even describe it."""
        meta = self._producer.list_topics(self.topic, timeout=timeout).topics.get(self.topic)
        if meta is not None and (denied := self._refused(meta.error, "describing")) is not None:
            raise denied
        if meta is None or meta.error is not None:
            reason = meta.error.str() if meta is not None and meta.error else "missing"
            raise ForwardError(f"accepted topic {self.topic}: {reason} (brainstream topics create)")
        if len(meta.partitions) < partitions:
            raise ForwardError(
                f"accepted topic {self.topic} has {len(meta.partitions)} partitions, the events"
                f" topic {partitions}: batch records go to their source partition's number"
            )

    def send(self, batches: list[AcceptedBatch], stop: threading.Event) -> None:
        """Produce ``batches`` (each to its source partition) and return once all are acked.

        Raises:
            ForwardStopped: ``stop`` was set while records were still unacknowledged.
            ForwardError: an error no retry can cure (missing partition, too large, fatal).
            KafkaAccessRefused: the cluster refused this principal writing to the topic.
        """
        pending = [(b.partition, v) for b in batches for v in chunked(b)]
        self.records += len(pending)
        backoff = delays(*self._retry)
        while pending:
            failed = self._produce(pending, stop)
            if not failed:
                return
            if stop.wait(next(backoff)):
                raise ForwardStopped(f"{len(failed)} accepted record(s) not acknowledged")
            pending = failed

    def _produce(
        self, records: list[tuple[int, bytes]], stop: threading.Event
    ) -> list[tuple[int, bytes]]:
        """Produce and flush; the records the broker did not acknowledge."""
        failed: list[tuple[int, bytes]] = []
        errors: list[KafkaError] = []

        def on_delivery(record: tuple[int, bytes]) -> Callable[[KafkaError | None, Any], None]:
            def delivered(err: KafkaError | None, _msg: Any) -> None:
                if err is not None:
                    failed.append(record)
                    errors.append(err)

            return delivered

        for record in records:
            partition, value = record
            while True:
                try:
                    self._producer.produce(
                        self.topic,
                        value,
                        partition=partition,
                        on_delivery=on_delivery(record),
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)
                except KafkaException as exc:  # e.g. a partition the topic does not have
                    if (denied := self._refused(exc.args[0], "writing to")) is not None:
                        raise denied from None
                    raise ForwardError(f"{self.topic}[{partition}]: {exc.args[0].str()}") from exc
            self.bytes += len(value)
        waited = 0
        while self._producer.flush(1.0) > 0:
            waited += 1
            if stop.is_set() and waited >= _STOP_GRACE_SECONDS:
                raise ForwardStopped("shutdown while accepted records were in flight")
        for err in errors:
            if (denied := self._refused(err, "writing to")) is not None:
                raise denied
            if is_fatal(err) or err.code() in _PERMANENT:
                raise ForwardError(f"{self.topic}: {err.str()}")
        if errors:
            log.warning("accepted records not acknowledged (%s); producing again", errors[0])
        return failed

    def close(self) -> None:
        self._producer.flush(10.0)

    def _refused(self, err: KafkaError | None, doing: str) -> KafkaAccessRefused | None:
        return access_refused(
            err, self._principal, f"{doing} topic {self.topic!r}, the accepted stream,"
        )


class ForwardError(BrainstreamError):
    """The accepted stream cannot be produced to (a fatal producer error, a missing topic or
    partition); the sink stops without committing the batch's offsets."""
