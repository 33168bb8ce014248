"""Prometheus metrics of a worker (``brainstream_worker_*``), on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.writer import Applied

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "brainstream_worker_events",
            "Accepted events seen, by outcome (counted, below_fence, erased).",
            ["outcome"],
            registry=r,
        )
        self.records = Counter(
            "brainstream_worker_records",
            "Accepted-stream records (sink batches) taken, by outcome (applied, invalid).",
            ["outcome"],
            registry=r,
        )
        self.rows = Counter("brainstream_worker_rows", "Aggregate rows upserted.", registry=r)
        self.batches = Counter(
            "brainstream_worker_batches", "Fenced transactions committed.", registry=r
        )
        self.db_retries = Counter(
            "brainstream_worker_db_retries",
            "Batch transactions retried after a database fault.",
            ["error"],
            registry=r,
        )
        self.new_user_days = Counter(
            "brainstream_worker_new_user_days", "User-day rows created.", registry=r
        )
        self.batch_seconds = Histogram(
            "brainstream_worker_batch_seconds",
            "Decode + fold + fenced transactions of one take of the agent (all its partitions).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.freshness = Histogram(
            "brainstream_worker_freshness_seconds",
            "Accepted record timestamp (sink forwarded) -> its events committed in Postgres.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fence = Gauge(
            "brainstream_worker_fence_offset",
            "Next source offset to apply, per source partition (as committed in Postgres).",
            ["partition"],
            registry=r,
        )
        self.db_up = Gauge(
            "brainstream_worker_db_up", "1 when the last transaction succeeded.", registry=r
        )

    def applied(self, result: Applied) -> None:
        self.batches.inc()
        self.events.labels("counted").inc(result.counted)
        self.events.labels("below_fence").inc(result.below_fence)
        self.events.labels("erased").inc(result.erased)
        self.new_user_days.inc(result.new_user_days)
        self.rows.inc(result.rows)
        self.fence.labels(str(result.partition)).set(result.next_offset)
