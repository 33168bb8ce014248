"""``BRAINSTREAM_WORKER_*``: the aggregate worker's settings from the env."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.config import WorkerConfig


class WorkerSettings(WorkerConfig, BaseSettings):
    """Every field of :class:`streams.config.WorkerConfig`, e.g. ``BRAINSTREAM_WORKER_GROUP_ID``."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_WORKER_", env_file=".env", extra="ignore"
    )
