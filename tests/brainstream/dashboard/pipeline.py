"""A small real pipeline for the dashboard's tests: produce, the real sink (in a thread), the
real aggregate worker (``brainstream worker``, a subprocess), the dashboard app under uvicorn.

``fold_aggregates`` rebuilds the aggregate tables from the raw table with SQL that follows their
definitions (``schemas/sql/0002_aggregates.sql``), for tests that need aggregates without
running a worker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import uvicorn
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from starlette.applications import Starlette

from brainstream.dashboard import DashboardConfig, create_app
from brainstream.probe import HealthMonitor, Probe
from schemas import Event, to_record
from schemas.config import KafkaSettings, TopicSettings
from schemas.http import serve
from sinks.config import SinkConfig
from sinks.consumer import Sink
from sinks.metrics import SinkMetrics
from tests.fixtures.samples import sample_event

TYPES = ("page_view", "search", "login", "task_created", "file_upload")
WORKER_GROUP = "test-worker"
PROJECTION = "aggregates"
"""The worker's fenced projection (``stream_offsets.consumer_group``), its default."""
REPO = Path(__file__).resolve().parents[3]


def make_events(count: int, users: list[str], *, now: datetime | None = None) -> list[Event]:
    """``count`` events spread over users and types, within the last 50 minutes."""
    now = now or datetime.now(UTC)
    return [
        sample_event(
            TYPES[i % len(TYPES)],
            user_id=users[(i * 7) % len(users)],
            occurred_at=now - timedelta(seconds=(i * 37) % 3000),
        )
        for i in range(count)
    ]


def produce(kafka: KafkaSettings, topic: str, events: list[Event]) -> None:
    producer = Producer({**kafka.librdkafka(), "linger.ms": 5})
    for event in events:
        key, value, headers = to_record(event)
        producer.produce(topic, value=value, key=key, headers=list(headers))
    assert producer.flush(30) == 0


@contextmanager
def running_sink(
    kafka: KafkaSettings, topics: TopicSettings, conninfo: str, group: str, metrics_port: int
) -> Iterator[Sink]:
    """The real raw sink in a thread, with its own /metrics server."""
    config = SinkConfig(group_id=group, batch_max_seconds=0.1, session_timeout_ms=6_000)
    sink = Sink(config, kafka.librdkafka(), topics, conninfo, SinkMetrics(CollectorRegistry()))
    server = serve(sink.metrics.registry, sink.health, metrics_port, host="127.0.0.1")
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,), name="test-sink", daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        stop.set()
        thread.join(30)
        server.shutdown()
        server.server_close()


@contextmanager
def running_worker(
    kafka: KafkaSettings,
    topics: TopicSettings,
    postgres_dsn: str,
    schema: str,
    group: str,
    web_port: int,
    log: Path,
) -> Iterator[subprocess.Popen[bytes]]:
    """``brainstream worker`` (Faust) on ``topics.events`` into ``schema``; SIGTERM at the end."""
    env = {
        **os.environ,
        "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "BRAINSTREAM_POSTGRES_DSN": postgres_dsn,
        "BRAINSTREAM_POSTGRES_SCHEMA": schema,
        "BRAINSTREAM_TOPIC_EVENTS": topics.events,
        "BRAINSTREAM_TOPIC_DLQ": topics.dlq,
        "BRAINSTREAM_TOPIC_ACCEPTED": topics.accepted,
        "BRAINSTREAM_TOPIC_ERASURES": topics.erasures,
        "BRAINSTREAM_WORKER_GROUP_ID": group,
        "BRAINSTREAM_WORKER_WEB_PORT": str(web_port),
        "BRAINSTREAM_WORKER_SESSION_TIMEOUT_SECONDS": "6",
        "BRAINSTREAM_WORKER_HEARTBEAT_INTERVAL_SECONDS": "1",
        "BRAINSTREAM_WORKER_COMMIT_INTERVAL_SECONDS": "1",
        "BRAINSTREAM_WORKER_TAKE_WITHIN_SECONDS": "0.2",
        "BRAINSTREAM_WORKER_LOG_LEVEL": "warning",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "brainstream.cli", "worker"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    except AssertionError as exc:  # a wait timed out: say what the worker said
        tail = log.read_text(errors="replace")[-3000:]
        raise AssertionError(f"{exc}\n--- worker log ({log}) ---\n{tail}") from exc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def fences_caught_up(conninfo: str, topic: str, ends: dict[int, int]) -> bool:
    rows = sql_rows(
        conninfo,
        "SELECT kafka_partition, next_offset FROM stream_offsets"
        " WHERE consumer_group = %(p)s AND topic = %(t)s",
        {"p": PROJECTION, "t": topic},
    )
    fence = {int(p): int(n) for p, n in rows}
    return all(fence.get(p, 0) >= n for p, n in ends.items() if n > 0)


def end_offsets(kafka: KafkaSettings, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({**kafka.librdkafka(), "group.id": unique("ends")})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


_HOURS = ", ".join(
    f"count(*) FILTER (WHERE extract(hour FROM occurred_at AT TIME ZONE 'UTC') = {h})"
    for h in range(24)
)
_FOLD = [
    "DELETE FROM agg_type_buckets",
    "DELETE FROM agg_user_days",
    "INSERT INTO agg_type_buckets (granularity, bucket, event_type, event_count, distinct_users)"
    " SELECT g, date_trunc(g, occurred_at, 'UTC'), event_type, count(*),"
    " CASE WHEN g = 'minute' THEN NULL ELSE count(DISTINCT user_id) END"
    " FROM analytics_events, unnest(ARRAY['minute', 'hour', 'day']) AS g GROUP BY 1, 2, 3",
    "INSERT INTO agg_user_days"
    " SELECT user_id, event_type, (occurred_at AT TIME ZONE 'UTC')::date,"
    f" ARRAY[{_HOURS}]::int4[],"
    " count(*), min(occurred_at), max(occurred_at)"
    " FROM analytics_events GROUP BY 1, 2, 3",
]
_FENCE = (
    "INSERT INTO stream_offsets (consumer_group, topic, kafka_partition, next_offset)"
    " SELECT %(group)s, %(topic)s, kafka_partition, max(kafka_offset) + 1 FROM analytics_events"
    " GROUP BY kafka_partition"
    " ON CONFLICT (consumer_group, topic, kafka_partition)"
    " DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()"
)


def fold_aggregates(conninfo: str, topic: str) -> None:
    """Stand-in for the aggregate worker: aggregates and fence rebuilt from the raw table."""
    with psycopg.connect(conninfo) as conn:
        for statement in _FOLD:
            conn.execute(statement)
        conn.execute(_FENCE, {"group": WORKER_GROUP, "topic": topic})


def raw_count(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM analytics_events").fetchone()
    assert row is not None
    return int(row[0])


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dashboard_app(
    kafka: KafkaSettings,
    topics: TopicSettings,
    conninfo: str,
    groups: tuple[str, ...],
    token: SecretStr | None = None,
) -> Starlette:
    probe = Probe(kafka.librdkafka(), topics, conninfo, groups, timeout=5.0)
    monitor = HealthMonitor(probe, ttl=0.5)
    return create_app(
        DashboardConfig(
            conninfo=conninfo, monitor=monitor, refresh_seconds=1.0, timeline_page=10, token=token
        )
    )


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """``app`` under uvicorn in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-dashboard", daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sql_rows(conninfo: str, query: str, params: dict[str, Any] | None = None) -> list[Any]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(query, params).fetchall()
