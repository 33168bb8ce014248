"""Progress of a long export: records of the range read so far, with rate and ETA."""

from __future__ import annotations

import sys
import threading
from typing import Protocol

from tqdm import tqdm  # type: ignore[import-untyped]


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, count: int) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


class CountingProgress:
    """Thread-safe counters, for status reports (the HTTP endpoint)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self.done = 0

    def start(self, total: int) -> None:
        with self._lock:
            self.total, self.done = total, 0

    def advance(self, count: int) -> None:
        with self._lock:
            self.done += count

    def close(self) -> None:
        pass


class BarProgress:
    """A tqdm bar on stderr (rate and ETA); silent when stderr is not a terminal."""

    def __init__(self, *, enabled: bool = True, description: str = "export") -> None:
        self._enabled = enabled and sys.stderr.isatty()
        self._description = description
        self._bar: tqdm | None = None

    def start(self, total: int) -> None:
        self._bar = tqdm(
            total=total,
            desc=self._description,
            unit="ev",
            unit_scale=True,
            disable=not self._enabled,
            file=sys.stderr,
            smoothing=0.1,
        )

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
