"""``BRAINSTREAM_SINK_*`` and ``BRAINSTREAM_RETENTION_*``: the sink's settings from the env."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.acceptance import AcceptanceRule, AcceptanceSettings
from sinks.config import RetentionConfig, SinkConfig


class SinkSettings(SinkConfig, BaseSettings):
    """Every field of :class:`sinks.config.SinkConfig`, e.g. ``BRAINSTREAM_SINK_GROUP_ID``; the
    acceptance rule from ``BRAINSTREAM_FUTURE_*`` (shared with the export)."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_SINK_", env_file=".env", extra="ignore"
    )

    acceptance: AcceptanceRule = Field(default_factory=lambda: AcceptanceSettings().rule())


class RetentionSettings(RetentionConfig, BaseSettings):
    """``BRAINSTREAM_RETENTION_DAYS`` (90), ``_DAYS_AHEAD`` (7), ``_LOCK_TIMEOUT_MS`` (5000)."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_RETENTION_", env_file=".env", extra="ignore"
    )
