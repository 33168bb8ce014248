"""Consumes ``brainstream.events`` in batches with confluent-kafka, hosted by the Faust app.

faust-streaming hands every record through its own per-message machinery (two asyncio tasks
per message in ``Consumer._drain_messages``, the conductor, the stream iterator, one ack per
event): about 70 us per event, a ceiling of ~14k events/s on the benchmark machine whatever
the agent does (faust#563). So the worker reads the topic with a librdkafka consumer of the
same consumer group instead, in a thread, and keeps Faust for the web pages and the process
lifecycle.

The guarantees are those of the agent it replaces: batches are applied in order, at most one
in flight while the next is read; the Kafka offsets of a batch are committed only after its
fenced transactions committed (never auto-committed), so a crash redelivers from the last
applied batch and the fences skip what was already counted. A partition revoked while its
records are buffered or in flight is harmless: the new owner and this worker serialise on the
partition's fence row, so whichever applies second skips what the first applied.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from streams.processor import RawRecord

log = logging.getLogger(__name__)

P = TypeVar("P")


def raw_record(msg: Message) -> RawRecord:
    kind, stamp = msg.timestamp()
    partition, offset = msg.partition(), msg.offset()
    assert partition is not None and offset is not None  # a consumed record has both
    return RawRecord(
        partition, offset, msg.value(), stamp if kind != TIMESTAMP_NOT_AVAILABLE else None
    )


def next_offsets(raws: Sequence[RawRecord]) -> dict[int, int]:
    """Per partition, the offset after the last record of ``raws`` (what Kafka commits)."""
    out: dict[int, int] = {}
    for raw in raws:
        if raw.offset >= out.get(raw.partition, 0):
            out[raw.partition] = raw.offset + 1
    return out


class BatchConsumer(Generic[P]):
    """Reads batches of ``size`` records (or what came within ``within`` seconds of the first),
    ``prepare``s each in the consuming thread (decode, fold: off the database's path) and
    ``apply``s them one after the other, committing each batch's offsets after it applied."""

    def __init__(
        self,
        conf: dict[str, Any],
        topic: str,
        prepare: Callable[[list[RawRecord]], P],
        apply: Callable[[P], Awaitable[object]],
        *,
        size: int,
        within: float,
    ) -> None:
        self._conf, self._topic = conf, topic
        self._prepare, self._apply = prepare, apply
        self._size, self._within = size, within
        self._consumer: Consumer | None = None
        self._applied: dict[int, int] = {}
        """Next offsets of applied batches, committed by the polling thread (librdkafka's
        consumer is not to be called from two threads at once)."""
        self._lock = threading.Lock()
        self._stopping = False
        self._done = asyncio.Event()

    async def run(self) -> None:
        """Consume until :meth:`stop`; the last batch is applied and committed before return."""
        consumer = self._consumer = Consumer(self._conf)
        consumer.subscribe([self._topic])
        inflight: asyncio.Future[None] | None = None
        try:
            while not self._stopping:
                batch = await asyncio.to_thread(self._poll, consumer)
                if inflight is not None:
                    await inflight
                    inflight = None
                if batch is not None:
                    inflight = asyncio.ensure_future(self._apply_then_commit(*batch))
            if inflight is not None:
                await inflight
        finally:
            await asyncio.to_thread(self._close, consumer)
            self._done.set()

    async def stop(self) -> None:
        """Finish the batch in flight, commit it and leave the group."""
        self._stopping = True
        if self._consumer is not None:
            await self._done.wait()

    def _close(self, consumer: Consumer) -> None:
        self._commit(consumer)
        consumer.close()

    def _commit(self, consumer: Consumer) -> None:
        with self._lock:
            applied, self._applied = self._applied, {}
        if not applied:
            return
        offsets = [TopicPartition(self._topic, p, n) for p, n in applied.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:  # e.g. the partitions were revoked: the fences cover it
            log.info("offset commit skipped: %s", exc)

    def _poll(self, consumer: Consumer) -> tuple[P, dict[int, int]] | None:
        out: list[RawRecord] = []
        deadline: float | None = None
        while not self._stopping and len(out) < self._size:
            self._commit(consumer)
            wait = self._within if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            for msg in consumer.consume(self._size - len(out), timeout=min(wait, 0.5)):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error: %s", err)
                    continue
                out.append(raw_record(msg))
            if out and deadline is None:
                deadline = time.monotonic() + self._within
        return (self._prepare(out), next_offsets(out)) if out else None

    async def _apply_then_commit(self, prepared: P, offsets: dict[int, int]) -> None:
        await self._apply(prepared)
        with self._lock:
            for p, n in offsets.items():
                self._applied[p] = max(n, self._applied.get(p, 0))
