"""Topics on the real broker, and every event type through it and back, equal."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

import schemas
from brainstream.topic_admin import ensure_topics
from schemas.config import KafkaSettings, TopicSettings
from tests.fixtures.samples import sample_events

pytestmark = pytest.mark.integration


def test_topics_have_the_designed_shape(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    assert ensure_topics(kafka_settings, topics) == []  # idempotent: the fixture made them
    admin = AdminClient(kafka_settings.librdkafka())
    meta = admin.list_topics(timeout=10).topics
    assert len(meta[topics.events].partitions) == topics.events_partitions
    assert len(meta[topics.accepted].partitions) == topics.events_partitions  # source's number
    names = (topics.events, topics.accepted, topics.erasures)
    resources = [ConfigResource("topic", name) for name in names]
    configs = {r.name: f.result(10) for r, f in admin.describe_configs(resources).items()}
    for name in (topics.events, topics.accepted):
        assert int(configs[name]["segment.ms"].value) <= 86_400_000
        assert int(configs[name]["retention.ms"].value) == topics.events_retention_ms
        assert configs[name]["cleanup.policy"].value == "delete"
    assert configs[topics.erasures]["cleanup.policy"].value == "compact"


def test_every_event_type_round_trips_through_the_broker(
    kafka_settings: KafkaSettings, topics: TopicSettings
) -> None:
    sent = {e.event_id: e for e in sample_events()}
    producer = Producer({**kafka_settings.librdkafka(), "enable.idempotence": True})
    for event in sent.values():
        key, value, headers = schemas.to_record(event)
        producer.produce(topics.events, value=value, key=key, headers=headers)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            **kafka_settings.librdkafka(),
            "group.id": f"roundtrip-{topics.events}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topics.events])
    received: dict[object, schemas.Event] = {}
    try:
        for _ in range(60):
            for msg in consumer.consume(num_messages=100, timeout=1.0):
                assert msg.error() is None
                event = schemas.decode(msg.value())
                assert msg.key() == event.user_id.encode()
                assert dict(msg.headers())[schemas.topics.H_TYPE] == event.type.encode()
                received[event.event_id] = event
            if len(received) == len(sent):
                break
    finally:
        consumer.close()
    assert received == sent
