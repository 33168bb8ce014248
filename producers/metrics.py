"""``brainstream_sdk_<counter>_total`` for prometheus-client, when it is installed."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from producers.counters import COUNTER_NAMES, TrackerStats

PREFIX = "brainstream_sdk_"


class HasStats(Protocol):
    source: str

    def stats(self) -> TrackerStats: ...


_trackers: weakref.WeakSet[Any] = weakref.WeakSet()
_registered = False
_lock = threading.Lock()


def expose(tracker: HasStats, registry: Any = None) -> bool:
    """Add ``tracker`` to the process-wide collector; False without prometheus-client."""
    global _registered
    try:
        from prometheus_client import REGISTRY
    except ImportError:  # pragma: no cover - optional dependency
        return False
    with _lock:
        _trackers.add(tracker)
        if not _registered:
            (registry or REGISTRY).register(_Collector(lambda: list(_trackers)))
            _registered = True
    return True


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Collector:
    def __init__(self, trackers: Callable[[], list[HasStats]]) -> None:
        self._trackers = trackers

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        totals: dict[tuple[str, ...], float] = {}
        for tracker in self._trackers():
            stats = tracker.stats()
            for name in (*COUNTER_NAMES, "in_flight", "in_spool"):
                if name != "dropped":
                    _add(totals, (name, tracker.source), getattr(stats, name))
            for reason, count in stats.dropped_by_reason.items():
                _add(totals, ("dropped", tracker.source, reason), count)
        for name in COUNTER_NAMES:
            labels = ["source", "reason"] if name == "dropped" else ["source"]
            family = CounterMetricFamily(PREFIX + name, f"Events {name} by the SDK", labels=labels)
            for key, value in totals.items():
                if key[0] == name:
                    family.add_metric(list(key[1:]), value)
            yield family
        for gauge in ("in_flight", "in_spool"):
            family_g = GaugeMetricFamily(PREFIX + gauge, f"Events {gauge} now", labels=["source"])
            for key, value in totals.items():
                if key[0] == gauge:
                    family_g.add_metric(list(key[1:]), value)
            yield family_g


def _add(totals: dict[tuple[str, ...], float], key: tuple[str, ...], value: float) -> None:
    totals[key] = totals.get(key, 0) + value
