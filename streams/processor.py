"""One agent batch: decode, split by partition, apply each partition behind its fence.

The blocking parts run in a worker thread (``asyncio.to_thread``); a database fault closes
the connection, waits with backoff and retries the same partition batch. The agent returns,
and so lets Faust ack and commit the Kafka offsets, only once every partition is applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from schemas import InvalidEvent
from streams.backoff import delays
from streams.metrics import WorkerMetrics
from streams.records import FutureSkew, Record, decode_record
from streams.writer import Applied, Connection, PartitionBatch, apply_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A consumed record, detached from Faust."""

    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None


def split(raws: Sequence[RawRecord], skew: FutureSkew) -> list[tuple[PartitionBatch, list[int]]]:
    """Decode ``raws`` and group them per partition (with each record's timestamp, ms)."""
    records: dict[int, list[Record]] = {}
    invalid: dict[int, list[int]] = {}
    stamps: dict[int, list[int]] = {}
    for raw in raws:
        try:
            rec = decode_record(raw.partition, raw.offset, raw.value, raw.timestamp_ms, skew)
        except InvalidEvent:
            invalid.setdefault(raw.partition, []).append(raw.offset)
            continue
        records.setdefault(raw.partition, []).append(rec)
        if raw.timestamp_ms:
            stamps.setdefault(raw.partition, []).append(raw.timestamp_ms)
    return [
        (PartitionBatch(p, records.get(p, []), invalid.get(p, [])), stamps.get(p, []))
        for p in sorted(records.keys() | invalid.keys())
    ]


class BatchProcessor:
    """Owns the worker's database connection and applies batches with retries."""

    def __init__(
        self,
        conninfo: str,
        projection: str,
        topic: str,
        *,
        skew: FutureSkew,
        metrics: WorkerMetrics,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 10.0,
        connect: Callable[[str], Connection] = lambda dsn: psycopg.connect(dsn),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conninfo, self._projection, self._topic = conninfo, projection, topic
        self._skew, self.metrics = skew, metrics
        self._retry = (retry_initial_s, retry_max_s)
        self._connect, self._clock = connect, clock
        self._conn: Connection | None = None
        self.db_ok = True
        """False while the last attempt failed with a database fault."""

    async def process(self, raws: Sequence[RawRecord]) -> list[Applied]:
        started = time.perf_counter()
        parts = await asyncio.to_thread(split, raws, self._skew)
        results = []
        for batch, stamps in parts:
            self.metrics.events.labels("invalid").inc(len(batch.invalid_offsets))
            result = await self._apply_with_retry(batch)
            self.metrics.applied(result)
            now_ms = self._clock() * 1000
            for ms in stamps:
                self.metrics.freshness.observe(max(0.0, (now_ms - ms) / 1000))
            results.append(result)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return results

    async def _apply_with_retry(self, batch: PartitionBatch) -> Applied:
        backoff = delays(*self._retry)
        while True:
            try:
                result = await asyncio.to_thread(self._apply, batch)
            except psycopg.OperationalError as exc:
                delay = next(backoff)
                self.db_ok = False
                self.metrics.db_up.set(0)
                self.metrics.db_retries.labels(type(exc).__name__).inc()
                log.warning(
                    "partition %d: database fault (%s); retrying in %.1fs",
                    batch.partition,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self.db_ok = True
            self.metrics.db_up.set(1)
            return result

    def _apply(self, batch: PartitionBatch) -> Applied:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect(self._conninfo)
            return apply_batch(self._conn, self._projection, self._topic, batch)
        except psycopg.OperationalError:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def healthy(self) -> bool:
        return self._conn is not None and not self._conn.closed
