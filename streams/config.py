"""The worker's plain configuration (``brainstream/settings_worker.py`` reads it from the env)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from streams.records import FuturePolicy


class WorkerConfig(BaseModel):
    """How a worker consumes, batches, fences and retries."""

    group_id: str = "brainstream-aggregates"
    """Kafka consumer group (the Faust app id). Changing it replays; the fences stay valid."""
    projection: str = "aggregates"
    """Name of the fenced projection (``stream_offsets.consumer_group``): not the Kafka group, so
    a new consumer group or an offset reset never counts an event twice."""
    batch_size: int = Field(default=5000, ge=1, le=1_000_000)
    apply_lanes: int = Field(default=6, ge=1, le=64)
    """Database connections applying a batch's partitions concurrently (partition p on lane
    p % lanes): Postgres then uses more than one core. Shared type-bucket rows are locked in
    key order, so concurrent lanes (like concurrent workers) cannot deadlock each other."""
    batch_within_s: float = Field(default=0.5, gt=0, le=60)
    """A partial batch is applied after this many seconds."""
    session_timeout_s: float = Field(default=10.0, ge=6, le=300)
    heartbeat_interval_s: float = Field(default=2.0, gt=0, le=60)
    auto_offset_reset: str = Field(default="earliest", pattern="^(earliest|latest)$")
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    """Faust web server: ``/metrics``, ``/health``, ``/aggregates/...``."""
    db_application_name: str = "brainstream-worker"
    """``application_name`` of the worker's Postgres session (visible in pg_stat_activity)."""
    retry_initial_s: float = Field(default=0.2, gt=0)
    retry_max_s: float = Field(default=10.0, gt=0)
    """Backoff bounds while Postgres is unreachable (the batch is retried, never dropped)."""
    log_level: str = "info"
    data_dir: str | None = None
    """Parent of Faust's per-group data dir (it keeps no tables there).
    Default: ``$TMP/brainstream-worker``."""
    future_skew_seconds: float = Field(default=3600.0, ge=0)
    future_policy: FuturePolicy = "clamp"
    """Must match the raw sink's ``future_skew_seconds``/``future_policy`` (``dlq`` there is
    ``skip`` here) so aggregates and ``analytics_events`` agree on far-future events."""
