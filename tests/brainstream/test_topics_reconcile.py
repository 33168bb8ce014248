"""``brainstream topics create`` reconciles existing topics on the real broker: a changed
retention or segment setting is altered, more partitions are refused with the reason, and
``--dry-run`` prints the plan and changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from schemas.config import KafkaSettings, TopicSettings
from tests.fixtures.services import REPO, pipeline_env

pytestmark = pytest.mark.integration


def create(
    kafka: KafkaSettings, topics: TopicSettings, *args: str
) -> subprocess.CompletedProcess[str]:
    env = pipeline_env(
        kafka,
        topics,
        TOPIC_EVENTS_PARTITIONS=topics.events_partitions,
        TOPIC_EVENTS_RETENTION_DAYS=topics.events_retention_days,
        TOPIC_SEGMENT_MS=topics.segment_ms,
    )
    return subprocess.run(
        [sys.executable, "-m", "brainstream.cli", "topics", "create", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def events_config(kafka: KafkaSettings, topic: str) -> dict[str, str]:
    admin = AdminClient(kafka.librdkafka())
    (future,) = admin.describe_configs([ConfigResource("topic", topic)]).values()
    return {k: v.value for k, v in future.result(10).items()}


def test_reconcile_alters_refuses_and_dry_runs(
    kafka_settings: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    assert create(kafka_settings, topics).stdout.strip() == "topics up to date"
    shorter = topics.model_copy(update={"events_retention_days": 30, "segment_ms": 3_600_000})

    dry = create(kafka_settings, shorter, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        f"would alter {topics.events}: retention.ms: {topics.events_retention_ms} -> " in dry.stdout
    )
    assert "segment.ms: 21600000 -> 3600000" in dry.stdout
    assert events_config(kafka_settings, topics.events)["retention.ms"] == str(
        topics.events_retention_ms
    )  # unchanged

    done = create(kafka_settings, shorter)
    assert done.returncode == 0, done.stderr
    config = events_config(kafka_settings, topics.events)
    assert config["retention.ms"] == str(30 * 86_400_000) and config["segment.ms"] == "3600000"
    assert create(kafka_settings, shorter).stdout.strip() == "topics up to date"

    more = shorter.model_copy(update={"events_partitions": topics.events_partitions * 2})
    refused = create(kafka_settings, more)
    assert refused.returncode == 1
    assert f"refuse {topics.events}: partitions 3 -> 6 refused" in refused.stdout
    assert "user" in refused.stdout and "BRAINSTREAM_TOPIC_EVENTS_PARTITIONS" in refused.stdout
    meta = AdminClient(kafka_settings.librdkafka()).list_topics(timeout=10).topics
    assert len(meta[topics.events].partitions) == 3
