"""Thread-safe monotonic counters and the snapshot the tracker exposes."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class Counter:
    """``next()`` on an ``itertools.count`` is atomic under the GIL and costs ~20 ns."""

    __slots__ = ("_count", "inc")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.inc: Callable[[], object] = self._count.__next__
        """Add one."""

    def add(self, n: int) -> None:
        deque(itertools.islice(self._count, n), maxlen=0)

    @property
    def value(self) -> int:
        return int(repr(self._count)[6:-1])


COUNTER_NAMES = (
    "tracked",
    "delivered",
    "invalid",
    "spooled",
    "resent",
    "recovered",
    "dropped",
    "filtered",
)
"""The counters of :class:`TrackerStats`, each exported as ``brainstream_sdk_<name>_total``."""


@dataclass(frozen=True)
class TrackerStats:
    """A snapshot. ``unexplained`` is 0 when every event is accounted for."""

    tracked: int
    """Valid events accepted by ``track()``."""
    delivered: int
    """Acknowledged by the broker (``acks=all``)."""
    invalid: int
    """Rejected by validation (never sent)."""
    spooled: int
    """Writes to the disk spool (an event may be spooled more than once)."""
    resent: int
    """Events re-produced from a spool."""
    recovered: int
    """Events taken over from the spool of a process that is gone."""
    dropped: int
    """Lost with a reported reason (see ``dropped_by_reason``)."""
    in_flight: int
    """Handed to librdkafka, no delivery report yet."""
    in_spool: int
    """Waiting in this process's spool files."""
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    filtered: int = 0
    """Not tracked on purpose: sampled out, or dropped by ``before_send`` (never validated)."""

    @property
    def unexplained(self) -> int:
        """``tracked + recovered - (delivered + dropped + in_spool + in_flight)``."""
        accounted = self.delivered + self.dropped + self.in_spool + self.in_flight
        return self.tracked + self.recovered - accounted

    def as_dict(self) -> dict[str, object]:
        return {
            **{name: getattr(self, name) for name in COUNTER_NAMES},
            "in_flight": self.in_flight,
            "in_spool": self.in_spool,
            "dropped_by_reason": dict(self.dropped_by_reason),
            "unexplained": self.unexplained,
        }
