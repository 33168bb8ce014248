"""Creates brainstream's topics (idempotent) with the shapes ``TopicSettings`` describes, and
reconciles existing ones (``brainstream topics create``: alters changed configs, refuses more
partitions, ``--dry-run`` prints the plan)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not declared
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
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
        NewTopic(
            topics.events,
            topics.events_partitions,
            rf,
            config={**retention, "message.timestamp.type": topics.events_timestamp_type},
        ),
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


@dataclass(frozen=True)
class TopicChange:
    """One difference between a topic on the cluster and what ``TopicSettings`` describes."""

    topic: str
    kind: Literal["create", "alter", "refuse", "keep"]
    detail: str
    configs: dict[str, str] = field(default_factory=dict)
    """For ``alter``: the settings to set (name -> new value)."""

    def __str__(self) -> str:
        return f"{self.kind} {self.topic}: {self.detail}"


def plan_topics(
    kafka: KafkaSettings, topics: TopicSettings, timeout: float = 30.0
) -> list[TopicChange]:
    """Compare the cluster with :func:`topic_specs`: topics to create, configs to alter, and
    partition counts that cannot be applied. Raises ``KafkaException`` when unreachable."""
    # librdkafka logs each failed connect; an unreachable cluster is one error raised instead
    admin = AdminClient(
        {**kafka.librdkafka(), "socket.timeout.ms": int(timeout * 1000), "log_level": 0}
    )
    existing = admin.list_topics(timeout=timeout).topics
    specs = topic_specs(topics)
    present = [s for s in specs if s.topic in existing]
    current: dict[str, dict[str, str | None]] = {}
    if present:
        resources = [ConfigResource(ResourceType.TOPIC, s.topic) for s in present]
        for resource, future in admin.describe_configs(resources).items():
            current[resource.name] = {k: v.value for k, v in future.result(timeout).items()}
    changes: list[TopicChange] = []
    for spec in specs:
        if spec.topic not in existing:
            detail = f"{spec.num_partitions} partitions, {_configs(spec.config or {})}"
            changes.append(TopicChange(spec.topic, "create", detail))
            continue
        have = len(existing[spec.topic].partitions)
        if spec.num_partitions > have:
            changes.append(
                TopicChange(
                    spec.topic,
                    "refuse",
                    f"partitions {have} -> {spec.num_partitions} refused: the key (user_id) of "
                    "every user would map to another partition, breaking per-user order for "
                    "events in flight. Re-key by creating a new topic and replaying into it "
                    "(see docs/design.md), or keep BRAINSTREAM_TOPIC_EVENTS_PARTITIONS at "
                    f"{have}",
                )
            )
        elif spec.num_partitions < have:
            changes.append(
                TopicChange(
                    spec.topic,
                    "keep",
                    f"has {have} partitions, settings say {spec.num_partitions}: Kafka cannot "
                    "remove partitions; kept",
                )
            )
        wanted = {k: v for k, v in (spec.config or {}).items() if current[spec.topic].get(k) != v}
        if wanted:
            diff = ", ".join(f"{k}: {current[spec.topic].get(k)} -> {v}" for k, v in wanted.items())
            changes.append(TopicChange(spec.topic, "alter", diff, wanted))
    return changes


def apply_topics(
    kafka: KafkaSettings,
    topics: TopicSettings,
    changes: list[TopicChange],
    timeout: float = 30.0,
) -> None:
    """Create and alter what :func:`plan_topics` found (``refuse`` and ``keep`` change nothing)."""
    admin = AdminClient(kafka.librdkafka())
    names = {c.topic for c in changes if c.kind == "create"}
    creating = [s for s in topic_specs(topics) if s.topic in names]
    if creating:
        for future in admin.create_topics(creating, operation_timeout=timeout).values():
            try:
                future.result(timeout)
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            c.topic,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in c.configs.items()
            ],
        )
        for c in changes
        if c.kind == "alter"
    ]
    if resources:
        for future in admin.incremental_alter_configs(resources).values():
            future.result(timeout)


def _configs(config: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(config.items()))
