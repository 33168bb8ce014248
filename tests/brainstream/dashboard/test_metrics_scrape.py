"""``/metrics`` of the dashboard, the sink and the worker scraped during a run: the counters
move, and the lag of both consumer groups and the worker's fence lag return to 0."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.config import TopicSettings
from tests.brainstream.dashboard.pipeline import (
    dashboard_app,
    free_port,
    make_events,
    produce,
    running_sink,
    running_worker,
    serving,
    unique,
    wait_for,
)
from tests.fixtures.services import PgSchema, Services

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
WRITTEN = "brainstream_sink_events_written_total", ()
COUNTED = "brainstream_worker_events_total", (("outcome", "counted"),)


def scrape(url: str) -> Samples:
    try:
        text = httpx.get(f"{url}/metrics", timeout=30).text
    except httpx.TransportError:
        return {}  # not listening yet
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def lag(samples: Samples, name: str, label: str, value: str) -> dict[str, float]:
    return {
        dict(labels)["partition"]: v
        for (metric, labels), v in samples.items()
        if metric == name and dict(labels).get(label) == value
    }


def caught_up(url: str, groups: tuple[str, ...]) -> bool:
    samples = scrape(url)
    lags = [lag(samples, "brainstream_consumer_lag", "group", g) for g in groups]
    lags.append(lag(samples, "brainstream_fence_lag", "projection", "aggregates"))
    return all(len(x) == 3 and set(x.values()) == {0.0} for x in lags)


def test_counters_move_and_lag_returns_to_zero(
    services: Services, topics: TopicSettings, pg_schema: PgSchema, tmp_path: Path
) -> None:
    kafka = services.kafka
    groups = unique("sink"), unique("worker")
    users = [f"user-{i}" for i in range(20)]
    produce(kafka, topics.events, make_events(400, users))
    with serving(dashboard_app(kafka, topics, pg_schema.conninfo, groups)) as dashboard:
        before = scrape(dashboard)
        assert before[("brainstream_topic_events_total", ())] == 400
        assert sum(lag(before, "brainstream_consumer_lag", "group", groups[0]).values()) == 400
        assert before[("brainstream_component_up", (("component", "postgres"),))] == 1
        assert before[("brainstream_pipeline_healthy", ())] == 1

        sink_port, worker_port = free_port(), free_port()
        sink, worker = f"http://127.0.0.1:{sink_port}", f"http://127.0.0.1:{worker_port}"
        with (
            running_sink(kafka, topics, pg_schema.conninfo, groups[0], sink_port),
            running_worker(
                kafka,
                topics,
                services.postgres_dsn,
                pg_schema.name,
                groups[1],
                worker_port,
                tmp_path / "worker.log",
            ),
        ):
            wait_for(lambda: scrape(sink).get(WRITTEN) == 400, 60, "the sink to write 400")
            wait_for(lambda: scrape(worker).get(COUNTED) == 400, 120, "the worker to count 400")
            wait_for(lambda: caught_up(dashboard, groups), 30, "every lag at 0")

            produce(kafka, topics.events, make_events(200, users))
            httpx.get(f"{dashboard}/api/health", timeout=30).raise_for_status()
            wait_for(lambda: scrape(sink).get(WRITTEN) == 600, 60, "the sink to write 600")
            wait_for(lambda: scrape(worker).get(COUNTED) == 600, 60, "the worker to count 600")
            wait_for(lambda: caught_up(dashboard, groups), 30, "every lag at 0 again")
            after, sink_after = scrape(dashboard), scrape(sink)

    assert after[("brainstream_topic_events_total", ())] == 600
    assert sink_after[("brainstream_sink_batches_total", ())] >= 2
    served = "brainstream_dashboard_requests_total", (("route", "health"), ("status", "200"))
    assert served not in before and after[served] == 1
    assert after[("brainstream_last_write_timestamp_seconds", (("table", "aggregates"),))] > 0
