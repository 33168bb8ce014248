"""Plain configuration models of the sink (the composition root fills them from the env)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from schemas.acceptance import AcceptanceRule
from schemas.settings import Rename, Renamed

SINK_NAME = "brainstream-sink"


class SinkConfig(Renamed):
    """How the raw-event sink consumes, batches, retries and reports (durations in seconds;
    ``_ms`` for the librdkafka properties of that name)."""

    renamed: ClassVar[dict[str, Rename]] = {"switch_interval_s": "switch_interval_seconds"}

    group_id: str = "brainstream-sink"
    instance_id: str | None = None
    """Kafka static membership (``group.instance.id``): a restarted sink takes its partitions
    back at once instead of waiting for a rebalance."""
    name: str = SINK_NAME
    """Stamped on dead letters (``bs.dlq.sink``)."""
    batch_max_records: int = Field(default=20_000, ge=1, le=1_000_000)
    batch_max_seconds: float = Field(default=0.25, gt=0, le=60)
    """A batch is written when it is full or this long after its first record arrived."""
    gc_gen0_threshold: int | None = Field(default=100_000, ge=700)
    """While the sink runs, the cyclic GC's generation-0 threshold (``None``: leave it as is).
    A batch allocates several tracked objects per record that die by reference counting; at
    Python's default (700) the collector traverses each batch over and over, a large share of
    the decoding time; the previous thresholds are restored when the sink stops."""
    switch_interval_seconds: float | None = Field(default=0.001, gt=0, le=0.1)
    """While the sink runs, ``sys.setswitchinterval`` (``None``: leave it; Python's default is
    5 ms). The writer thread gives the GIL up at every socket write of its COPY and then waits
    up to one interval to get it back from the decoding thread; 1 ms halves that wait."""
    acceptance: AcceptanceRule = Field(default_factory=AcceptanceRule)
    """The acceptance rule (:mod:`schemas.acceptance`): a rejected record is dead-lettered, a
    clamped one stored at its record time."""
    retry_initial_seconds: float = Field(default=0.2, gt=0)
    retry_max_seconds: float = Field(default=10.0, gt=0)
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    session_timeout_ms: int = Field(default=45_000, ge=6_000)
    metrics_port: int | None = Field(default=None, ge=0, le=65_535)
    """Serve Prometheus ``/metrics`` and ``/health`` on this port (off when ``None``)."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics server binds (``0.0.0.0`` for every interface, e.g. in a container)."""


class RetentionConfig(Renamed):
    """Retention of the raw table: whole day partitions are dropped, future ones pre-created."""

    renamed: ClassVar[dict[str, Rename]] = {"lock_timeout_ms": ("lock_timeout_seconds", 0.001)}

    days: int = Field(default=90, ge=1)
    days_ahead: int = Field(default=7, ge=0, le=366)
    lock_timeout_seconds: float = Field(default=5.0, ge=0.001)
    """Postgres ``lock_timeout`` of each partition drop and of the expired-row delete."""
