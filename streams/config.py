"""The worker's plain configuration (``brainstream/settings.py`` reads it from the env)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from schemas.settings import Rename, Renamed


class WorkerConfig(Renamed):
    """How a worker consumes, batches, fences and retries (durations in seconds)."""

    renamed: ClassVar[dict[str, Rename]] = {
        "take_within_s": "take_within_seconds",
        "commit_interval_s": "commit_interval_seconds",
        "session_timeout_s": "session_timeout_seconds",
        "heartbeat_interval_s": "heartbeat_interval_seconds",
        "retry_initial_s": "retry_initial_seconds",
        "retry_max_s": "retry_max_seconds",
    }

    group_id: str = "brainstream-aggregates"
    """Kafka consumer group (the Faust app id). Changing it replays; the fences stay valid."""
    projection: str = "aggregates"
    """Name of the fenced projection (``stream_offsets.consumer_group``): not the Kafka group, so
    a new consumer group or an offset reset never counts an event twice."""
    take_max: int = Field(default=256, ge=1, le=10_000)
    """Accepted records (sink batches, up to thousands of events each) applied at once at most;
    their source partitions are applied concurrently, each in one transaction. Takes that
    arrive while an apply runs are merged into the next apply, up to this many records."""
    take_within_seconds: float = Field(default=0.1, gt=0, le=60)
    """A partial take is handed over after this many seconds (freshness: the sink's batch
    interval plus this plus one transaction; while an apply runs, takes are merged, so a short
    interval does not make the transactions smaller under backlog)."""
    max_fetch_bytes: int = Field(default=8 * 1024 * 1024, ge=1024 * 1024)
    """Largest fetch per partition (an accepted record can approach the broker's 1 MB limit)."""
    commit_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often Faust commits the acked offsets (progress only: the fences are the truth)."""
    apply_lanes: int = Field(default=4, ge=1, le=64)
    """Database connections applying a take's source partitions concurrently (each lane takes
    the next partition, largest first): Postgres then uses more than one core. Shared
    type-bucket rows are locked in key order, so concurrent lanes (like concurrent workers)
    cannot deadlock each other."""
    gc_gen0_threshold: int | None = Field(default=100_000, ge=700)
    """While the worker runs, the cyclic GC's generation-0 threshold (Python's default: 700;
    ``None`` from code leaves it as is).
    A take decodes and folds thousands of events into tracked objects that die by reference
    counting; at Python's default (700) the collector traverses the worker's live heap (Faust's
    included) over and over (a profile of 100k events: decode and fold 0.79 s at the default,
    0.16 s at 100,000)."""
    session_timeout_seconds: float = Field(default=10.0, ge=6, le=300)
    heartbeat_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    auto_offset_reset: str = Field(default="earliest", pattern="^(earliest|latest)$")
    web_enabled: bool = True
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    """Faust web server: ``/metrics``, ``/health``, ``/aggregates/...``."""
    db_application_name: str = "brainstream-worker"
    """``application_name`` of the worker's Postgres session (visible in pg_stat_activity)."""
    retry_initial_seconds: float = Field(default=0.2, gt=0)
    retry_max_seconds: float = Field(default=10.0, gt=0)
    """Backoff bounds while Postgres is unreachable (the batch is retried, never dropped)."""
    log_level: str = "info"
    data_dir: str | None = None
    """Parent of Faust's per-group data dir (it keeps no tables there).
    Default: ``$TMP/brainstream-worker``."""
