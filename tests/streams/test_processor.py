"""The worker's apply seam: :class:`streams.processor.BatchProcessor` with an injected connection
factory and apply function, so its contract is checked without Postgres or Faust.

The Faust agent acks a take (and so lets Faust commit its offsets) only when
``BatchProcessor.apply`` returns; these tests pin what that return means:

- it returns only after every source partition of the take was applied (each in its own
  transaction, a partition's batches in order, the largest partitions first);
- while the database is down it retries the same partition batch with backoff, closes the
  faulty connection and reports the database down, and never returns early;
- an invalid record is counted and skipped, never applied.

:class:`streams.processor.TakePipeline` (the agent's takes): applies never overlap, takes offered
during an apply are merged into the next one, an item is acked only after its apply returned,
an apply holds at most ``max_queued`` items and ``offer`` waits while that many are queued.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from schemas.accepted import AcceptedBatch, encode_batch
from streams.errors import ApplyAbandoned
from streams.metrics import WorkerMetrics
from streams.processor import BatchProcessor, RawRecord, TakePipeline
from streams.writer import Applied, PartitionBatch


class FakeConnection:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeDatabase:
    """Applies partition batches in memory; down for the first ``failures`` attempts."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.attempts = 0
        self.applied: list[tuple[int, list[int]]] = []
        self.connections: list[FakeConnection] = []
        self._lock = threading.Lock()

    def connect(self, _dsn: str) -> FakeConnection:
        self.connections.append(FakeConnection())
        return self.connections[-1]

    def apply(self, conn: FakeConnection, projection: str, batch: PartitionBatch) -> Applied:
        assert not conn.closed and projection == "aggregates"
        with self._lock:
            self.attempts += 1
            if self.attempts <= self.failures:
                raise psycopg.OperationalError("the database is down (test)")
            self.applied.append((batch.partition, [b.first_offset for b in batch.batches]))
        return Applied(batch.partition, batch.events, 0, 0, 0, batch.last_offset + 1)


def _record(source_partition: int, first: int, offset: int) -> RawRecord:
    batch = AcceptedBatch("t.events", source_partition, first, first + 1)
    batch.append(first, "login", f"u{first}", 1_767_225_600_000_000, 1)
    return RawRecord(source_partition, offset, encode_batch(batch))


def _processor(db: FakeDatabase, lanes: int = 2) -> BatchProcessor:
    return BatchProcessor(
        "unused",
        "aggregates",
        metrics=WorkerMetrics(CollectorRegistry()),
        retry_initial_seconds=0.01,
        retry_max_seconds=0.02,
        connect=db.connect,  # type: ignore[arg-type]
        apply=db.apply,  # type: ignore[arg-type]
        lanes=lanes,
    )


def test_a_take_returns_only_once_every_partition_is_applied_in_order() -> None:
    db = FakeDatabase()
    raws = [_record(0, 10, 0), _record(1, 5, 1), _record(0, 12, 2), _record(2, 7, 3)]
    applied = asyncio.run(_processor(db).apply(raws))
    assert sorted(db.applied) == [(0, [10, 12]), (1, [5]), (2, [7])]
    assert [a.partition for a in applied] == [0, 1, 2]
    assert [a.next_offset for a in applied] == [14, 7, 9]


def test_lanes_take_the_largest_partition_first_and_each_partition_once() -> None:
    db = FakeDatabase()
    raws = [_record(0, 1, 0), _record(1, 1, 1), _record(2, 1, 2)]
    raws += [_record(3, first, 3 + i) for i, first in enumerate((1, 3, 5))]
    asyncio.run(_processor(db, lanes=2).apply(raws))
    assert 3 in [partition for partition, _ in db.applied[:2]]
    assert sorted(db.applied) == [(0, [1]), (1, [1]), (2, [1]), (3, [1, 3, 5])]


def test_while_the_database_is_down_the_same_batch_is_retried_and_nothing_returns_early() -> None:
    db = FakeDatabase(failures=3)
    processor = _processor(db, lanes=1)
    applied = asyncio.run(processor.apply([_record(0, 10, 0)]))
    assert db.attempts == 4 and db.applied == [(0, [10])]
    assert [c.closed for c in db.connections] == [True, True, True, False]  # reconnected
    assert [a.next_offset for a in applied] == [12]
    assert processor.db_ok


def test_an_invalid_record_is_skipped_and_counted_never_applied() -> None:
    db = FakeDatabase()
    processor = _processor(db)
    applied = asyncio.run(processor.apply([RawRecord(0, 0, b"not a batch"), _record(1, 3, 1)]))
    assert db.applied == [(1, [3])] and len(applied) == 1
    assert processor.metrics.records.labels("invalid")._value.get() == 1


class SlowApplies:
    """Records each apply and each ack; an apply finishes when the test releases it."""

    def __init__(self) -> None:
        self.applies: list[list[int]] = []
        self.acked: list[int] = []
        self.release = asyncio.Event()
        self.running = 0

    async def apply(self, raws: Sequence[RawRecord]) -> None:
        self.running += 1
        assert self.running == 1, "applies overlap"
        self.applies.append([r.offset for r in raws])
        await self.release.wait()
        self.release.clear()
        self.running -= 1

    async def ack(self, item: int) -> None:
        assert any(item in done for done in self.applies[:-1]) or not self.running
        self.acked.append(item)


def _pipeline(db: SlowApplies, max_queued: int = 10) -> TakePipeline[int]:
    return TakePipeline(db.apply, db.ack, lambda i: RawRecord(0, i, b""), max_queued)


def test_takes_offered_during_an_apply_are_merged_and_acked_only_after_theirs() -> None:
    async def scenario() -> SlowApplies:
        db = SlowApplies()
        pipeline = _pipeline(db)
        await pipeline.offer([0, 1])  # returns at once
        await asyncio.sleep(0)  # apply [0, 1] in flight
        await pipeline.offer([2])
        await pipeline.offer([3, 4])
        await asyncio.sleep(0)
        assert db.applies == [[0, 1]] and db.acked == []
        db.release.set()
        await asyncio.sleep(0.01)
        assert db.applies == [[0, 1], [2, 3, 4]] and db.acked == [0, 1]
        db.release.set()
        await pipeline.drain()
        return db

    db = asyncio.run(scenario())
    assert db.acked == [0, 1, 2, 3, 4]


def test_offer_waits_while_a_full_apply_is_queued_and_an_apply_holds_at_most_that() -> None:
    async def scenario() -> tuple[SlowApplies, bool]:
        db = SlowApplies()
        pipeline = _pipeline(db, max_queued=3)
        await pipeline.offer([0])
        await asyncio.sleep(0)  # apply [0] in flight
        waiting = asyncio.ensure_future(pipeline.offer([1, 2, 3, 4]))
        await asyncio.sleep(0.01)
        blocked = not waiting.done()
        while db.running or not waiting.done() or len(db.acked) < 5:
            db.release.set()
            await asyncio.sleep(0.01)
        await pipeline.drain()
        return db, blocked

    db, blocked = asyncio.run(scenario())
    assert blocked
    assert db.applies == [[0], [1, 2, 3], [4]]
    assert db.acked == [0, 1, 2, 3, 4]


def test_an_apply_that_fails_is_raised_by_the_next_offer_and_its_items_are_not_acked() -> None:
    acked: list[int] = []

    async def fail(_raws: Sequence[RawRecord]) -> None:
        raise RuntimeError("boom (test)")

    async def ack(item: int) -> None:
        acked.append(item)

    async def scenario() -> None:
        pipeline = TakePipeline(fail, ack, lambda i: RawRecord(0, i, b""), 10)
        await pipeline.offer([0])
        await asyncio.sleep(0.01)
        await pipeline.offer([1])

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(scenario())
    assert acked == []


def test_a_stopping_worker_gives_up_an_apply_that_meets_a_database_fault() -> None:
    async def scenario() -> tuple[FakeDatabase, BaseException | None]:
        db = FakeDatabase(failures=1_000)
        processor = BatchProcessor(
            "unused",
            "aggregates",
            metrics=WorkerMetrics(CollectorRegistry()),
            retry_initial_seconds=30,  # a stop must not wait out the backoff
            retry_max_seconds=30,
            connect=db.connect,  # type: ignore[arg-type]
            apply=db.apply,  # type: ignore[arg-type]
        )
        applying = asyncio.ensure_future(processor.apply([_record(0, 10, 0)]))
        while not db.attempts:
            await asyncio.sleep(0.01)
        processor.stop_retrying()
        done, _ = await asyncio.wait([applying], timeout=5)
        return db, (applying.exception() if done else None)

    db, error = asyncio.run(scenario())
    assert isinstance(error, ApplyAbandoned) and error.partition == 0
    assert db.applied == []


def test_a_closed_pipeline_finishes_its_apply_and_starts_no_other() -> None:
    async def scenario() -> SlowApplies:
        db = SlowApplies()
        pipeline = _pipeline(db)
        await pipeline.offer([0])
        await asyncio.sleep(0)  # apply [0] in flight
        await pipeline.offer([1])
        pipeline.close()
        await pipeline.offer([2])
        db.release.set()
        await pipeline.drain()
        return db

    db = asyncio.run(scenario())
    assert db.applies == [[0]] and db.acked == [0]
