"""``BRAINSTREAM_DASHBOARD_*``: the dashboard web app and the pipeline health checks."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
