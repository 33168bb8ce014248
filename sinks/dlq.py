"""Dead letters: the original record, untouched, plus headers that say where and why it failed."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from eventlog.clients import producer_conf
from schemas.config import KafkaAccessRefused, access_refused, principal
from schemas.errors import BrainstreamError
from schemas.topics import DLQ_PREFIX
from sinks.records import Rejection, timestamp_ms

SINK_VERSION = "1"


class DeadLetterError(BrainstreamError, RuntimeError):
    """Dead letters could not be delivered; offsets must not move past their records."""

    def __init__(self, undelivered: int) -> None:
        self.undelivered = undelivered
        super().__init__(f"{undelivered} dead letter(s) not acknowledged by the broker")


@dataclass(frozen=True, slots=True)
class DlqContext:
    group: str
    sink: str
    version: str = SINK_VERSION


def dlq_headers(
    rejection: Rejection, ctx: DlqContext, failed_at: datetime
) -> list[tuple[str, bytes]]:
    """Kafka-Connect-style headers; error texts carry field paths and rules, never values."""
    origin = rejection.origin
    errors = [e.as_dict() for e in rejection.errors]
    pairs = {
        "topic": origin.topic() or "",
        "partition": str(origin.partition()),
        "offset": str(origin.offset()),
        "timestamp": str(ts if (ts := timestamp_ms(origin)) is not None else ""),
        "group": ctx.group,
        "stage": rejection.stage,
        "error.class": rejection.error_class,
        "errors": json.dumps(errors, separators=(",", ":")),
        "sink": ctx.sink,
        "version": ctx.version,
        "failed_at": failed_at.isoformat(),
    }
    return [(DLQ_PREFIX + name, value.encode()) for name, value in pairs.items()]


def is_dlq_header(name: str) -> bool:
    return name.startswith(DLQ_PREFIX)


class DeadLetters:
    """Produces rejections to the DLQ topic; ``flush`` raises unless every one was acknowledged."""

    def __init__(
        self,
        kafka_conf: dict[str, Any],
        topic: str,
        ctx: DlqContext,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self._producer = producer_factory(producer_conf(kafka_conf))
        self._topic = topic
        self._ctx = ctx
        self._clock = clock
        self._pending = 0
        self._failed = 0
        self._principal = principal(kafka_conf)
        self._refused: KafkaAccessRefused | None = None

    def send(self, rejection: Rejection) -> None:
        origin = rejection.origin
        original = origin.headers() or []
        headers = list(original.items()) if isinstance(original, dict) else list(original)
        headers += dlq_headers(rejection, self._ctx, self._clock())
        self._pending += 1
        self._producer.produce(
            self._topic, origin.value(), origin.key(), headers=headers, on_delivery=self._delivered
        )
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait up to ``timeout`` seconds for every dead letter to be acknowledged.

        Raises:
            DeadLetterError: some were not delivered (offsets must not move past them).
            KafkaAccessRefused: the cluster refused this principal writing to the DLQ topic.
        """
        self._producer.flush(timeout)
        if self._refused is not None:
            raise self._refused
        undelivered, self._pending, failed = self._pending, 0, self._failed
        self._failed = 0
        if undelivered or failed:
            raise DeadLetterError(undelivered + failed)

    def close(self) -> None:
        self._producer.flush(10.0)

    def _delivered(self, err: Any, _msg: Any) -> None:
        self._pending -= 1
        if err is not None:
            self._failed += 1
            doing = f"writing to topic {self._topic!r}, the dead-letter topic,"
            self._refused = self._refused or access_refused(err, self._principal, doing)
