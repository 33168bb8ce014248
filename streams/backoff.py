"""Exponential backoff delays (pure), for retrying a batch while Postgres is unavailable."""

from __future__ import annotations

from collections.abc import Iterator


def delays(initial: float, maximum: float, factor: float = 2.0) -> Iterator[float]:
    """``initial, initial*factor, …`` capped at ``maximum``, forever."""
    delay = initial
    while True:
        yield min(delay, maximum)
        delay = min(delay * factor, maximum)
