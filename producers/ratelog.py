"""Logging that never writes one line per event: one line per kind per interval, with counts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def reopen_in_child(self) -> None:
        """After ``fork()``: a lock held by a thread of the parent would never be released."""
        self._lock = threading.Lock()

    def warning(self, kind: str, message: str, count: int = 1) -> bool:
        """Log ``message`` unless ``kind`` was logged within the interval; True if logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + count
                return False
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        suffix = f" (+{suppressed} more since the last report)" if suppressed else ""
        self._logger.warning("%s%s", message, suffix)
        return True


class RateLimitFilter(logging.Filter):
    """A logging filter passing one record per (logger, message prefix) per interval."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.getMessage()[:40])
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._last[key] = now
        return True
