"""The stand-in for librdkafka of a disabled tracker (``Tracker.disabled()``, ``send=False``):
records are kept in memory, every one reported delivered, nothing leaves the process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import schemas
from schemas import Event

Report = Callable[[Any, Any], None]


class MemoryProducer:
    """The part of ``confluent_kafka.Producer`` the tracker uses."""

    def __init__(self, on_delivery: Report) -> None:
        self._on_delivery = on_delivery
        self._lock = threading.Lock()
        self.records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: Report | None = None,
        **_: Any,
    ) -> None:
        assert value is not None
        with self._lock:
            self.records.append((key, value, list(headers or [])))
        (on_delivery or self._on_delivery)(None, None)

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0

    def purge(self) -> None:
        return None

    def list_topics(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __len__(self) -> int:
        return 0

    def events(self) -> list[Event]:
        """What was tracked, decoded as the consumers would decode it."""
        with self._lock:
            records = list(self.records)
        return [schemas.decode(value) for _key, value, _headers in records]
