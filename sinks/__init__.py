"""Raw-event sink: Kafka -> Postgres ``analytics_events``, dead letters, retention, erasure."""

from sinks.config import FuturePolicy, RetentionConfig, SinkConfig

__all__ = ["FuturePolicy", "RetentionConfig", "SinkConfig"]
