"""``BRAINSTREAM_SDK_*``: every :class:`~producers.config.TrackerConfig` field from the
environment (and a ``.env`` file in the working directory), read by ``Tracker.from_env()``.

It lives in ``producers`` so that the light install (``pip install brainstream``, no extras)
reads the same variables as the CLI: one variable, one meaning.
"""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from producers.config import TrackerConfig
from schemas.settings import EnvSettings


class SdkSettings(TrackerConfig, EnvSettings):
    """Every :class:`~producers.config.TrackerConfig` field, e.g. ``BRAINSTREAM_SDK_SPOOL_DIR``;
    ``BRAINSTREAM_SDK_LIBRDKAFKA`` is JSON."""

    model_config = SettingsConfigDict(
        env_prefix="BRAINSTREAM_SDK_", env_file=".env", extra="ignore", frozen=True
    )

    def tracker_config(self, **overrides: object) -> TrackerConfig:
        return TrackerConfig.model_validate({**self.model_dump(), **overrides})
