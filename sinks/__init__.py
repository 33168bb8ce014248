"""Raw-event sink: Kafka -> Postgres ``analytics_events``, dead letters, retention, erasure."""

from sinks.config import RetentionConfig, SinkConfig

__all__ = ["RetentionConfig", "SinkConfig"]
