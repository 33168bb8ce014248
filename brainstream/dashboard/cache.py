"""A small time-to-live cache for the costly distinct-user counts of the longer windows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """``get(key, ttl, compute)`` reuses a value computed less than ``ttl`` seconds ago."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, ttl: float, compute: Callable[[], V]) -> V:
        now = self._clock()
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        value = compute()  # outside the lock: a slow query must not block other windows
        with self._lock:
            self._values[key] = (now, value)
        return value
