"""Settings: one BRAINSTREAM_* variable means the same thing everywhere."""

from __future__ import annotations

import pytest

from brainstream.settings import Settings
from schemas.config import KafkaSettings


def test_env_variables_feed_every_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("BRAINSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BRAINSTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("BRAINSTREAM_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("BRAINSTREAM_KAFKA_SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("BRAINSTREAM_KAFKA_EXTRA", '{"socket.keepalive.enable": true}')
    monkeypatch.setenv("BRAINSTREAM_POSTGRES_DSN", "postgresql://u:pw@db:5432/x")
    monkeypatch.setenv("BRAINSTREAM_POSTGRES_SCHEMA", "analytics")
    monkeypatch.setenv("BRAINSTREAM_TOPIC_EVENTS_PARTITIONS", "24")

    settings = Settings()
    conf = settings.kafka.librdkafka()
    assert conf["bootstrap.servers"] == "k1:9092,k2:9092"
    assert conf["sasl.password"] == "s3cret"
    assert conf["socket.keepalive.enable"] is True
    assert settings.postgres.server_dsn == "postgresql://u:pw@db:5432/x"
    # every process connects with brainstream's schema on its search_path
    assert "search_path=analytics" in settings.postgres.conninfo
    assert settings.postgres.db_schema == "analytics"
    assert settings.topics.events_partitions == 24
    # the SDK reads the very same variables on its own
    assert KafkaSettings().librdkafka() == conf
    # secrets never show in reprs or logs
    assert "s3cret" not in repr(settings) and "pw@" not in repr(settings)


def test_segment_ms_is_bounded_by_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINSTREAM_TOPIC_SEGMENT_MS", str(2 * 86_400_000))
    with pytest.raises(ValueError, match="segment_ms"):
        Settings()
