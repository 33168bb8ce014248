"""``BRAINSTREAM_SDK_*``: the producer SDK's settings, read in the composition root."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from producers.config import TrackerConfig


class SdkSettings(TrackerConfig, BaseSettings):
    """Every :class:`~producers.config.TrackerConfig` field, e.g. ``BRAINSTREAM_SDK_SPOOL_DIR``."""

    model_config = SettingsConfigDict(env_prefix="BRAINSTREAM_SDK_", extra="ignore", frozen=True)

    def tracker_config(self, **overrides: object) -> TrackerConfig:
        return TrackerConfig.model_validate({**self.model_dump(), **overrides})
