"""Shaping batches in worker processes, results in submission order (so output is identical).

Decoding and validating every record is the dominant cost of an export; the main process
keeps consuming and writing while ``workers`` processes shape batches. At most
``2 * workers + 1`` batches are in flight, which bounds memory. Workers are spawned (never
forked: librdkafka's threads do not survive a fork) and exit when the export ends or dies.
As with any spawned worker, a script calling the export API must guard its entry point with
``if __name__ == "__main__":`` (the ``brainstream`` command does).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ProcessPoolExecutor

from sinks.export.shaping import Shaped, Shaper, ShapeSpec, Task

_shaper: Shaper | None = None
_ORPHAN_CHECK_SECONDS = 0.5


def _init(spec: ShapeSpec, parent: int) -> None:
    global _shaper
    _shaper = Shaper(spec)
    # Ctrl-C reaches the whole process group: the export (main process) cleans up and stops
    # the workers, which must not die half-way through a batch on their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """A worker whose export died (even by SIGKILL, even before this worker finished starting)
    must not linger: exit once its parent is no longer the export."""
    while os.getppid() == parent:
        time.sleep(_ORPHAN_CHECK_SECONDS)
    os._exit(1)


def _shape(task: Task) -> Shaped:
    assert _shaper is not None, "worker not initialised"
    return _shaper.shape(task)


class ShapePool:
    def __init__(self, spec: ShapeSpec, workers: int) -> None:
        self._workers = workers
        self._local = Shaper(spec) if workers < 1 else None
        self._pool = (
            None
            if workers < 1
            else ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init,
                initargs=(spec, os.getpid()),
            )
        )

    def map(self, tasks: Iterable[Task]) -> Generator[Shaped, None, None]:
        if self._pool is None:
            assert self._local is not None
            yield from map(self._local.shape, tasks)
            return
        pending: deque[Future[Shaped]] = deque()
        for task in tasks:
            pending.append(self._pool.submit(_shape, task))
            if len(pending) >= 2 * self._workers + 1:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
