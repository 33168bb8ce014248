"""Prometheus metrics of the sink (``brainstream_sink_*``), on a registry of their own."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class SinkMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events_written = Counter(
            "brainstream_sink_events_written", "Rows inserted into analytics_events", registry=r
        )
        self.duplicates_skipped = Counter(
            "brainstream_sink_duplicates_skipped",
            "Rows skipped by ON CONFLICT (redelivered or replayed events)",
            registry=r,
        )
        self.erased_dropped = Counter(
            "brainstream_sink_erased_dropped", "Events of erased users dropped", registry=r
        )
        self.dlq = Counter(
            "brainstream_sink_dlq", "Records sent to the dead-letter topic", ["stage"], registry=r
        )
        self.clamped = Counter(
            "brainstream_sink_future_clamped",
            "Events whose future occurred_at was clamped to the record time",
            registry=r,
        )
        self.forwarded = Counter(
            "brainstream_sink_events_forwarded",
            "Events forwarded to the accepted stream (stored by their own source offset)",
            registry=r,
        )
        self.forward_seconds = Histogram(
            "brainstream_sink_forward_seconds",
            "Time to produce one batch's accepted records and receive the broker's acks",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=r,
        )
        self.batches = Counter("brainstream_sink_batches", "Batches committed", registry=r)
        self.db_retries = Counter(
            "brainstream_sink_db_retries", "Batch writes retried after a database fault", registry=r
        )
        self.commit_failures = Counter(
            "brainstream_sink_offset_commit_failures",
            "Offset commits refused by the group (rebalance); the records are redelivered",
            registry=r,
        )
        self.consumer_recreated = Counter(
            "brainstream_sink_consumer_recreated",
            "Consumers replaced after a fatal error (fenced static member); records redelivered",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "brainstream_sink_batch_seconds",
            "Decode + write + DLQ flush + offset commit time of one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch_size = Histogram(
            "brainstream_sink_batch_records",
            "Records per batch",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 50000),
            registry=r,
        )
        self.lag = Gauge(
            "brainstream_sink_consumer_lag",
            "High watermark minus committed position",
            ["topic", "partition"],
            registry=r,
        )
        self.last_commit = Gauge(
            "brainstream_sink_last_commit_timestamp_seconds",
            "Unix time of the last committed batch",
            registry=r,
        )
        self.db_up = Gauge(
            "brainstream_sink_database_up", "1 while the last write succeeded", registry=r
        )
