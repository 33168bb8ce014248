"""One take of accepted-stream records: decode, group by source partition, fold and apply each
group behind its fence, lanes in parallel.

The Faust agent hands over the records it took (each one a sink batch of up to thousands of
events). Each lane (one connection) takes the next source partition of the take, largest first,
and applies its batches in record order, so a partition's batches stay in order while lanes run
their transactions concurrently (Postgres then uses more than one core). Each lane folds and
commits in a worker thread (``asyncio.to_thread``); a database fault closes that lane's
connection, waits with backoff and retries the same partition batch.
:meth:`BatchProcessor.apply` returns, and so lets Faust commit the accepted records' offsets,
only once every partition is applied.

A record that is not a well-formed batch (:class:`schemas.accepted.InvalidBatch`) is logged with
its reason and coordinates and counted in ``brainstream_worker_records{outcome="invalid"}``; the
fence does not move for it, and the record stays in the topic for a replay once fixed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import psycopg

from eventlog.backoff import delays
from eventlog.db import Connection
from schemas.accepted import AcceptedBatch, InvalidBatch, decode_batch
from streams.errors import ApplyAbandoned
from streams.metrics import WorkerMetrics
from streams.writer import Applied, PartitionBatch, apply_batch, fold_partition

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A consumed accepted-stream record: the fields the processor reads, no Faust object (it
    is handed to worker threads and built by hand in tests)."""

    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None


def group(raws: Sequence[RawRecord]) -> tuple[dict[tuple[str, int], list[AcceptedBatch]], int]:
    """Decode ``raws`` and group them by source (topic, partition), keeping their order; also
    returns how many records were invalid (each one logged)."""
    groups: dict[tuple[str, int], list[AcceptedBatch]] = {}
    invalid = 0
    for raw in raws:
        try:
            batch = decode_batch(raw.value)
        except InvalidBatch as exc:
            invalid += 1
            log.error(
                "accepted record at partition %d offset %d skipped: %s",
                raw.partition,
                raw.offset,
                exc.reason,
            )
            continue
        groups.setdefault((batch.topic, batch.partition), []).append(batch)
    return groups, invalid


ApplyBatch = Callable[[Connection, str, PartitionBatch], Applied]
"""Applies one source partition's batch behind its fence in one committed transaction
(:func:`streams.writer.apply_batch`); raises ``psycopg.OperationalError`` on a database fault."""


class BatchProcessor:
    """Owns the worker's database connections and applies takes with retries.

    The seams of its tests: ``connect`` opens a lane's connection and ``apply`` applies one
    partition batch on it (default :func:`streams.writer.apply_batch`)."""

    def __init__(
        self,
        conninfo: str,
        projection: str,
        *,
        metrics: WorkerMetrics,
        retry_initial_seconds: float = 0.2,
        retry_max_seconds: float = 10.0,
        connect: Callable[[str], Connection] = lambda dsn: psycopg.connect(dsn),
        clock: Callable[[], float] = time.time,
        lanes: int = 1,
        apply: ApplyBatch = apply_batch,
    ) -> None:
        self._conninfo, self._projection = conninfo, projection
        self.metrics = metrics
        self._retry = (retry_initial_seconds, retry_max_seconds)
        self._connect, self._clock, self._apply_batch = connect, clock, apply
        self._conns: list[Connection | None] = [None] * lanes
        self.db_ok = True
        """False while the last attempt failed with a database fault."""
        self._stopping = asyncio.Event()

    def stop_retrying(self) -> None:
        """The worker is stopping: an apply that meets a database fault from now on (or is
        waiting to retry one) raises :class:`ApplyAbandoned` instead of retrying. An apply whose
        transaction is running is left to finish."""
        self._stopping.set()

    async def apply(self, raws: Sequence[RawRecord]) -> list[Applied]:
        """Apply every record of ``raws``: each source partition behind its fence, in order.

        Raises:
            ApplyAbandoned: the worker is stopping (:meth:`stop_retrying`) and a database fault
                keeps a partition from committing (the partitions already applied stay applied).
        """
        started = time.perf_counter()
        groups, invalid = group(raws)
        self.metrics.records.labels("invalid").inc(invalid)
        self.metrics.records.labels("applied").inc(len(raws) - invalid)
        # Largest partition first, each lane taking the next one when free: the take ends when
        # its longest chain of partitions does (a fixed partition -> lane map left lanes 0 and 1
        # with two partitions each of six, the other two lanes idle half the take).
        work = sorted(groups.items(), key=lambda item: -sum(len(b) for b in item[1]))
        queue: collections.deque[tuple[tuple[str, int], list[AcceptedBatch]]]
        queue = collections.deque(work)
        stamps = [r.timestamp_ms for r in raws if r.timestamp_ms]
        lanes = range(min(len(self._conns), len(work)))
        done = await asyncio.gather(*(self._apply_lane(i, queue) for i in lanes))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        now_ms = self._clock() * 1000
        for ms in stamps:
            self.metrics.freshness.observe(max(0.0, (now_ms - ms) / 1000))
        return sorted((r for lane in done for r in lane), key=lambda r: r.partition)

    async def _apply_lane(
        self, lane: int, queue: collections.deque[tuple[tuple[str, int], list[AcceptedBatch]]]
    ) -> list[Applied]:
        results = []
        while queue:
            (topic, partition), batches = queue.popleft()
            prepared = await asyncio.to_thread(fold_partition, topic, partition, batches)
            result = await self._apply_with_retry(lane, prepared)
            self.metrics.applied(result)
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
                if not self._stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    raise ApplyAbandoned(batch.partition, exc) from exc
                continue
            self.db_ok = True
            self.metrics.db_up.set(1)
            return result

    def _apply(self, lane: int, batch: PartitionBatch) -> Applied:
        conn = self._conns[lane]
        try:
            if conn is None or conn.closed:
                conn = self._conns[lane] = self._connect(self._conninfo)
            return self._apply_batch(conn, self._projection, batch)
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


class TakePipeline(Generic[T]):
    """Applies takes one at a time while the next ones are gathered, acking each item only
    after the apply that held it returned.

    :meth:`offer` hands over a take and returns at once while an apply is in flight: the
    takes that arrive meanwhile are merged and applied together next (under backlog the
    applies grow, so more events share a row; at a trickle each take is applied as it comes).
    So Faust keeps fetching and gathering, and decoding, folding and the ``within`` wait of
    the next take overlap the database work of this one. Applies never overlap, so each source
    partition's records are applied in order. An apply holds at most ``max_queued`` items;
    ``offer`` waits while that many or more are queued (backpressure), and raises what a
    finished apply raised.

    ``apply`` is :meth:`BatchProcessor.apply` (or a wrapper); ``ack`` acks one item (Faust's
    ``Stream.ack``: its offset may then be committed); ``raw`` reads an item's record.
    """

    def __init__(
        self,
        apply: Callable[[Sequence[RawRecord]], Awaitable[object]],
        ack: Callable[[T], Awaitable[object]],
        raw: Callable[[T], RawRecord],
        max_queued: int,
    ) -> None:
        self._apply, self._ack, self._raw = apply, ack, raw
        self._max = max_queued
        self._queued: list[T] = []
        self._task: asyncio.Task[None] | None = None
        self._taken = asyncio.Event()
        self._closed = False

    def close(self) -> None:
        """Start no further apply (the worker is stopping): what is queued stays unacked, to be
        read again by a restart or the partitions' next owner; an apply in flight goes on."""
        self._closed = True

    async def offer(self, items: Sequence[T]) -> None:
        """Queue ``items`` (one take) for the next apply; start it when none is in flight."""
        if self._closed:
            return
        self._queued.extend(items)
        if self._task is None or self._task.done():
            if self._task is not None:
                self._task.result()
            self._task = asyncio.create_task(self._run())
        while len(self._queued) >= self._max and not self._task.done():
            self._taken.clear()
            taken = asyncio.ensure_future(self._taken.wait())
            try:
                await asyncio.wait([taken, self._task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                taken.cancel()

    async def drain(self) -> None:
        """Wait until everything offered is applied and acked (after :meth:`close`: the apply
        in flight).

        Raises:
            Exception: what the last apply raised (e.g. :class:`ApplyAbandoned`)."""
        while self._task is not None:
            task = self._task
            await task
            if self._task is task:
                self._task = None

    async def _run(self) -> None:
        while self._queued and not self._closed:
            items, self._queued = self._queued[: self._max], self._queued[self._max :]
            self._taken.set()
            await self._apply([self._raw(item) for item in items])
            for item in items:
                await self._ack(item)
