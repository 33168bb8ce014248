"""``brainstream status`` against a PRIVATE Kafka + Postgres that this module stops and starts
(the shared test instance is never touched)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from confluent_kafka import Producer
from typer.testing import CliRunner

from brainstream import dev
from brainstream.cli import ops
from brainstream.migrate import migrate
from brainstream.topic_admin import ensure_topics
from schemas.config import KafkaSettings, TopicSettings

pytestmark = pytest.mark.integration

TOPICS = TopicSettings(events_partitions=3)


def _quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def private() -> Iterator[dev.DevServices]:
    # Not under pytest's basetemp: a concurrent pytest session re-creates that tree as 0700 (and
    # prunes old runs), and as root Postgres runs as another OS user that must pass through.
    path = Path(tempfile.mkdtemp(prefix="brainstream-status-"))
    path.chmod(0o711)
    try:
        services = dev.up(path, log=_quiet)
        ensure_topics(KafkaSettings(bootstrap_servers=services.kafka_bootstrap), TOPICS)
        migrate(services.postgres_dsn, "public")
        _wait_until_groups_work(services)
        yield services
    finally:
        dev.down(path, log=_quiet)
        shutil.rmtree(path, ignore_errors=True)


def _wait_until_groups_work(services: dev.DevServices) -> None:
    """A fresh broker creates __consumer_offsets on first use; until its coordinators have
    loaded, group offsets are unavailable and status rightly says so."""
    from brainstream.probe import Probe

    kafka = KafkaSettings(bootstrap_servers=services.kafka_bootstrap)
    probe = Probe(kafka.librdkafka(), TOPICS, services.postgres_dsn, ("warm-up",), timeout=5)
    deadline = time.monotonic() + 60
    while (report := probe.check()).errors:
        assert time.monotonic() < deadline, report.errors
        time.sleep(0.5)


@pytest.fixture(scope="module")
def env(private: dev.DevServices) -> dict[str, str]:
    return {
        "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": private.kafka_bootstrap,
        "BRAINSTREAM_POSTGRES_DSN": private.postgres_dsn,
        "BRAINSTREAM_POSTGRES_SCHEMA": "public",
        "BRAINSTREAM_TOPIC_EVENTS": TOPICS.events,
        "BRAINSTREAM_TOPIC_DLQ": TOPICS.dlq,
        "BRAINSTREAM_DASHBOARD_TIMEOUT_SECONDS": "3",
        "BRAINSTREAM_DASHBOARD_GROUPS": '["brainstream-sink"]',
    }


def status(env: dict[str, str], *args: str) -> tuple[int, str]:
    app = typer.Typer()
    ops.register(app)
    app.command("noop", hidden=True)(lambda: None)  # keeps "status" a sub-command
    result = CliRunner().invoke(app, ["status", *args], env=env)
    return result.exit_code, result.output


def test_healthy_pipeline_exits_zero(env: dict[str, str]) -> None:
    code, out = status(env)
    assert code == 0, out
    assert "kafka at 127.0.0.1:" in out and "postgres at 127.0.0.1:" in out
    assert "HEALTHY" in out and "UNHEALTHY" not in out
    assert "brainstream:brainstream@" not in out  # never the password


def test_postgres_down_exits_non_zero_and_says_so(
    private: dev.DevServices, env: dict[str, str]
) -> None:
    dev.stop_postgres(private.dev_dir, log=_quiet)
    try:
        code, out = status(env)
    finally:
        dev.start_postgres(private.dev_dir, log=_quiet)
    assert code == 1
    assert "postgres" in out and "DOWN (unreachable (OperationalError))" in out
    assert "UNHEALTHY: postgres is down" in out
    assert status(env)[0] == 0


def test_kafka_down_exits_non_zero_and_says_so(
    private: dev.DevServices, env: dict[str, str]
) -> None:
    dev.stop_kafka(private.dev_dir)
    try:
        code, out = status(env)
    finally:
        dev.start_kafka(private.dev_dir, log=_quiet)
    assert code == 1
    assert "UNHEALTHY: kafka is down: unreachable" in out
    assert "postgres at" in out and "last raw write: never" in out  # the rest is still checked
    assert status(env)[0] == 0


def test_lag_and_dead_letter_thresholds(private: dev.DevServices, env: dict[str, str]) -> None:
    producer = Producer({"bootstrap.servers": private.kafka_bootstrap})
    for i in range(5):
        producer.produce(TOPICS.events, key=f"u{i}".encode(), value=b"{}")
        producer.produce(TOPICS.dlq, key=b"k", value=b"dead")
    assert producer.flush(30) == 0
    del producer
    assert status(env)[0] == 0  # no thresholds: lag and dead letters are reported, not judged
    code, out = status(env, "--max-lag", "1", "--max-dlq", "4")
    assert code == 1
    assert "group brainstream-sink partition" in out and "(more than 1)" in out
    assert "the dead-letter topic holds 5 records (more than 4)" in out
    code, out = status(env, "--json")
    report = json.loads(out)
    assert report["ok"] is True and report["kafka"]["dlq_records"] == 5
    assert sum(x["lag"] for x in report["kafka"]["lags"]) == report["kafka"]["events_total"] == 5


def test_the_installed_command_is_a_health_check(
    private: dev.DevServices, env: dict[str, str]
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRAINSTREAM_")}
    args = [sys.executable, "-m", "brainstream.cli", "status"]
    ok = subprocess.run(args, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = {**clean, **env, "BRAINSTREAM_POSTGRES_DSN": "postgresql://x@127.0.0.1:1/none"}
    bad = subprocess.run(args, env=wrong, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "postgres is down" in bad.stdout


def test_watched_groups_default_to_the_sink_and_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BRAINSTREAM_SINK_GROUP_ID", "raw-sink")
    monkeypatch.delenv("BRAINSTREAM_WORKER_GROUP_ID", raising=False)
    assert ops.default_groups() == ["raw-sink", "brainstream-aggregates"]
