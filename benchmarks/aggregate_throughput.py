"""Events/s of the aggregate worker (a Faust agent over the sink's accepted stream) into the
Postgres aggregate tables, against the floor measured in the same run: a plain confluent-kafka
consumer that only decodes the same events (``schemas.decode``) from ``brainstream.events``.

    python benchmarks/aggregate_throughput.py [--quick]

Full: 1M events over 10k users (quick: 100k), 6 partitions, on two topics:

- ``realistic`` (the main figure): events roughly in time order over a span of n / 2,000 s
  (1M events: about 8 minutes of a service's traffic), each up to 5 s late (jitter), 1.5% of them
  1 to 6 hours late;
- ``random3h`` (a second, harder figure): times spread at random over 3 hours, 1% 6 hours late.

Per topic, in one run:

1. ``e2e``: ``brainstream sink`` and ``brainstream worker`` together from the events topic (the
   worker joined first); events/s from the sink's first committed row to the worker's fences
   covering the topic. The sink's forwarding fills the accepted topic, and ``aggregates verify``
   then checks the result (0 differences required). Target: >= 0.35x the floor.
2. ``worker``: a second worker (new group, fresh schema) over that pre-filled accepted topic;
   events/s from its partitions' assignment (its ``/health``) to its fences covering the
   topic. Target: >= 0.5x the floor. Its WAL bytes (``pg_current_wal_lsn`` before and after,
   this cluster serves nothing else here) and the aggregate rows it left, per event.
3. ``peers`` (``benchmarks/peers``: an idiomatic Faust app and Quix Streams) on the random3h
   topic, as measured for issue 12; the worker must be faster than both.
4. ``freshness`` at 5k events/s: produced (delivery report) -> counted (the fence of its
   partition, ``updated_at`` = ``clock_timestamp()`` of the commit, polled every 10 ms), sink
   and worker running. Target: p99 <= 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _harness import drop_schema, fresh_schema, services, write_result
from confluent_kafka import Consumer, Producer

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


def prefill(kafka: KafkaSettings, topics: TopicSettings, n: int, make: Maker) -> None:
    """A fresh events topic of ``n`` events (and an empty accepted topic)."""
    delete_topics(kafka, [topics.events, topics.dlq, topics.accepted, topics.erasures])
    time.sleep(1)
    ensure_topics(kafka, topics)
    for start in range(0, n, 100_000):
        chunk = make(min(100_000, n - start), start)
        produce(kafka, topics.events, [schemas.to_record(e)[:2] for e in chunk])


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


def sink_env(kafka: KafkaSettings, dsn: str, schema: str, topics: TopicSettings) -> dict[str, str]:
    group = f"bench-sink-{uuid.uuid4().hex[:8]}"
    return pipeline_env(kafka, topics, dsn, schema, SINK_GROUP_ID=group)


def start_worker(
    kafka: KafkaSettings, dsn: str, schema: str, topics: TopicSettings, log: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """A worker of a new group, its web server answering; returns it and its web port."""
    env = WorkerEnv(kafka, dsn, schema, topics, f"bench-agg-{uuid.uuid4().hex[:8]}")
    port = free_port()
    proc = env.start(log, BRAINSTREAM_WORKER_WEB_PORT=str(port))
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code < 600:
                return proc, port
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start; see {log}")
        time.sleep(0.2)


def end_to_end(
    kafka: KafkaSettings, dsn: str, topics: TopicSettings, n: int, logs: Path
) -> dict[str, Any]:
    """Sink and worker from the events topic; verify afterwards. Fills the accepted topic."""
    schema, conninfo = fresh_schema(dsn)
    worker, _ = start_worker(kafka, dsn, schema, topics, logs / f"{topics.events}.e2e.worker.log")
    time.sleep(3)  # group join and assignment
    sink = start_sink(sink_env(kafka, dsn, schema, topics), logs / f"{topics.events}.sink.log")
    first_at = 0.0
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while True:
                now = time.perf_counter()
                if not first_at and scalar(conn, "SELECT EXISTS (SELECT FROM analytics_events)"):
                    first_at = now
                if fence_sum(conn, topics.events) >= n:
                    break
                for proc, name in ((sink, "sink"), (worker, "worker")):
                    if proc.poll() is not None:
                        raise RuntimeError(f"the {name} exited with {proc.returncode}; see {logs}")
                time.sleep(0.05)
        with psycopg.connect(conninfo) as conn:
            report = verify(conn)
            rows = scalar(conn, "SELECT count(*) FROM analytics_events")
    finally:
        stop(sink)
        stop(worker)
        drop_schema(dsn, schema)
    return {
        "e2e_events_per_s": n / (now - first_at),
        "e2e_raw_rows": rows,
        "e2e_verify_differences": sum(report.differences.values()),
    }


def worker_only(
    kafka: KafkaSettings, dsn: str, topics: TopicSettings, n: int, logs: Path
) -> dict[str, Any]:
    """A worker of a new group over the pre-filled accepted topic; rows and WAL per event."""
    schema, conninfo = fresh_schema(dsn)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        wal_before = scalar(conn, "SELECT pg_current_wal_lsn()")
    launched = time.perf_counter()
    proc, port = start_worker(kafka, dsn, schema, topics, logs / f"{topics.events}.worker.log")
    try:
        # The clock starts when the group join gave it its partitions (/health says how many):
        # a take can hold most of the topic, so the first fence move comes late.
        while not httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["partitions"]:
            if proc.poll() is not None or time.perf_counter() - launched > 120:
                raise RuntimeError("the worker was not assigned partitions")
            time.sleep(0.01)
        first_at = time.perf_counter()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while True:
                total = fence_sum(conn, topics.events)
                now = time.perf_counter()
                if total >= n:
                    break
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
    finally:
        stop(proc)
        drop_schema(dsn, schema)
    upserted = sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("brainstream_worker_rows_total ")
    )
    return {
        "worker_events_per_s": n / (now - first_at),
        "worker_startup_s": first_at - launched,
        "wal_bytes_per_event": float(wal) / n,
        "rows_upserted_per_event": upserted / n,
        "rows_left_per_event": sum(rows.values()) / n,
        "rows_left": rows,
        "aggregate_bytes_per_event": float(size) / n,
    }


def peers(kafka: KafkaSettings, topic: str, n: int) -> dict[str, Any]:
    from peers import run_peers

    return dict(run_peers(kafka.bootstrap_servers, topic, n))


def freshness(
    kafka: KafkaSettings, dsn: str, rate: int, seconds: int, logs: Path
) -> dict[str, float]:
    """Produce at ``rate`` events/s with sink and worker running; produced -> counted."""
    topics = topic_settings(f"bench.agg.fresh.{uuid.uuid4().hex[:8]}")
    ensure_topics(kafka, topics)
    schema, conninfo = fresh_schema(dsn)
    records = [schemas.to_record(e)[:2] for e in realistic(rate * seconds, seed=99)]
    worker, _ = start_worker(kafka, dsn, schema, topics, logs / "fresh.worker.log")
    sink = start_sink(sink_env(kafka, dsn, schema, topics), logs / "fresh.sink.log")
    observations: dict[int, list[tuple[int, float]]] = {}
    done = threading.Event()
    warm = PARTITIONS * 20
    try:
        produce(kafka, topics.events, records[:warm])  # warm-up: both assigned
        with psycopg.connect(conninfo, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while fence_sum(conn, topics.events) < warm:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the warm-up events were not counted; see {logs}")
                time.sleep(0.1)
        poller = threading.Thread(
            target=_poll_fences, args=(conninfo, topics.events, observations, done)
        )
        poller.start()
        sent = _produce_at(kafka, topics.events, records[warm:], rate)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _all_seen(sent, observations):
            time.sleep(0.1)
        done.set()
        poller.join()
    finally:
        stop(sink)
        stop(worker)
        drop_schema(dsn, schema)
        delete_topics(kafka, [topics.events, topics.dlq, topics.accepted, topics.erasures])
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


def run_dataset(
    kafka: KafkaSettings, dsn: str, name: str, n: int, logs: Path, with_peers: bool
) -> dict[str, Any]:
    topics = topic_settings(f"bench.agg.{name}.{n}")
    prefill(kafka, topics, n, DATASETS[name])
    figures: dict[str, Any] = {
        "floor_decode_only_events_per_s": decode_floor(kafka, topics.events, n)
    }
    try:
        figures |= end_to_end(kafka, dsn, topics, n, logs)
        figures |= worker_only(kafka, dsn, topics, n, logs)
        if with_peers:
            figures |= peers(kafka, topics.events, n)
    finally:
        delete_topics(kafka, [topics.events, topics.dlq, topics.accepted, topics.erasures])
    floor = figures["floor_decode_only_events_per_s"]
    figures["worker_ratio"] = figures["worker_events_per_s"] / floor
    figures["e2e_ratio"] = figures["e2e_events_per_s"] / floor
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k events, 10 s freshness run")
    parser.add_argument("--no-peers", action="store_true", help="skip the peers (slow)")
    parser.add_argument(
        "--dataset", choices=sorted(DATASETS), help="one topic only, no freshness (never meets)"
    )
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    kafka, dsn = services()
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"aggregate-bench-{uuid.uuid4().hex[:6]}"
    logs.mkdir(parents=True)
    figures: dict[str, Any] = {"events": n, "users": USERS, "partitions": PARTITIONS}
    for name in [args.dataset] if args.dataset else DATASETS:
        with_peers = name == "random3h" and not args.no_peers
        for key, value in run_dataset(kafka, dsn, name, n, logs, with_peers).items():
            figures[f"{name}_{key}"] = value
    if args.dataset:  # a development run: one topic's figures, no result file
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()})
        return
    figures |= freshness(kafka, dsn, 5_000, 10 if args.quick else 30, logs)
    ratio, hard = figures["realistic_worker_ratio"], figures["random3h_worker_ratio"]
    peer_rates = {
        p: figures[f"random3h_{p}_events_per_s"]
        for p in ("faust", "quix")
        if f"random3h_{p}_events_per_s" in figures
    }
    # Not run is not ahead: --no-peers never meets.
    ahead = len(peer_rates) == 2 and all(
        figures["random3h_worker_events_per_s"] > r for r in peer_rates.values()
    )
    verified = all(figures[f"{d}_e2e_verify_differences"] == 0 for d in DATASETS)
    meets = (
        min(ratio, hard) >= TARGET
        and min(figures[f"{d}_e2e_ratio"] for d in DATASETS) >= E2E_TARGET
        and figures["freshness_p99_s"] <= FRESHNESS_TARGET_P99_S
        and ahead
        and verified
    )
    result = {
        "name": "aggregate_throughput",
        "ratio": round(ratio, 4),
        "target": TARGET,
        "meets": meets,
        "figures": {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()},
        "quick": args.quick,
        "peers_run": sorted(peer_rates),
    }
    write_result(result)
    peer_text = ", ".join(f"{p} {r:.0f}" for p, r in peer_rates.items()) or "not run"
    print(
        f"aggregate_throughput: worker {figures['realistic_worker_events_per_s']:.0f} ev/s = "
        f"{ratio:.3f}x the decode floor {figures['realistic_floor_decode_only_events_per_s']:.0f} "
        f"(realistic; random3h {hard:.3f}x), target {TARGET}x; e2e "
        f"{figures['realistic_e2e_ratio']:.3f}x / {figures['random3h_e2e_ratio']:.3f}x (target "
        f"{E2E_TARGET}x); peers on random3h: {peer_text} ev/s vs the worker "
        f"{figures['random3h_worker_events_per_s']:.0f}; freshness at "
        f"{figures['freshness_rate_achieved']:.0f} ev/s p99 {figures['freshness_p99_s']:.2f}s "
        f"(target <= {FRESHNESS_TARGET_P99_S}s); WAL {figures['realistic_wal_bytes_per_event']:.0f}"
        f" B/event, {figures['realistic_rows_upserted_per_event']:.3f} rows upserted/event; "
        f"verify 0: {verified}; meets={meets}"
    )


if __name__ == "__main__":
    main()
