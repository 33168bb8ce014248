"""Creates brainstream's topics (idempotent) with the shapes ``TopicSettings`` describes."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from schemas.config import KafkaSettings, TopicSettings


def topic_specs(topics: TopicSettings) -> list[NewTopic]:
    rf = -1 if topics.replication_factor is None else topics.replication_factor  # -1: broker's
    retention = {
        "retention.ms": str(topics.events_retention_ms),
        "segment.ms": str(topics.segment_ms),
        "cleanup.policy": "delete",
    }
    return [
        NewTopic(topics.events, topics.events_partitions, rf, config=retention),
        NewTopic(
            topics.dlq, 3, rf, config={**retention, "retention.ms": str(topics.dlq_retention_ms)}
        ),
        # Batch i of source partition p goes to partition p: same count, same retention as the
        # events it describes. Records stay under 1 MB (sinks.forward chunks them).
        NewTopic(topics.accepted, topics.events_partitions, rf, config=retention),
        NewTopic(
            topics.erasures,
            1,
            rf,
            # Compacted: the latest record per user is kept forever, so a replay always knows.
            config={"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        ),
    ]


def ensure_topics(kafka: KafkaSettings, topics: TopicSettings, timeout: float = 30.0) -> list[str]:
    """Create the missing topics; returns the names created by this call."""
    admin = AdminClient(kafka.librdkafka())
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [spec for spec in topic_specs(topics) if spec.topic not in existing]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    return created


def delete_topics(kafka: KafkaSettings, names: list[str], timeout: float = 30.0) -> None:
    admin = AdminClient(kafka.librdkafka())
    for future in admin.delete_topics(names, operation_timeout=timeout).values():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise
