"""Lag, rates, verdicts and metric families from plain values (no broker, no database)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from brainstream.dashboard.metrics import families
from brainstream.probe import (
    DatabaseFacts,
    Fence,
    HealthMonitor,
    HealthReport,
    KafkaClients,
    KafkaFacts,
    PartitionLag,
    Thresholds,
    fence_lags,
    lag_rows,
    problems,
    rates,
)

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _report(ends: dict[int, int], committed: dict[int, int | None], dlq: int = 0) -> HealthReport:
    lags = lag_rows("sink", committed, ends, {p: 0 for p in ends})
    return HealthReport(AT, KafkaFacts(ends, lags, dlq), DatabaseFacts(AT, None, []))


def test_lag_is_end_minus_committed_and_never_negative() -> None:
    rows = lag_rows("g", {0: 10, 1: 7}, {0: 15, 1: 5}, {0: 0, 1: 0})
    assert [(r.partition, r.position, r.lag) for r in rows] == [(0, 10, 5), (1, 7, 0)]


def test_a_partition_without_a_commit_lags_by_its_whole_retained_range() -> None:
    rows = lag_rows("g", {0: None}, {0: 120, 1: 30}, {0: 20, 1: 30})
    assert [(r.partition, r.position, r.lag) for r in rows] == [(0, None, 100), (1, None, 0)]


def test_fence_lags_are_per_group_and_marked_as_fences() -> None:
    fences = [Fence("w", 0, 9), Fence("w", 1, 4), Fence("v", 0, 10)]
    rows = fence_lags(fences, {0: 10, 1: 4, 2: 3})
    assert {(r.group, r.partition, r.lag) for r in rows} == {
        ("v", 0, 0),
        ("v", 1, 4),
        ("v", 2, 3),
        ("w", 0, 1),
        ("w", 1, 0),
        ("w", 2, 3),
    }
    assert {r.source for r in rows} == {"fence"}


def test_rates_are_offset_growth_per_second() -> None:
    before = _report({0: 100, 1: 100}, {0: 50, 1: 100})
    after = _report({0: 150, 1: 150}, {0: 150, 1: 150})
    r = rates(before, after, 2.0)
    assert r is not None
    assert r.events_in == 50.0
    assert r.consumed == {"sink": 75.0}
    assert rates(before, HealthReport(AT, None, None, {"kafka": "down"}), 2.0) is None


def test_problems_name_the_component_and_the_thresholds() -> None:
    down = HealthReport(AT, None, None, {"postgres": "unreachable (OperationalError)"})
    assert problems(down, Thresholds()) == ["postgres is down: unreachable (OperationalError)"]
    lagging = _report({0: 500}, {0: 100}, dlq=3)
    assert problems(lagging, Thresholds()) == []
    found = problems(lagging, Thresholds(max_lag=399, max_dlq=2))
    assert found == [
        "group sink partition 0 lags by 400 (more than 399)",
        "the dead-letter topic holds 3 records (more than 2)",
    ]


def test_report_dict_is_json_ready() -> None:
    d = _report({0: 5}, {0: 5}).as_dict()
    assert d["ok"] is True
    assert d["kafka"]["lags"] == [
        {"group": "sink", "partition": 0, "position": 5, "end": 5, "lag": 0, "source": "kafka"}
    ]
    assert d["database"] == {"last_raw_write": AT.isoformat(), "last_aggregate_write": None}


def test_metric_families_expose_lag_by_group_and_partition() -> None:
    report = _report({0: 9, 1: 4}, {0: 2, 1: 4}, dlq=1)
    assert report.kafka is not None
    extra = PartitionLag("worker", 0, 3, 9, 6, "fence")
    report = HealthReport(
        AT, KafkaFacts(report.kafka.end_offsets, [*report.kafka.lags, extra], 1), report.database
    )

    class Fixed(Collector):
        def collect(self) -> Iterable[Metric]:
            return families(report)

    registry = CollectorRegistry()
    registry.register(Fixed())
    text = generate_latest(registry).decode()
    assert 'brainstream_consumer_lag{group="sink",partition="0"} 7.0' in text
    assert 'brainstream_consumer_lag{group="sink",partition="1"} 0.0' in text
    assert 'brainstream_fence_lag{partition="0",projection="worker"} 6.0' in text
    assert "brainstream_topic_events_total 13.0" in text
    assert "brainstream_dlq_records 1.0" in text
    assert 'brainstream_component_up{component="kafka"} 1.0' in text
    assert 'brainstream_last_write_timestamp_seconds{table="raw"} 1.767323045e+09' in text


class FakeProbe:
    """Reports whose topic grows by 100 records per check; the sink commits 50 per check."""

    def __init__(self) -> None:
        self.checks = 0

    def clients(self) -> KafkaClients:
        return KafkaClients({"bootstrap.servers": "127.0.0.1:1"}, 1.0)

    def check(self, clients: KafkaClients | None = None) -> HealthReport:
        self.checks += 1
        return _report({0: 100 * self.checks}, {0: 50 * self.checks})


def test_monitor_reuses_a_report_within_its_ttl_and_derives_rates() -> None:
    now = [0.0]
    probe = FakeProbe()
    monitor = HealthMonitor(probe, ttl=1.0, clock=lambda: now[0])
    first = monitor.current()
    assert first.rates is None
    now[0] = 0.5
    assert monitor.current() is first and probe.checks == 1
    now[0] = 2.0
    second = monitor.current()
    assert probe.checks == 2
    assert second.rates is not None
    assert second.rates.events_in == 50.0 and second.rates.consumed == {"sink": 25.0}
    monitor.close()
