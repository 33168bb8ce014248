"""``BRAINSTREAM_EXPORT_*``: export and replay settings from the environment."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.acceptance import AcceptanceRule, AcceptanceSettings
from sinks.export.config import ExportConfig


class ExportSettings(ExportConfig, BaseSettings):
    """Every field of :class:`sinks.export.config.ExportConfig`, e.g.
    ``BRAINSTREAM_EXPORT_OUTPUT_DIR`` and ``BRAINSTREAM_EXPORT_PSEUDONYM_KEY``."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_EXPORT_", env_file=".env", extra="ignore"
    )

    acceptance: AcceptanceRule = Field(default_factory=lambda: AcceptanceSettings().rule())
    """The raw sink's acceptance rule, ``BRAINSTREAM_FUTURE_*``."""
