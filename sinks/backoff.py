"""Exponential backoff with a ceiling (pure: the caller waits)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Backoff:
    initial: float
    maximum: float
    factor: float = 2.0
    _next: float = 0.0

    def next(self) -> float:
        delay = self._next or self.initial
        self._next = min(delay * self.factor, self.maximum)
        return min(delay, self.maximum)

    def reset(self) -> None:
        self._next = 0.0
