"""Every ``BRAINSTREAM_*`` setting of the composition root, read from the environment (and a
``.env`` file in the working directory): one module, one class per prefix.

Each process's model is its plain configuration (``sinks.config``, ``streams.config``,
``sinks.export.config``, ``producers.config``) read under its prefix, so a library user builds
the same configuration in code. One unit convention: durations are ``*_seconds``; ``*_ms`` only
where a librdkafka or Kafka property of that name is meant. Renamed variables still work with a
``DeprecationWarning`` (:mod:`schemas.settings`).
"""

from __future__ import annotations

from functools import cached_property

from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from producers.settings import SdkSettings
from schemas.acceptance import AcceptanceRule, AcceptanceSettings
from schemas.config import KafkaSettings, TopicSettings
from schemas.settings import EnvSettings
from sinks.config import RetentionConfig, SinkConfig
from sinks.export.config import ExportConfig
from streams.config import WorkerConfig

__all__ = [
    "DashboardSettings",
    "ExportSettings",
    "PostgresSettings",
    "RetentionSettings",
    "SdkSettings",
    "Settings",
    "SinkSettings",
    "WorkerSettings",
]


class PostgresSettings(BaseSettings):
    """``BRAINSTREAM_POSTGRES_*``."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_POSTGRES_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    dsn: SecretStr = SecretStr("postgresql://brainstream:brainstream@127.0.0.1:5432/brainstream")
    db_schema: str = Field(default="public", alias="BRAINSTREAM_POSTGRES_SCHEMA")
    """Schema (search_path) holding brainstream's tables; tests use one per test."""

    @property
    def server_dsn(self) -> str:
        """The DSN as configured (secret revealed), without brainstream's schema."""
        return self.dsn.get_secret_value()

    @cached_property
    def conninfo(self) -> str:
        """The DSN with ``search_path`` set to brainstream's schema: what every process uses."""
        return make_conninfo(self.server_dsn, options=f"-c search_path={self.db_schema}")


class Settings(BaseSettings):
    """Everything the CLI composes. Sub-models read their own prefixes."""

    model_config = SettingsConfigDict(env_prefix="BRAINSTREAM_", env_file=".env", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    api_token: SecretStr | None = None
    """``BRAINSTREAM_API_TOKEN``: the bearer token of every endpoint that returns per-user data
    (dashboard user lookup, worker ``/aggregates/users/{id}``, export API). Required to listen
    beyond loopback; see :mod:`schemas.access`."""


class SinkSettings(SinkConfig, EnvSettings):
    """``BRAINSTREAM_SINK_*``: every field of :class:`sinks.config.SinkConfig`, e.g.
    ``BRAINSTREAM_SINK_GROUP_ID``; the acceptance rule from ``BRAINSTREAM_FUTURE_*`` (shared
    with the export)."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_SINK_", env_file=".env", extra="ignore"
    )

    acceptance: AcceptanceRule = Field(default_factory=lambda: AcceptanceSettings().rule())


class RetentionSettings(RetentionConfig, EnvSettings):
    """``BRAINSTREAM_RETENTION_*``: ``_DAYS`` (90), ``_DAYS_AHEAD`` (7),
    ``_LOCK_TIMEOUT_SECONDS`` (5)."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_RETENTION_", env_file=".env", extra="ignore"
    )


class WorkerSettings(WorkerConfig, EnvSettings):
    """``BRAINSTREAM_WORKER_*``: every field of :class:`streams.config.WorkerConfig`, e.g.
    ``BRAINSTREAM_WORKER_GROUP_ID``."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_WORKER_", env_file=".env", extra="ignore"
    )


class ExportSettings(ExportConfig, EnvSettings):
    """``BRAINSTREAM_EXPORT_*``: every field of :class:`sinks.export.config.ExportConfig`, e.g.
    ``BRAINSTREAM_EXPORT_OUTPUT_DIR``; the acceptance rule from ``BRAINSTREAM_FUTURE_*``."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_EXPORT_", env_file=".env", extra="ignore"
    )

    acceptance: AcceptanceRule = Field(default_factory=lambda: AcceptanceSettings().rule())


class DashboardSettings(BaseSettings):
    """Where the dashboard listens, what it watches and when ``brainstream status`` fails."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_DASHBOARD_", env_file=".env", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=0, le=65_535)
    groups: list[str] | None = None
    """Kafka consumer groups of the events topic whose lag is watched (JSON list); unset: the
    sink's and the worker's (``BRAINSTREAM_SINK_GROUP_ID``, ``BRAINSTREAM_WORKER_GROUP_ID``).
    Every projection with an offset fence in ``stream_offsets`` is watched as well."""
    refresh_seconds: float = Field(default=5.0, ge=0.2, le=3_600)
    """How often the page polls its JSON endpoints."""
    health_ttl_seconds: float = Field(default=1.0, ge=0, le=600)
    """A health report is reused for this long (page polls and /metrics scrapes share it)."""
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    """Per check: broker metadata/offset requests and the database connection."""
    max_lag: int | None = Field(default=None, ge=0)
    """``status`` fails when a watched partition lags by more than this (off when unset)."""
    max_dlq: int | None = Field(default=None, ge=0)
    """``status`` fails when the dead-letter topic holds more records than this (off when unset)."""
    distinct_ttl_seconds: dict[str, float] = Field(
        default_factory=lambda: {"1h": 0.0, "24h": 30.0, "7d": 300.0}
    )
    """Per window, how long its distinct-user counts are reused (JSON object): an exact distinct
    count scans one row per user, type and bucket of the window. Event counts are always fresh."""
    timeline_page: int = Field(default=25, ge=1, le=500)
