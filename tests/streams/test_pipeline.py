"""The batching pipeline: order, one batch in flight, acks only after the apply. No broker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.pipeline import Pipeline


class Recorder:
    def __init__(self, fail_on: int | None = None) -> None:
        self.log: list[tuple[str, Any]] = []
        self.running = 0
        self.max_running = 0
        self.fail_on = fail_on

    async def apply(self, batch: list[int]) -> None:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.log.append(("start", tuple(batch)))
        await asyncio.sleep(0.01)
        self.running -= 1
        if self.fail_on in batch:
            raise RuntimeError("boom")
        self.log.append(("applied", tuple(batch)))

    async def ack(self, item: int) -> None:
        self.log.append(("ack", item))


def test_batches_apply_in_order_one_at_a_time_and_ack_after_apply() -> None:
    rec = Recorder()

    async def run() -> None:
        pipe = Pipeline(rec.apply, rec.ack, size=3, within=60)
        for i in range(7):
            await pipe.add(i)
        await pipe.drain()

    asyncio.run(run())
    assert rec.max_running == 1
    assert [e for e in rec.log if e[0] == "applied"] == [
        ("applied", (0, 1, 2)),
        ("applied", (3, 4, 5)),
        ("applied", (6,)),
    ]
    applied_at = {
        item: i for i, (kind, what) in enumerate(rec.log) if kind == "applied" for item in what
    }
    for item in range(7):
        assert rec.log.index(("ack", item)) > applied_at[item]


def test_a_partial_batch_is_flushed_on_time() -> None:
    rec = Recorder()
    now = [0.0]

    async def run() -> None:
        pipe = Pipeline(rec.apply, rec.ack, size=100, within=0.05, clock=lambda: now[0])
        await pipe.add(1)
        assert not pipe.due()
        now[0] = 0.06
        assert pipe.due()
        ticker = asyncio.ensure_future(pipe.tick())
        await asyncio.sleep(0.1)
        ticker.cancel()

    asyncio.run(run())
    assert ("ack", 1) in rec.log


def test_a_failed_apply_acks_nothing_and_surfaces_on_the_next_flush() -> None:
    rec = Recorder(fail_on=1)

    async def run() -> None:
        pipe = Pipeline(rec.apply, rec.ack, size=2, within=60)
        await pipe.add(0)
        await pipe.add(1)  # batch (0, 1) in flight, will fail
        await pipe.add(2)
        with pytest.raises(RuntimeError):
            await pipe.add(3)

    asyncio.run(run())
    assert not [e for e in rec.log if e[0] == "ack"]
    assert ("start", (2, 3)) not in rec.log
