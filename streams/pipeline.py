"""Batches a stream and applies one batch while the next one is being consumed.

At most one batch is in flight and batches are applied in order, so a partition's fence only
ever moves forward over applied records. Each item is acked only after its batch has been
applied (the fenced transaction committed), so Faust never commits a Kafka offset past
unapplied events. A batch is flushed when full or ``within`` seconds after its first item.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Pipeline(Generic[T]):
    def __init__(
        self,
        apply: Callable[[list[T]], Awaitable[object]],
        ack: Callable[[T], Awaitable[object]],
        *,
        size: int,
        within: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._apply, self._ack = apply, ack
        self._size, self._within, self._clock = size, within, clock
        self._buffer: list[T] = []
        self._since = 0.0
        self._inflight: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()

    async def add(self, item: T) -> None:
        if not self._buffer:
            self._since = self._clock()
        self._buffer.append(item)
        if len(self._buffer) >= self._size:
            await self.flush()

    def due(self) -> bool:
        return bool(self._buffer) and self._clock() - self._since >= self._within

    async def flush(self) -> None:
        """Start applying the buffered items once the previous batch is applied and acked."""
        async with self._lock:
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
            await self._wait()
            self._inflight = asyncio.ensure_future(self._apply_then_ack(batch))

    async def drain(self) -> None:
        """Flush and wait until everything added so far is applied and acked."""
        await self.flush()
        async with self._lock:
            await self._wait()

    async def tick(self) -> None:
        """Flush partial batches on time (run as a task beside the consuming loop)."""
        while True:
            await asyncio.sleep(self._within / 4)
            if self.due():
                await self.flush()

    async def _wait(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _apply_then_ack(self, batch: list[T]) -> None:
        await self._apply(batch)
        for item in batch:
            await self._ack(item)
