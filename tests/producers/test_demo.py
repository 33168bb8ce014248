"""The demo traffic covers every registered type with valid events; the CLI sends it."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

import schemas
from brainstream.cli import app
from brainstream.settings import SdkSettings
from producers.demo import DemoTraffic
from schemas.config import KafkaSettings, TopicSettings
from tests.producers.topic_reader import read_topic
from tests.streams.helpers import free_port


def test_every_registered_type_is_generated_and_valid() -> None:
    traffic = DemoTraffic(schemas.REGISTRY.names(), users=10, rng=random.Random(7))
    assert traffic.skipped == []
    seen: Counter[str] = Counter()
    for _ in range(3000):
        type_name, user_id, props = traffic.next()
        data = {"user_id": user_id, "source": "demo", "properties": props}
        schemas.REGISTRY.build(type_name, data)  # raises if the demo made an invalid event
        seen[type_name] += 1
    assert set(seen) == set(schemas.REGISTRY.names())
    assert seen.most_common(1)[0][0] == "page_view"


def test_sdk_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINSTREAM_SDK_SPOOL_DIR", "/var/spool/app")
    monkeypatch.setenv("BRAINSTREAM_SDK_DELIVERY_TIMEOUT_MS", "9000")
    config = SdkSettings().tracker_config(source="web")
    assert (str(config.spool_dir), config.delivery_timeout_ms, config.source) == (
        "/var/spool/app",
        9000,
        "web",
    )


@pytest.fixture
def cli_env(
    kafka_settings: KafkaSettings,
    topics: TopicSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CLI's environment: the test broker and topic, a spool of the test's own."""
    monkeypatch.setenv("BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("BRAINSTREAM_TOPIC_EVENTS", topics.events)
    monkeypatch.setenv("BRAINSTREAM_SDK_SPOOL_DIR", str(tmp_path))


@pytest.mark.integration
@pytest.mark.usefixtures("cli_env")
def test_produce_command_sends_the_mix(
    kafka_settings: KafkaSettings, topics: TopicSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRAINSTREAM_SDK_PROMETHEUS", "false")
    args = ["produce", "--rate", "400", "--users", "5", "--duration", "2", "--seed", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "unexplained" in result.output
    records = read_topic(kafka_settings, topics.events, 800)
    assert len(records) == 800
    assert {r.event.user_id for r in records} <= {f"user-{i:05d}" for i in range(5)}


@pytest.mark.integration
@pytest.mark.usefixtures("cli_env")
def test_produce_serves_the_sdk_metrics_while_it_runs() -> None:
    port = free_port()
    args = ["produce", "--rate", "200", "--users", "5", "--duration", "5", "--source", "metrics"]
    outcome: dict[str, Result] = {}
    run = threading.Thread(
        target=lambda: outcome.update(
            result=CliRunner().invoke(app, [*args, "--metrics-port", str(port)])
        )
    )
    run.start()
    delivered = 0.0
    while run.is_alive() and not delivered:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            text = ""  # not serving yet
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "brainstream_sdk_delivered_total" and sample.labels == {
                    "source": "metrics"
                }:
                    delivered = sample.value
        time.sleep(0.1)
    run.join(60)
    assert outcome["result"].exit_code == 0, outcome["result"].output
    assert delivered > 0
    with pytest.raises(httpx.HTTPError):  # stopped with the command
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_metrics_port_needs_the_sdk_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINSTREAM_SDK_PROMETHEUS", "false")
    result = CliRunner().invoke(app, ["produce", "--metrics-port", "9999"])
    assert result.exit_code == 2
    assert "BRAINSTREAM_SDK_PROMETHEUS" in result.output
