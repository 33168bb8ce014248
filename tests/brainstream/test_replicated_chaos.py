"""Replicated chaos on `dev up --brokers 3`: events tracked through the SDK while the real sink
and worker run; each broker is SIGKILLed once in turn (the controller included) and
restarted, and one sink and one worker are SIGKILLed in between. Nothing may be lost or
duplicated anywhere, the aggregates must verify, and no consumer may stop.

Sized for CI: ``BRAINSTREAM_CHAOS_EVENTS`` events (default 200,000) at ``RATE`` a second, so
the three bounces happen while the SDK tracks. It prints the time the producer saw a
partition without a leader and the end-to-end p99 (``ingested_at - occurred_at`` of the raw
rows tracked during the bounces); run with ``-s`` to see them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from brainstream import dev
from brainstream.dev import kafka as devkafka
from brainstream.migrate import migrate
from brainstream.topic_admin import ensure_topics
from producers import Tracker, TrackingError
from schemas.config import KafkaSettings, TopicSettings
from streams.reference import verify
from tests.fixtures.services import TEST_DEV_DIR
from tests.sinks.faults import sink_env, start_sink
from tests.streams.helpers import WorkerEnv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = int(os.environ.get("BRAINSTREAM_CHAOS_EVENTS", "200000"))
RATE = 2_500  # events per second: 80 s of tracking at the default size
USERS = 2_000


def _quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def cluster() -> Iterator[dev.DevServices]:
    # Beside the shared test services (pytest's 0700 temp dirs keep Postgres' OS user out).
    root = TEST_DEV_DIR.parent / f"chaos-{uuid.uuid4().hex[:8]}"
    try:
        yield dev.up(root, log=_quiet, brokers=3)
    finally:
        dev.down(root, log=_quiet)
        shutil.rmtree(root, ignore_errors=True)


class LeaderWatch(threading.Thread):
    """Asks the cluster for the events topic's leaders every 100 ms (as the producer's
    metadata refresh would); adds up the time any partition had none."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        super().__init__(name="leader-watch", daemon=True)
        self.admin = AdminClient({**kafka.librdkafka(), "socket.timeout.ms": 1000})
        self.topic, self.stop = topic, threading.Event()
        self.leaderless_s, self.longest_s = 0.0, 0.0

    def run(self) -> None:
        since: float | None = None
        last = time.monotonic()
        while not self.stop.is_set():
            try:
                meta = self.admin.list_topics(self.topic, timeout=1)
                parts = meta.topics[self.topic].partitions.values()
                missing = any(p.leader < 0 for p in parts) or not parts
            except Exception:
                missing = True
            now = time.monotonic()
            if missing:
                self.leaderless_s += now - last
                since = since if since is not None else last
                self.longest_s = max(self.longest_s, now - since)
            else:
                since = None
            last = now
            time.sleep(0.1)


def _track(tracker: Tracker, done: threading.Event) -> None:
    start = time.monotonic()
    sent = 0
    while sent < EVENTS:
        due = min(EVENTS, int((time.monotonic() - start) * RATE) + 1)
        while sent < due:
            tracker.track("page_view", f"user-{sent % USERS}", path=f"/p/{sent}")
            sent += 1
        time.sleep(0.005)
    done.set()


def _full_isr(kafka: KafkaSettings, topic: str, timeout: float = 90) -> None:
    admin = AdminClient(kafka.librdkafka())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parts = admin.list_topics(topic, timeout=5).topics[topic].partitions.values()
        if all(len(p.isrs) == 3 for p in parts):
            return
        time.sleep(0.5)
    raise AssertionError(f"{topic}: the ISR did not grow back to 3 within {timeout} s")


def _sql(conninfo: str, query: str, params: Any = None) -> Any:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(query, params).fetchone()


def test_replicated_chaos_loses_and_duplicates_nothing(
    cluster: dev.DevServices, tmp_path: Path
) -> None:
    kafka = KafkaSettings(bootstrap_servers=cluster.kafka_bootstrap)
    topics = TopicSettings(
        events="chaos.events",
        dlq="chaos.events.dlq",
        accepted="chaos.events.accepted",
        erasures="chaos.erasures",
        events_partitions=6,
    )
    ensure_topics(kafka, topics)
    migrate(cluster.postgres_dsn, "public")
    conninfo = cluster.postgres_dsn
    s_env = sink_env(kafka, topics, conninfo, "public", "chaos-sink")
    workers = WorkerEnv(kafka, conninfo, "public", topics, "chaos-worker", tmp_path)
    w_extra = {
        "BRAINSTREAM_TOPIC_DLQ": topics.dlq,
        "BRAINSTREAM_TOPIC_ACCEPTED": topics.accepted,
        "BRAINSTREAM_TOPIC_ERASURES": topics.erasures,
    }
    sink = start_sink(s_env, tmp_path / "sink.log")
    worker = workers.start(tmp_path / "worker.log", **w_extra)
    procs: list[subprocess.Popen[bytes]] = [sink, worker]
    errors: list[TrackingError] = []
    try:
        tracker = Tracker(
            kafka,
            topic=topics.events,
            source="chaos",
            spool_dir=tmp_path / "spool",
            resend_interval_seconds=0.5,
            on_error=errors.append,
        )
    except BaseException:
        for proc in procs:
            proc.kill()
        raise
    watch = LeaderWatch(kafka, topics.events)
    done = threading.Event()
    producer = threading.Thread(target=_track, args=(tracker, done), daemon=True)
    try:
        watch.start()
        producer.start()
        bounced_at = time.time()
        controllers = []
        for i, node in enumerate(dev.kafka_nodes(cluster.dev_dir)):
            time.sleep(4)
            controllers.append(devkafka.controller_leader(node))
            pid = devkafka.running_pid(node)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            time.sleep(2)
            dev.start_kafka(cluster.dev_dir, log=_quiet, node_id=node.node_id)
            if i == 0:  # a sink dies between two bounces; a new one takes over
                sink.kill()
                sink.wait(30)
                sink = start_sink(s_env, tmp_path / "sink.log")
                procs.append(sink)
            if i == 1:
                worker.kill()
                worker.wait(30)
                worker = workers.start(tmp_path / "worker.log", **w_extra)
                procs.append(worker)
            _full_isr(kafka, topics.events)
        bounced_until = time.time()
        # the controller moves only when it dies, so one of the three kills hit it
        killed = [n.node_id for n in dev.kafka_nodes(cluster.dev_dir)]
        assert any(c == k for c, k in zip(controllers, killed, strict=True)), controllers
        producer.join(600)
        assert done.is_set()
        watch.stop.set()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            stats = tracker.stats()
            if not stats.in_spool and not stats.in_flight:
                break
            time.sleep(0.5)
        stats = tracker.close(30)
        assert stats.tracked == EVENTS
        assert stats.delivered + stats.in_spool == stats.tracked, stats
        assert stats.dropped == 0 and stats.unexplained == 0, stats

        deadline = time.monotonic() + 300
        while _sql(conninfo, "SELECT count(*) FROM analytics_events")[0] < EVENTS:
            assert time.monotonic() < deadline, "the sink did not store every event"
            assert sink.poll() is None, "the sink stopped"
            time.sleep(1)
        count, distinct = _sql(
            conninfo, "SELECT count(*), count(DISTINCT event_id) FROM analytics_events"
        )
        assert count == distinct == EVENTS
        deadline = time.monotonic() + 300
        while True:
            with psycopg.connect(conninfo) as conn:
                report = verify(conn)
            if report.ok:
                break
            assert time.monotonic() < deadline, (report.differences, report.samples)
            assert worker.poll() is None, "the worker stopped"
            time.sleep(2)
        assert sink.poll() is None and worker.poll() is None  # no consumer stopped
        (p99,) = _sql(
            conninfo,
            "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY"
            " extract(epoch FROM ingested_at - occurred_at)) FROM analytics_events"
            " WHERE occurred_at BETWEEN to_timestamp(%s) AND to_timestamp(%s)",
            (bounced_at, bounced_until),
        )
        print(
            f"replicated chaos: {EVENTS} tracked, {stats.delivered} delivered, "
            f"{stats.spooled} spooled and {stats.resent} re-sent on the way; controllers at "
            f"the kills: {controllers}; a partition without leader for {watch.leaderless_s:.1f} s"
            f" in all (longest {watch.longest_s:.1f} s); e2e p99 during the bounces "
            f"{float(p99):.2f} s; {len(errors)} problem reports"
        )
    finally:
        watch.stop.set()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
