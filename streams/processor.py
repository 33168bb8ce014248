"""One consumed batch: decode, split by partition and fold (``prepare``, in the consuming
thread), then apply each partition behind its fence (``apply``).

Transactions run in worker threads (``asyncio.to_thread``), one connection per lane; a
database fault closes that connection, waits with backoff and retries the same partition
batch. ``apply`` returns, and so lets the consumer commit the Kafka offsets, only once every
partition is applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import psycopg

from schemas import InvalidEvent
from streams.backoff import delays
from streams.fold import fold
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


def split(
    raws: Sequence[RawRecord], skew: FutureSkew, *, prefold: bool = False
) -> list[tuple[PartitionBatch, list[int]]]:
    """Decode ``raws`` and group them per partition (with each record's timestamp, ms);
    ``prefold`` also folds each partition's records ahead of its transaction."""
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
    out = []
    for p in sorted(records.keys() | invalid.keys()):
        recs = records.get(p, [])
        folded = fold(recs) if prefold and recs else None
        out.append((PartitionBatch(p, recs, invalid.get(p, []), folded), stamps.get(p, [])))
    return out


class Prepared(NamedTuple):
    seconds: float
    """Time the preparation took (counted in the batch's duration)."""
    parts: list[tuple[PartitionBatch, list[int]]]


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
        lanes: int = 1,
    ) -> None:
        self._conninfo, self._projection, self._topic = conninfo, projection, topic
        self._skew, self.metrics = skew, metrics
        self._retry = (retry_initial_s, retry_max_s)
        self._connect, self._clock = connect, clock
        self._conns: list[Connection | None] = [None] * lanes
        """One connection per lane; partition p is applied by lane ``p % lanes``, so each
        partition's batches stay in order while lanes run their transactions concurrently."""
        self.db_ok = True
        """False while the last attempt failed with a database fault."""

    def prepare(self, raws: Sequence[RawRecord]) -> Prepared:
        """Decode, split and fold ``raws`` (blocking: run it in the consuming thread)."""
        started = time.perf_counter()
        parts = split(raws, self._skew, prefold=True)
        return Prepared(time.perf_counter() - started, parts)

    async def apply(self, prepared: Prepared) -> list[Applied]:
        """Apply each partition's batch behind its fence, with retries (in partition order)."""
        started, parts = time.perf_counter() - prepared.seconds, prepared.parts
        lanes: list[list[tuple[PartitionBatch, list[int]]]] = [[] for _ in self._conns]
        for part in parts:
            lanes[part[0].partition % len(lanes)].append(part)
        done = await asyncio.gather(*(self._apply_lane(i, lane) for i, lane in enumerate(lanes)))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return sorted((r for lane in done for r in lane), key=lambda r: r.partition)

    async def _apply_lane(
        self, lane: int, parts: list[tuple[PartitionBatch, list[int]]]
    ) -> list[Applied]:
        results = []
        for batch, stamps in parts:
            self.metrics.events.labels("invalid").inc(len(batch.invalid_offsets))
            result = await self._apply_with_retry(lane, batch)
            self.metrics.applied(result)
            now_ms = self._clock() * 1000
            for ms in stamps:
                self.metrics.freshness.observe(max(0.0, (now_ms - ms) / 1000))
            results.append(result)
        return results

    async def _apply_with_retry(self, lane: int, batch: PartitionBatch) -> Applied:
        backoff = delays(*self._retry)
        while True:
            try:
                result = await asyncio.to_thread(self._apply, lane, batch)
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

    def _apply(self, lane: int, batch: PartitionBatch) -> Applied:
        conn = self._conns[lane]
        try:
            if conn is None or conn.closed:
                conn = self._conns[lane] = self._connect(self._conninfo)
            return apply_batch(conn, self._projection, self._topic, batch)
        except psycopg.OperationalError:
            self._close(lane)
            raise

    def _close(self, lane: int) -> None:
        conn, self._conns[lane] = self._conns[lane], None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for lane in range(len(self._conns)):
            self._close(lane)

    def healthy(self) -> bool:
        return any(conn is not None and not conn.closed for conn in self._conns)
