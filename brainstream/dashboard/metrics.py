"""The dashboard process's ``/metrics``: pipeline health as gauges, plus its own requests.

The health gauges are computed at scrape time from the shared :class:`HealthMonitor` (one
report per ``health_ttl_seconds``, however many scrapers and pages poll).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from brainstream.probe import HealthMonitor, HealthReport


class HealthCollector(Collector):
    def __init__(self, monitor: HealthMonitor) -> None:
        self._monitor = monitor

    def describe(self) -> Iterable[Metric]:
        return []  # no check at registration time; families are produced at scrape time

    def collect(self) -> Iterable[Metric]:
        return families(self._monitor.current())


def families(report: HealthReport) -> list[Metric]:
    up = GaugeMetricFamily(
        "brainstream_component_up",
        "1 when the component answered the last check",
        labels=["component"],
    )
    for component in ("kafka", "postgres"):
        up.add_metric([component], 0.0 if component in report.errors else 1.0)
    healthy = GaugeMetricFamily(
        "brainstream_pipeline_healthy", "1 when brainstream status would exit 0"
    )
    healthy.add_metric([], 1.0 if report.ok else 0.0)
    found: list[Metric] = [up, healthy]
    if report.kafka is not None:
        found += _kafka_families(report)
    if report.database is not None:
        last = GaugeMetricFamily(
            "brainstream_last_write_timestamp_seconds",
            "Unix time of the newest write seen (raw: analytics_events, aggregates: offset fences)",
            labels=["table"],
        )
        for table, at in (
            ("raw", report.database.last_raw_write),
            ("aggregates", report.database.last_aggregate_write),
        ):
            if at is not None:
                last.add_metric([table], at.timestamp())
        found.append(last)
    return found


def _kafka_families(report: HealthReport) -> list[Metric]:
    assert report.kafka is not None
    lag = GaugeMetricFamily(
        "brainstream_consumer_lag",
        "End offset minus committed offset of the events topic",
        labels=["group", "partition"],
    )
    fence = GaugeMetricFamily(
        "brainstream_fence_lag",
        "End offset minus the offset fence of a projection (stream_offsets) on the events topic",
        labels=["projection", "partition"],
    )
    for x in report.kafka.lags:
        (lag if x.source == "kafka" else fence).add_metric([x.group, str(x.partition)], x.lag)
    events = CounterMetricFamily(
        "brainstream_topic_events", "Records ever appended to the events topic (sum of end offsets)"
    )
    events.add_metric([], report.kafka.events_total)
    dlq = GaugeMetricFamily("brainstream_dlq_records", "Records held by the dead-letter topic")
    dlq.add_metric([], report.kafka.dlq_records)
    return [lag, fence, events, dlq]


class DashboardMetrics:
    """A registry of the dashboard's own: process, requests and the pipeline's health."""

    def __init__(self, monitor: HealthMonitor) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(HealthCollector(monitor))
        self.requests = Counter(
            "brainstream_dashboard_requests",
            "HTTP requests served by the dashboard",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "brainstream_dashboard_request_seconds",
            "Time to serve a dashboard request",
            ["route"],
            registry=self.registry,
        )
