"""``/metrics`` scraped during a run: counters move and the lag returns to 0."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.config import KafkaSettings, TopicSettings
from tests.brainstream.dashboard.pipeline import (
    dashboard_app,
    free_port,
    make_events,
    produce,
    running_sink,
    serving,
    unique,
    wait_for,
)
from tests.fixtures.services import PgSchema

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def lag(samples: Samples, group: str) -> dict[str, float]:
    return {
        dict(labels)["partition"]: value
        for (name, labels), value in samples.items()
        if name == "brainstream_consumer_lag" and dict(labels).get("group") == group
    }


def test_counters_move_and_lag_returns_to_zero(
    kafka_settings: KafkaSettings, topics: TopicSettings, pg_schema: PgSchema
) -> None:
    group = unique("sink")
    users = [f"user-{i}" for i in range(20)]
    produce(kafka_settings, topics.events, make_events(400, users))
    app = dashboard_app(kafka_settings, topics, pg_schema.conninfo, (group,))
    with serving(app) as dashboard:
        before = scrape(dashboard)
        assert before[("brainstream_topic_events_total", ())] == 400
        assert sum(lag(before, group).values()) == 400  # nothing consumed yet
        assert before[("brainstream_component_up", (("component", "postgres"),))] == 1

        port = free_port()
        sink_url = f"http://127.0.0.1:{port}"
        with running_sink(kafka_settings, topics, pg_schema.conninfo, group, port):
            written = "brainstream_sink_events_written_total", ()
            wait_for(lambda: scrape(sink_url).get(written) == 400, 60, "the sink to write 400")
            wait_for(lambda: set(lag(scrape(dashboard), group).values()) == {0.0}, 30, "lag 0")

            produce(kafka_settings, topics.events, make_events(200, users))
            httpx.get(f"{dashboard}/api/health", timeout=30).raise_for_status()
            wait_for(lambda: scrape(sink_url).get(written) == 600, 60, "the sink to write 600")
            wait_for(lambda: set(lag(scrape(dashboard), group).values()) == {0.0}, 30, "lag 0")
            after = scrape(dashboard)
            sink = scrape(sink_url)

    assert after[("brainstream_topic_events_total", ())] == 600
    assert len(lag(after, group)) == 3
    assert sink[("brainstream_sink_batches_total", ())] >= 2
    served = "brainstream_dashboard_requests_total", (("route", "health"), ("status", "200"))
    assert served not in before and after[served] == 1
    assert after[("brainstream_pipeline_healthy", ())] == 1
