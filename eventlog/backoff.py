"""Exponential backoff with jitter, for retrying while Postgres or the broker is away.

The delays are the ``backoff`` library's: ``backoff.expo`` (``initial * 2**n`` seconds, capped at
``maximum``) with ``backoff.full_jitter`` (uniform in ``[0, delay]``), the "Full Jitter" of the
AWS Architecture Blog's "Exponential Backoff And Jitter" (2015): processes that lost the same
server at the same moment do not come back in step. The caller waits (``stop.wait``,
``asyncio.sleep``), so a shutdown can interrupt the wait.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import backoff

Jitter = Callable[[float], float]


def delays(
    initial: float, maximum: float, *, jitter: Jitter | None = backoff.full_jitter
) -> Iterator[float]:
    """Seconds to wait before each retry, forever.

    Args:
        initial: the first delay before jitter (seconds, > 0).
        maximum: the cap of every delay (seconds; an ``initial`` above it starts there).
        jitter: applied to each delay; ``None`` for the plain exponential sequence.

    Raises:
        ValueError: ``initial`` or ``maximum`` is not positive.
    """
    if initial <= 0 or maximum <= 0:
        raise ValueError(f"backoff needs positive delays, got {initial}, {maximum}")
    steps = backoff.expo(base=2, factor=min(initial, maximum), max_value=maximum)
    next(steps)  # the generator is primed for ``send`` first
    for delay in steps:
        yield min(jitter(delay), maximum) if jitter is not None else delay
