"""Read back what the SDK published: every record of a topic, from the beginning."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError

import schemas
from schemas import Event
from schemas.config import KafkaSettings


@dataclass(frozen=True)
class Published:
    event: Event
    key: bytes | None
    headers: dict[str, str | bytes | None]

    def prop(self, name: str) -> Any:
        """A property of the event, whatever its type."""
        return getattr(self.event.properties, name)


def read_topic(
    kafka: KafkaSettings, topic: str, expect: int, timeout: float = 60.0, idle: float = 3.0
) -> list[Published]:
    """Consume until ``expect`` records arrived and nothing more came for ``idle`` s."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    out: list[Published] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, 0.5)
            for msg in batch:
                err = msg.error()
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    continue
                event = schemas.decode(msg.value())
                out.append(Published(event, msg.key(), dict(msg.headers() or [])))
            if batch:
                last = time.monotonic()
            elif len(out) >= expect and time.monotonic() - last >= idle:
                break
    finally:
        consumer.close()
    return out


def counts_by_id(records: list[Published]) -> Counter[str]:
    return Counter(str(r.event.event_id) for r in records)
