"""A consumer that reports a fatal error is replaced, not left dead (in-memory broker).

librdkafka reports a static member fenced after a coordinator move (FENCED_INSTANCE_ID) as a
``_FATAL`` message: that client can never be used again. The sink builds a new consumer, the
records of the batches it could not commit are read again, and every record is stored; a
consumer fenced again and again (two live sinks sharing one ``group.instance.id``) ends the
sink after :data:`sinks.consumer.RECREATE_LIMIT` replacements.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message

from eventlog.local import LocalBroker
from schemas.config import TopicSettings
from sinks.config import SinkConfig
from sinks.consumer import RECREATE_LIMIT, ConsumerFenced, Sink
from tests.sinks.conftest import wait_for
from tests.sinks.test_consume_contract import RecordingStore, _events, running

NAMES = TopicSettings(events="m.events", dlq="m.dlq", accepted="m.accepted", erasures="m.e")
FENCED = KafkaError(KafkaError._FATAL, "Static consumer fenced by other consumer with same id")


class FencedAfter:
    """A consumer that, after ``after`` records, reports the fatal error on every call."""

    def __init__(self, inner: Any, after: int) -> None:
        self.inner, self.after, self.closed = inner, after, False

    def poll(self, timeout: float | None = None) -> Message | None:
        if self.after <= 0:
            return Message(error=FENCED)
        msg = self.inner.poll(timeout)
        self.after -= msg is not None
        return msg

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]:
        if self.after <= 0:
            return [Message(error=FENCED)]
        msgs: list[Message] = self.inner.consume(min(num_messages, self.after), timeout)
        self.after -= len(msgs)
        return msgs

    def close(self) -> None:
        self.closed = True
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _sink(broker: LocalBroker, store: RecordingStore, factory: Any) -> Sink:
    config = SinkConfig(
        group_id="g-fenced", instance_id="sink-1", batch_max_records=50, batch_max_seconds=0.05
    )
    return Sink(
        config,
        {},
        NAMES,
        "unused: the store is given",
        consumer_factory=factory,
        producer_factory=broker.producer,
        store=store,
    )


def _broker(records: int) -> LocalBroker:
    broker = LocalBroker()
    for topic, partitions in ((NAMES.events, 3), (NAMES.accepted, 3), (NAMES.dlq, 1)):
        broker.create_topic(topic, partitions)
    for key, value, headers in _events(records):
        broker.produce(NAMES.events, value, key, headers=headers)  # type: ignore[arg-type]
    return broker


def test_a_fenced_consumer_is_replaced_and_every_record_is_stored() -> None:
    broker = _broker(300)
    built: list[FencedAfter] = []

    def factory(conf: dict[str, Any]) -> Any:
        assert conf["group.instance.id"] == "sink-1"  # the replacement rejoins as the same member
        built.append(FencedAfter(broker.consumer(conf), 120 if not built else 10**9))
        return built[-1]

    store = RecordingStore([])
    sink = _sink(broker, store, factory)
    with running(sink):
        wait_for(lambda: sum(broker.committed("g-fenced").values()) == 300, what="all committed")
    assert len(built) == 2 and built[0].closed
    assert {(r.kafka_partition, r.kafka_offset) for r in store.rows} == {
        (p, o) for p in range(3) for o in range(broker.end_offset(NAMES.events, p))
    }
    assert sink.metrics.consumer_recreated._value.get() == 1


def test_a_consumer_fenced_at_every_join_ends_the_sink_after_the_limit() -> None:
    broker = _broker(10)
    built: list[FencedAfter] = []

    def factory(conf: dict[str, Any]) -> Any:
        built.append(FencedAfter(broker.consumer(conf), 0))
        return built[-1]

    sink = _sink(broker, RecordingStore([]), factory)
    with pytest.raises(
        ConsumerFenced, match="another sink run with BRAINSTREAM_SINK_INSTANCE_ID=sink-1"
    ):
        sink.run(threading.Event())
    assert len(built) == RECREATE_LIMIT[0] + 1
    assert sink.metrics.consumer_recreated._value.get() == RECREATE_LIMIT[0]
