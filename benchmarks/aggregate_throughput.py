"""Events/s of the aggregate worker (a Faust agent over the sink's accepted stream) into the
Postgres aggregate tables, against the floor measured in the same run: a plain confluent-kafka
consumer that only decodes the same events (``schemas.decode``) from ``brainstream.events``.

    python benchmarks/aggregate_throughput.py [--quick] [--peer-events N] [--no-peers]

Full: 1M events over 10k users (quick: 100k), 6 partitions, on two topics:

- ``realistic`` (the main figure): events roughly in time order over a span of n / 2,000 s
  (1M events: about 8 minutes of a service's traffic), each up to 5 s late (jitter), 1.5% of them
  1 to 6 hours late;
- ``random3h`` (a second, harder figure): times spread at random over 3 hours, 1% 6 hours late.

Per topic, in one run:

1. ``floor``: the decode-only consumer over the whole topic.
2. ``e2e``: ``brainstream sink`` and ``brainstream worker`` together from the events topic (the
   worker joined first); events/s from the sink's group having its partitions assigned (so the
   sink's start-up is excluded, its first batch included) to the worker's fences covering the
   topic. The sink's forwarding fills the accepted topic, and ``aggregates verify``
   then checks the result (0 differences required). Target: >= 0.35x the floor. Where the wall
   time went: when the sink had committed the whole topic (its group's offsets) and the CPU
   seconds of the sink, the worker, Postgres and Kafka over the phase, per event.
3. ``worker``: a second worker (new group, fresh schema) over that pre-filled accepted topic;
   events/s from its partitions' assignment (its ``/health``) to its fences covering the
   topic. Target: >= 0.5x the floor. Its WAL bytes (``pg_current_wal_lsn`` before and after,
   this cluster serves nothing else here) and the aggregate rows it left, per event.
4. ``peers.faust`` and ``peers.quix`` (``benchmarks/peers``: an idiomatic Faust app and Quix
   Streams), on the random3h topic only; the worker must be faster than both. They read the
   first ``--peer-events`` events of the topic (full: 200k, about 3 minutes for the Faust app
   at about 1.2k events/s; quick: all 100k), which the prefill also writes, with the same keys
   and so the same partitions and order, to a topic of their own that holds exactly that
   prefix (a peer counting "the first N" of a longer topic reads past it: its repartitioned
   branch runs ahead of the other). The figures state N (``random3h_peer_events``).

Then ``freshness`` at 5k events/s: produced (delivery report) -> counted (the fence of its
partition, ``updated_at`` = ``clock_timestamp()`` of the commit, polled every 10 ms), sink and
worker running. Target: p99 <= 2 s.

``benchmarks/results/aggregate_throughput.json`` is rewritten after every phase: ``phases``
says which are done, which failed (with the error) and which are pending or still running
(a run that was killed leaves them so), and ``meets`` stays false until every target has been
measured and met. A failing phase (a peer that miscounts, a stalled pipeline: no progress in
:data:`STALL_S` seconds) is recorded and the run goes on with the next one.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _harness import (
    cpu_seconds,
    drop_schema,
    fresh_schema,
    listener_pid,
    machine_cpu_seconds,
    records_on_topic,
    services,
    write_result,
)
from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

import schemas
from brainstream.topic_admin import delete_topics, ensure_topics
from schemas import Event, new_event_id
from schemas.config import KafkaSettings, TopicSettings
from streams.reference import verify
from tests.fixtures.samples import sample_events
from tests.fixtures.services import fill, pipeline_env
from tests.sinks.faults import start_sink
from tests.streams.helpers import WorkerEnv, free_port, make_events, stop

TARGET = 0.5
E2E_TARGET = 0.35
FRESHNESS_TARGET_P99_S = 2.0
PARTITIONS = 6
USERS = 10_000
REALISTIC_RATE = 2_000
"""Events/s of the traffic the realistic topic's timestamps describe."""
PEER_EVENTS = 200_000
"""Events the peers read in a full run (the first ones of the random3h topic)."""
STALL_S = 300.0
"""A phase whose pipeline has not moved for this long fails (and the run goes on)."""

Maker = Callable[[int, int], list[Event]]


def realistic(n: int, seed: int) -> list[Event]:
    """``n`` events in rough time order ending now (see the module docstring)."""
    rnd = random.Random(seed)
    templates = sample_events()
    end = datetime.now(UTC)
    span = n / REALISTIC_RATE
    out = []
    for i in range(n):
        at = end - timedelta(seconds=span * (1 - i / n) + rnd.random() * 5)
        if rnd.random() < 0.015:
            at -= timedelta(hours=1 + 5 * rnd.random())
        out.append(
            rnd.choice(templates).model_copy(
                update={
                    "event_id": new_event_id(),
                    "user_id": f"u{rnd.randrange(USERS)}",
                    "occurred_at": at,
                }
            )
        )
    return out


def random3h(n: int, seed: int) -> list[Event]:
    return make_events(n, USERS, seed=seed, late_fraction=0.01)


DATASETS: dict[str, Maker] = {"realistic": realistic, "random3h": random3h}


def topic_settings(name: str) -> TopicSettings:
    return TopicSettings(
        events=name,
        dlq=f"{name}.dlq",
        accepted=f"{name}.accepted",
        erasures=f"{name}.erasures",
        events_partitions=PARTITIONS,
    )


def produce(kafka: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({**kafka.librdkafka(), "linger.ms": 50, "batch.num.messages": 10_000})
    fill(producer, topic, ((key, value, None) for key, value in records))


def prefix_topic(topics: TopicSettings, n: int) -> str:
    return f"{topics.events}.first{n}"


def prefill(
    kafka: KafkaSettings, topics: TopicSettings, n: int, make: Maker, prefix: int = 0
) -> None:
    """A fresh events topic of ``n`` events (and an empty accepted topic); with ``prefix``, also
    :func:`prefix_topic` holding exactly the first ``prefix`` of them. One idempotent producer
    writes both with the same keys (so the same partitions) in the same order: each partition
    of the prefix topic is a prefix of the events topic's partition."""
    prefix_name = prefix_topic(topics, prefix)
    delete_topics(kafka, [topics.events, topics.dlq, topics.accepted, topics.erasures, prefix_name])
    time.sleep(1)
    ensure_topics(kafka, topics)
    if prefix:
        admin = AdminClient(kafka.librdkafka())
        for future in admin.create_topics([NewTopic(prefix_name, PARTITIONS, 1)]).values():
            future.result(30)
    producer = Producer(
        {
            **kafka.librdkafka(),
            "linger.ms": 50,
            "batch.num.messages": 10_000,
            "enable.idempotence": True,
        }
    )
    for start in range(0, n, 100_000):
        records = [schemas.to_record(e)[:2] for e in make(min(100_000, n - start), start)]
        fill(producer, topics.events, ((key, value, None) for key, value in records))
        head = records[: max(0, prefix - start)]
        fill(producer, prefix_name, ((key, value, None) for key, value in head))
    if prefix:
        held = records_on_topic(kafka.bootstrap_servers, prefix_name)
        if held != prefix:
            raise RuntimeError(f"{prefix_name} holds {held} records, not {prefix}")


def decode_floor(kafka: KafkaSettings, topic: str, n: int) -> float:
    """Events/s of a plain consumer that decodes and validates every record, nothing else."""
    consumer = Consumer(
        {
            **kafka.librdkafka(),
            "group.id": f"bench-floor-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen, started = 0, 0.0
    try:
        while seen < n:
            for msg in consumer.consume(1000, timeout=1.0):
                if msg.error():
                    continue
                if not started:
                    started = time.perf_counter()
                with contextlib.suppress(schemas.InvalidEvent):
                    schemas.decode(msg.value())
                seen += 1
        return seen / (time.perf_counter() - started)
    finally:
        consumer.close()


def fence_sum(conn: psycopg.Connection[Any], topic: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(next_offset), 0) FROM stream_offsets WHERE topic = %s", (topic,)
    ).fetchone()
    return int(row[0]) if row else 0


def scalar(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def sink_env(
    kafka: KafkaSettings, dsn: str, schema: str, topics: TopicSettings, group: str
) -> dict[str, str]:
    return pipeline_env(kafka, topics, dsn, schema, SINK_GROUP_ID=group, **SETTINGS)


SETTINGS: dict[str, str] = {}
"""``--set NAME=VALUE``: extra ``BRAINSTREAM_NAME`` settings of the sink and worker processes
(development runs only: a run with settings writes no result file)."""


def start_worker(
    stack: contextlib.ExitStack,
    kafka: KafkaSettings,
    dsn: str,
    schema: str,
    topics: TopicSettings,
    log: Path,
) -> tuple[subprocess.Popen[bytes], int]:
    """A worker of a new group, its web server answering, stopped when ``stack`` closes;
    returns it and its web port."""
    env = WorkerEnv(kafka, dsn, schema, topics, f"bench-agg-{uuid.uuid4().hex[:8]}")
    port = free_port()
    settings = {f"BRAINSTREAM_{k}": v for k, v in SETTINGS.items()}
    proc = env.start(log, BRAINSTREAM_WORKER_WEB_PORT=str(port), **settings)
    stack.callback(stop, proc)
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code < 600:
                return proc, port
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start; see {log}")
        time.sleep(0.2)


def start_sink_in(
    stack: contextlib.ExitStack,
    kafka: KafkaSettings,
    dsn: str,
    schema: str,
    topics: TopicSettings,
    log: Path,
) -> tuple[subprocess.Popen[bytes], str]:
    """A sink of a new group, stopped when ``stack`` closes; returns it and its group."""
    group = f"bench-sink-{uuid.uuid4().hex[:8]}"
    proc = start_sink(sink_env(kafka, dsn, schema, topics, group), log)
    stack.callback(stop, proc)
    return proc, group


def schema_in(stack: contextlib.ExitStack, dsn: str) -> tuple[str, str]:
    """A fresh schema (:func:`fresh_schema`), dropped when ``stack`` closes."""
    schema, conninfo = fresh_schema(dsn)
    stack.callback(drop_schema, dsn, schema)
    return schema, conninfo


def wait_assigned(
    kafka: KafkaSettings, group: str, proc: subprocess.Popen[bytes], logs: Path
) -> None:
    """Return once ``group`` is stable with every partition assigned (the sink then fetches)."""
    admin = AdminClient(kafka.librdkafka())
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(KafkaException):
            found = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
            assigned = sum(len(m.assignment.topic_partitions) for m in found.members)
            if found.state == ConsumerGroupState.STABLE and assigned >= PARTITIONS:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the sink was not assigned its partitions; see {logs}")
        time.sleep(0.02)


class Stall:
    """Raises ``RuntimeError`` when a progress figure has not moved for :data:`STALL_S`."""

    def __init__(self, what: str) -> None:
        self.what, self.last, self.since = what, -1, time.monotonic()

    def check(self, progress: int, of: int) -> None:
        now = time.monotonic()
        if progress != self.last:
            self.last, self.since = progress, now
        elif now - self.since > STALL_S:
            raise RuntimeError(f"{self.what} stalled at {progress} of {of} for {STALL_S:.0f} s")


class CpuMeter:
    """CPU seconds of the processes a phase runs on: its own subprocesses and the services
    (Postgres: the postmaster and its children, reaped ones included; Kafka: the process that
    listens on the bootstrap port, when it is on this machine), and of the whole ``machine``
    (whatever else ran too: the cores are shared)."""

    def __init__(self, kafka: KafkaSettings, conninfo: str, **procs: subprocess.Popen[bytes]):
        with psycopg.connect(conninfo, autocommit=True) as conn:
            backend = int(scalar(conn, "SELECT pg_backend_pid()"))
            stat = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
        self.pids = {name: proc.pid for name, proc in procs.items()}
        self.pids["postgres"] = int(stat[1])  # the backend's parent: the postmaster
        host, _, port = kafka.bootstrap_servers.split(",")[0].rpartition(":")
        kafka_pid = listener_pid(int(port)) if host in ("127.0.0.1", "localhost") else None
        if kafka_pid is not None:
            self.pids["kafka"] = kafka_pid
        self.restart()

    def restart(self) -> None:
        self.start = self.read()

    def read(self) -> dict[str, float]:
        used = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return used | {"machine": machine_cpu_seconds()}

    def since_start(self) -> dict[str, float]:
        return {name: s - self.start[name] for name, s in self.read().items()}


def end_to_end(
    kafka: KafkaSettings, dsn: str, topics: TopicSettings, n: int, logs: Path
) -> dict[str, Any]:
    """Sink and worker from the events topic; verify afterwards. Fills the accepted topic."""
    with contextlib.ExitStack() as stack:
        schema, conninfo = schema_in(stack, dsn)
        worker, port = start_worker(
            stack, kafka, dsn, schema, topics, logs / f"{topics.events}.e2e.worker.log"
        )
        time.sleep(3)  # group join and assignment
        sink, group = start_sink_in(
            stack, kafka, dsn, schema, topics, logs / f"{topics.events}.sink.log"
        )
        cpu = CpuMeter(kafka, conninfo, sink=sink, worker=worker)
        launched = time.perf_counter()
        wait_assigned(kafka, group, sink, logs)
        first_at = time.perf_counter()  # the sink's start-up (imports, group join) not counted
        cpu.restart()
        watcher = Consumer({**kafka.librdkafka(), "group.id": group})
        stack.callback(watcher.close)
        tps = [TopicPartition(topics.events, p) for p in range(PARTITIONS)]
        first_row = sink_done = 0.0
        stall = Stall("end to end (the worker's fences)")
        with psycopg.connect(conninfo, autocommit=True) as conn:
            polled = 0.0
            while True:
                now = time.perf_counter()
                if not first_row and scalar(conn, "SELECT EXISTS (SELECT FROM analytics_events)"):
                    first_row = now
                if not sink_done and now - polled > 0.25:
                    polled = now
                    done = watcher.committed(tps, timeout=10)
                    if sum(max(0, tp.offset) for tp in done) >= n:
                        sink_done = now
                total = fence_sum(conn, topics.events)
                if total >= n:
                    break
                stall.check(total, n)
                for proc, name in ((sink, "sink"), (worker, "worker")):
                    if proc.poll() is not None:
                        raise RuntimeError(f"the {name} exited with {proc.returncode}; see {logs}")
                time.sleep(0.05)
        used = cpu.since_start()
        upserted = rows_upserted(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        with psycopg.connect(conninfo) as conn:
            report = verify(conn)
            rows = scalar(conn, "SELECT count(*) FROM analytics_events")
    wall = now - first_at
    sink_s = (sink_done or now) - first_at
    return {
        "e2e_events_per_s": n / wall,
        "e2e_seconds": wall,
        "e2e_sink_startup_s": first_at - launched,
        "e2e_first_row_s": first_row - first_at,
        "e2e_sink_seconds": sink_s,
        "e2e_sink_events_per_s": n / sink_s,
        "e2e_worker_behind_sink_s": wall - sink_s,
        "e2e_cpu_us_per_event": {name: 1e6 * s / n for name, s in used.items()},
        "e2e_rows_upserted_per_event": upserted / n,
        "e2e_cpu_cores_busy": (sum(used.values()) - used["machine"]) / wall,
        "e2e_machine_cores_busy": used["machine"] / wall,
        "e2e_raw_rows": rows,
        "e2e_verify_differences": sum(report.differences.values()),
    }


def worker_only(
    kafka: KafkaSettings, dsn: str, topics: TopicSettings, n: int, logs: Path
) -> dict[str, Any]:
    """A worker of a new group over the pre-filled accepted topic; rows and WAL per event."""
    with contextlib.ExitStack() as stack:
        schema, conninfo = schema_in(stack, dsn)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            wal_before = scalar(conn, "SELECT pg_current_wal_lsn()")
        launched = time.perf_counter()
        log = logs / f"{topics.events}.worker.log"
        proc, port = start_worker(stack, kafka, dsn, schema, topics, log)
        # The clock starts when the group join gave it its partitions (/health says how many):
        # a take can hold most of the topic, so the first fence move comes late.
        while not httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["partitions"]:
            if proc.poll() is not None or time.perf_counter() - launched > 120:
                raise RuntimeError("the worker was not assigned partitions")
            time.sleep(0.01)
        first_at = time.perf_counter()
        stall = Stall("the worker's fences")
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while True:
                total = fence_sum(conn, topics.events)
                now = time.perf_counter()
                if total >= n:
                    break
                stall.check(total, n)
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}")
                time.sleep(0.02)
            found = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (wal_before,)
            ).fetchone()
            assert found is not None
            wal = found[0]
            rows = {
                table: scalar(conn, query)
                for table, query in (
                    ("agg_type_buckets", "SELECT count(*) FROM agg_type_buckets"),
                    ("agg_user_days", "SELECT count(*) FROM agg_user_days"),
                )
            }
            size = scalar(
                conn,
                "SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY['agg_type_buckets',"
                " 'agg_user_days']::regclass[]) AS c",
            )
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    upserted = rows_upserted(metrics)
    return {
        "worker_events_per_s": n / (now - first_at),
        "worker_startup_s": first_at - launched,
        "wal_bytes_per_event": float(wal) / n,
        "rows_upserted_per_event": upserted / n,
        "rows_left_per_event": sum(rows.values()) / n,
        "rows_left": rows,
        "aggregate_bytes_per_event": float(size) / n,
    }


def rows_upserted(metrics: str) -> float:
    """``brainstream_worker_rows_total`` of a worker's ``/metrics`` text."""
    return sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("brainstream_worker_rows_total ")
    )


def peer(kafka: KafkaSettings, topic: str, name: str, n: int) -> dict[str, Any]:
    """One peer over ``topic`` (which holds exactly ``n`` events): its events/s and windows."""
    from peers import run_peers

    # the Faust app runs at about 1.2k events/s: a bound that still stops a hung peer
    timeout = max(600.0, n / 300)
    return dict(run_peers(kafka.bootstrap_servers, topic, n, peers=[name], timeout_s=timeout))


def freshness(
    kafka: KafkaSettings, dsn: str, rate: int, seconds: int, logs: Path
) -> dict[str, float]:
    """Produce at ``rate`` events/s with sink and worker running; produced -> counted."""
    topics = topic_settings(f"bench.agg.fresh.{uuid.uuid4().hex[:8]}")
    records = [schemas.to_record(e)[:2] for e in realistic(rate * seconds, seed=99)]
    observations: dict[int, list[tuple[int, float]]] = {}
    done = threading.Event()
    warm = PARTITIONS * 20
    with contextlib.ExitStack() as stack:
        ensure_topics(kafka, topics)
        stack.callback(
            delete_topics, kafka, [topics.events, topics.dlq, topics.accepted, topics.erasures]
        )
        schema, conninfo = schema_in(stack, dsn)
        start_worker(stack, kafka, dsn, schema, topics, logs / "fresh.worker.log")
        start_sink_in(stack, kafka, dsn, schema, topics, logs / "fresh.sink.log")
        produce(kafka, topics.events, records[:warm])  # warm-up: both assigned
        with psycopg.connect(conninfo, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while fence_sum(conn, topics.events) < warm:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the warm-up events were not counted; see {logs}")
                time.sleep(0.1)
        poller = threading.Thread(
            target=_poll_fences, args=(conninfo, topics.events, observations, done), daemon=True
        )
        poller.start()
        stack.callback(poller.join)
        stack.callback(done.set)
        sent = _produce_at(kafka, topics.events, records[warm:], rate)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _all_seen(sent, observations):
            time.sleep(0.1)
    latencies = sorted(_latencies(sent, observations))
    missing = len(sent) - len(latencies)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 100 else [float("nan")] * 99
    return {
        "freshness_rate_target": rate,
        "freshness_rate_achieved": len(sent) / seconds,
        "freshness_p50_s": q[49],
        "freshness_p99_s": q[98] if not missing else float("inf"),
        "freshness_unseen_after_60s": missing,
    }


def _produce_at(
    kafka: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]], rate: int
) -> list[tuple[int, int, float]]:
    sent: list[tuple[int, int, float]] = []
    producer = Producer({**kafka.librdkafka(), "linger.ms": 5})
    started = time.time()
    tick = 0.01
    for i in range(0, len(records), int(rate * tick)):
        wait = started + (i / rate) - time.time()
        if wait > 0:
            time.sleep(wait)
        for key, value in records[i : i + int(rate * tick)]:
            at = time.time()
            producer.produce(
                topic,
                value,
                key,
                on_delivery=lambda err, msg, at=at: (
                    err or sent.append((msg.partition(), msg.offset(), at))
                ),
            )
        producer.poll(0)
    producer.flush(30)
    return sent


def _poll_fences(
    conninfo: str,
    topic: str,
    observations: dict[int, list[tuple[int, float]]],
    done: threading.Event,
) -> None:
    last: dict[int, int] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while not done.is_set():
            rows = conn.execute(
                "SELECT kafka_partition, next_offset, extract(epoch FROM updated_at)::float8 "
                "FROM stream_offsets WHERE topic = %s",
                (topic,),
            ).fetchall()
            for p, nxt, at in rows:
                if last.get(p) != nxt:
                    last[p] = nxt
                    observations.setdefault(p, []).append((nxt, at))
            time.sleep(0.01)


def _all_seen(sent: list[tuple[int, int, float]], obs: dict[int, list[tuple[int, float]]]) -> bool:
    ends: dict[int, int] = {}
    for p, off, _ in sent:
        ends[p] = max(ends.get(p, -1), off)
    return all(obs.get(p) and obs[p][-1][0] > off for p, off in ends.items())


def _latencies(
    sent: list[tuple[int, int, float]], obs: dict[int, list[tuple[int, float]]]
) -> list[float]:
    out = []
    for p, off, at in sent:
        applied = next((t for nxt, t in obs.get(p, []) if nxt > off), None)
        if applied is not None:
            out.append(max(0.0, applied - at))
    return out


class Run:
    """The phases of one run and their figures; the result file is rewritten after each phase.

    ``phases`` maps a phase (``realistic.e2e``, ``freshness``) to ``pending``, ``running``,
    ``done``, ``failed: <error>`` or ``not run: <why>``; ``figures`` holds what the done ones
    measured. A failed phase is recorded and the run goes on."""

    def __init__(self, n: int, peer_events: int, quick: bool, write: bool) -> None:
        self.n, self.quick, self.write = n, quick, write
        self.figures: dict[str, Any] = {"events": n, "users": USERS, "partitions": PARTITIONS}
        self.phases: dict[str, str] = {}
        self.peer_events = peer_events

    def plan(self, names: list[str]) -> None:
        self.phases |= dict.fromkeys(names, "pending")
        self.save()

    def phase(self, name: str, prefix: str, measure: Callable[[], dict[str, Any]]) -> bool:
        """Run ``measure``; its figures are kept under ``prefix``. False when it failed."""
        self.phases[name] = "running"
        self.save()
        started = time.perf_counter()
        try:
            found = measure()
        except Exception as exc:
            traceback.print_exc()
            self.phases[name] = f"failed: {type(exc).__name__}: {exc}"[:600]
            self.save()
            return False
        self.figures |= {f"{prefix}{key}": value for key, value in found.items()}
        self.figures[f"{name.replace('.', '_')}_phase_seconds"] = time.perf_counter() - started
        self.phases[name] = "done"
        self.save()
        return True

    def skip(self, name: str, why: str) -> None:
        self.phases[name] = f"not run: {why}"
        self.save()

    def derive(self) -> None:
        """Ratios of what is measured so far."""
        for d in DATASETS:
            floor = self.figures.get(f"{d}_floor_decode_only_events_per_s")
            for kind in ("worker", "e2e"):
                rate = self.figures.get(f"{d}_{kind}_events_per_s")
                if floor and rate is not None:
                    self.figures[f"{d}_{kind}_ratio"] = rate / floor

    def peer_rates(self) -> dict[str, float]:
        return {
            p: self.figures[f"random3h_{p}_events_per_s"]
            for p in ("faust", "quix")
            if f"random3h_{p}_events_per_s" in self.figures
        }

    def verdicts(self) -> dict[str, bool | None]:
        """Each target: met, missed, or ``None`` while not measured."""
        f = self.figures

        def at_least(key: str, target: float) -> bool | None:
            return None if key not in f else bool(f[key] >= target)

        verdicts: dict[str, bool | None] = {}
        for d in DATASETS:
            verdicts[f"{d}_worker_ratio"] = at_least(f"{d}_worker_ratio", TARGET)
            verdicts[f"{d}_e2e_ratio"] = at_least(f"{d}_e2e_ratio", E2E_TARGET)
            diffs = f.get(f"{d}_e2e_verify_differences")
            verdicts[f"{d}_verify"] = None if diffs is None else diffs == 0
        rates, worker = self.peer_rates(), f.get("random3h_worker_events_per_s")
        for p in ("faust", "quix"):
            ahead = None if p not in rates or worker is None else bool(worker > rates[p])
            verdicts[f"ahead_of_{p}"] = ahead
        p99 = f.get("freshness_p99_s")
        verdicts["freshness_p99"] = None if p99 is None else bool(p99 <= FRESHNESS_TARGET_P99_S)
        return verdicts

    def result(self) -> dict[str, Any]:
        self.derive()
        verdicts = self.verdicts()
        # Not measured is not met: a missing figure or a phase not done never meets.
        complete = all(state == "done" for state in self.phases.values())
        meets = complete and all(v is True for v in verdicts.values())
        ratio = self.figures.get("realistic_worker_ratio")
        return {
            "name": "aggregate_throughput",
            "ratio": round(ratio, 4) if ratio is not None else None,
            "target": TARGET,
            "meets": meets,
            "complete": complete,
            "phases": self.phases,
            "targets_met": verdicts,
            "figures": rounded(self.figures),
            "quick": self.quick,
            "peers_run": sorted(self.peer_rates()),
        }

    def save(self) -> None:
        if self.write:
            write_result(self.result())


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


def dataset_phases(name: str, peer_events: int) -> list[str]:
    phases = [f"{name}.{p}" for p in ("floor", "e2e", "worker")]
    return phases + ([f"{name}.peers.faust", f"{name}.peers.quix"] if peer_events else [])


def run_dataset(
    run: Run, kafka: KafkaSettings, dsn: str, name: str, logs: Path, peer_events: int
) -> None:
    """Every phase of one topic; the peers read a topic of its first ``peer_events`` events
    (0: not run)."""
    n = run.n
    topics = topic_settings(f"bench.agg.{name}.{n}")
    prefix_name = prefix_topic(topics, peer_events)
    phases = dataset_phases(name, peer_events)
    pre = f"{name}_"
    try:
        if not run.phase(
            f"{name}.prefill", pre, lambda: prefill_figures(kafka, topics, n, name, peer_events)
        ):
            for phase in phases:
                run.skip(phase, f"{name}.prefill failed")
            return
        run.phase(
            f"{name}.floor",
            pre,
            lambda: {"floor_decode_only_events_per_s": decode_floor(kafka, topics.events, n)},
        )
        if run.phase(f"{name}.e2e", pre, lambda: end_to_end(kafka, dsn, topics, n, logs)):
            run.phase(f"{name}.worker", pre, lambda: worker_only(kafka, dsn, topics, n, logs))
        else:  # its accepted topic is what the e2e phase's sink forwarded
            run.skip(f"{name}.worker", f"{name}.e2e failed: the accepted topic is incomplete")
        for p in ("faust", "quix") if peer_events else ():
            run.phase(
                f"{name}.peers.{p}",
                pre,
                functools.partial(peer, kafka, prefix_name, p, peer_events),
            )
    finally:
        delete_topics(
            kafka,
            [topics.events, topics.dlq, topics.accepted, topics.erasures]
            + ([prefix_name] if peer_events else []),
        )


def prefill_figures(
    kafka: KafkaSettings, topics: TopicSettings, n: int, name: str, peer_events: int
) -> dict[str, Any]:
    prefill(kafka, topics, n, DATASETS[name], peer_events)
    return {"peer_events": peer_events} if peer_events else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k events, 10 s freshness run")
    parser.add_argument("--no-peers", action="store_true", help="skip the peers (never meets)")
    parser.add_argument(
        "--peer-events",
        type=int,
        help=f"events the peers read: the topic's first N (default {PEER_EVENTS:,}, quick: all)",
    )
    parser.add_argument(
        "--dataset", choices=sorted(DATASETS), help="one topic only, no freshness (no result file)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a BRAINSTREAM_NAME setting of the sink and worker (no result file)",
    )
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    peer_events = 0 if args.no_peers else min(args.peer_events or PEER_EVENTS, n)
    SETTINGS.update(item.split("=", 1) for item in args.set)
    kafka, dsn = services()
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"aggregate-bench-{uuid.uuid4().hex[:6]}"
    logs.mkdir(parents=True)
    print(f"logs: {logs}", file=sys.stderr)
    run = Run(n, peer_events, args.quick, write=not (args.dataset or args.set))
    names = [args.dataset] if args.dataset else list(DATASETS)
    plan = []
    for name in names:
        plan += [f"{name}.prefill", *dataset_phases(name, peer_events if name == "random3h" else 0)]
    run.plan(plan + ([] if args.dataset else ["freshness"]))
    for name in names:
        run_dataset(run, kafka, dsn, name, logs, peer_events if name == "random3h" else 0)
    if not args.dataset:
        run.phase(
            "freshness", "", lambda: freshness(kafka, dsn, 5_000, 10 if args.quick else 30, logs)
        )
    result = run.result()
    print(summary(result))
    if not run.write:
        print(rounded(run.figures))


def summary(result: dict[str, Any]) -> str:
    """The run's one line; a figure not measured reads ``n/a``."""
    f = result["figures"]

    def num(key: str, fmt: str = ".3f") -> str:
        return format(f[key], fmt) if isinstance(f.get(key), int | float) else "n/a"

    peers = ", ".join(f"{p} {num(f'random3h_{p}_events_per_s', '.0f')}" for p in ("faust", "quix"))
    failed = [name for name, state in result["phases"].items() if state != "done"]
    return (
        f"aggregate_throughput: worker {num('realistic_worker_events_per_s', '.0f')} ev/s = "
        f"{num('realistic_worker_ratio')}x the decode floor "
        f"{num('realistic_floor_decode_only_events_per_s', '.0f')} (realistic; random3h "
        f"{num('random3h_worker_ratio')}x), target {TARGET}x; e2e {num('realistic_e2e_ratio')}x"
        f" / {num('random3h_e2e_ratio')}x (target {E2E_TARGET}x); peers on the first "
        f"{num('random3h_peer_events', ',')} random3h events: {peers} ev/s vs the worker "
        f"{num('random3h_worker_events_per_s', '.0f')}; freshness at "
        f"{num('freshness_rate_achieved', '.0f')} ev/s p99 {num('freshness_p99_s', '.2f')}s "
        f"(target <= {FRESHNESS_TARGET_P99_S}s); WAL {num('realistic_wal_bytes_per_event', '.0f')}"
        f" B/event, {num('realistic_rows_upserted_per_event')} rows upserted/event; "
        f"phases not done: {', '.join(failed) or 'none'}; meets={result['meets']}"
    )


if __name__ == "__main__":
    main()
