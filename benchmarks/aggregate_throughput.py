"""Events/s through one aggregate worker (Faust) into the Postgres aggregate tables, from a
pre-filled topic, against the floor measured in the same run: a plain confluent-kafka consumer
that only decodes the same events (``schemas.decode``). Also the freshness at 5k events/s: the
time from producing an event to the commit of the fenced transaction that counted it.

    python benchmarks/aggregate_throughput.py [--quick]

Full: 1M events over 10k users (quick: 100k). The worker is ``brainstream worker`` in a
subprocess with default settings (batch 5000, 0.5 s); its rate is measured from its first
committed batch to the last, so process start-up and group join are excluded (reported apart).
Freshness uses the ``updated_at`` (``clock_timestamp()``) of each partition's fence, polled
every 10 ms, against the producer's clock on the same host. Two side figures: the worker's
processing without Kafka (its ``BatchProcessor`` with default lanes and batch size over the first
100k records: a ceiling for the worker), and a Faust agent that does nothing (why the worker
reads the topic with its own librdkafka consumer).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from _harness import ROOT, drop_schema, fresh_schema, services, write_result
from confluent_kafka import Consumer, Producer

import schemas
from brainstream.topics import delete_topics, ensure_topics
from schemas.config import KafkaSettings, TopicSettings
from tests.streams.helpers import WorkerEnv, end_offsets, make_events, stop

TARGET = 0.5
FRESHNESS_TARGET_P99_S = 2.0
PARTITIONS = 6
USERS = 10_000
APPLY_SAMPLE = 100_000

FAUST_NOOP = """
import sys, time, faust
topic_name, n, port, bootstrap, out_path = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
app = faust.App("bench-noop-" + str(time.time()), broker="kafka://" + bootstrap,
                store="memory://", datadir=out_path + ".d", topic_disable_leader=True,
                topic_allow_declare=False, web_port=int(port),
                consumer_auto_offset_reset="earliest")
topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")
state = {"seen": 0, "t0": 0.0}

@app.agent(topic, concurrency=1)
async def noop(stream):
    async for events in stream.take_events(5000, within=0.5):
        state["t0"] = state["t0"] or time.perf_counter()
        state["seen"] += len(events)
        if state["seen"] >= n:
            with open(out_path, "w") as out:
                out.write(str(state["seen"] / (time.perf_counter() - state["t0"])))
            sys.stdout.flush()
            import os
            os._exit(0)

sys.argv = [sys.argv[0], "worker", "-l", "warn", "--web-port", port]
app.main()
"""


def topic_settings(name: str) -> TopicSettings:
    return TopicSettings(
        events=name, dlq=f"{name}.dlq", erasures=f"{name}.erasures", events_partitions=PARTITIONS
    )


def produce(kafka: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({**kafka.librdkafka(), "linger.ms": 50, "batch.num.messages": 10_000})
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0


def prefill(kafka: KafkaSettings, topics: TopicSettings, n: int) -> None:
    """Fill the topic with ``n`` events unless a previous run already did."""
    ensure_topics(kafka, topics)
    if sum(end_offsets(kafka, topics.events, PARTITIONS).values()) == n:
        return
    for start in range(0, n, 100_000):
        chunk = make_events(min(100_000, n - start), USERS, seed=start, late_fraction=0.01)
        produce(kafka, topics.events, [schemas.to_record(e)[:2] for e in chunk])


def decode_floor(
    kafka: KafkaSettings, topic: str, n: int, keep: list[tuple[int, int, bytes]]
) -> float:
    """Events/s of a plain consumer that decodes and validates every record, nothing else.
    The first ``APPLY_SAMPLE`` records are kept in ``keep`` for :func:`apply_ceiling`."""
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
                if len(keep) < APPLY_SAMPLE:
                    keep.append((msg.partition(), msg.offset(), msg.value()))
                with contextlib.suppress(schemas.InvalidEvent):
                    schemas.decode(msg.value())
                seen += 1
        return seen / (time.perf_counter() - started)
    finally:
        consumer.close()


def faust_noop(kafka: KafkaSettings, topic: str, n: int) -> float:
    """Events/s of a Faust agent that does nothing but batch (``take_events``) and ack: not a
    limit of the worker, which no longer reads the topic through an agent, but the reason it
    does not (this path alone is slower than the whole worker)."""
    import subprocess
    import tempfile

    from tests.streams.helpers import free_port

    with tempfile.NamedTemporaryFile("r", suffix=".rate") as out:
        cmd = [sys.executable, "-c", FAUST_NOOP, topic, str(n), str(free_port())]
        cmd += [kafka.bootstrap_servers, out.name]
        try:
            subprocess.run(cmd, cwd=ROOT, timeout=1800, check=True, capture_output=True)
            return float(out.read())
        finally:
            shutil.rmtree(out.name + ".d", ignore_errors=True)


def apply_ceiling(dsn: str, topic: str, sample: list[tuple[int, int, bytes]]) -> float:
    """Events/s of the worker's processing without Kafka: its own ``BatchProcessor`` (decode,
    fold, fenced upserts on the default number of lanes) over batches of the default size. The
    worker cannot be faster than this."""
    import asyncio

    from streams.config import WorkerConfig
    from streams.metrics import WorkerMetrics
    from streams.processor import BatchProcessor, RawRecord
    from streams.records import FutureSkew

    config = WorkerConfig()
    schema, conninfo = fresh_schema(dsn)
    processor = BatchProcessor(
        conninfo,
        config.projection,
        topic,
        skew=FutureSkew(),
        metrics=WorkerMetrics(),
        lanes=config.apply_lanes,
    )

    async def run() -> float:
        started = time.perf_counter()
        for i in range(0, len(sample), config.batch_size):
            chunk = sample[i : i + config.batch_size]
            await processor.apply(
                processor.prepare([RawRecord(p, o, v, None) for p, o, v in chunk])
            )
        return len(sample) / (time.perf_counter() - started)

    try:
        return asyncio.run(run())
    finally:
        processor.close()
        drop_schema(dsn, schema)


def fence_sum(conn: psycopg.Connection[Any], topic: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(next_offset), 0) FROM stream_offsets WHERE topic = %s", (topic,)
    ).fetchone()
    return int(row[0]) if row else 0


def worker_rate(kafka: KafkaSettings, dsn: str, topics: TopicSettings, n: int) -> dict[str, float]:
    schema, conninfo = fresh_schema(dsn)
    env = WorkerEnv(kafka, dsn, schema, topics, f"bench-agg-{uuid.uuid4().hex[:8]}")
    launched = time.perf_counter()
    proc = env.start(Path(os.devnull), BRAINSTREAM_WORKER_LOG_LEVEL="warning")
    first_at, first_sum = 0.0, 0
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while True:
                total = fence_sum(conn, topics.events)
                now = time.perf_counter()
                if total and not first_at:
                    first_at, first_sum = now, total
                if total >= n:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}")
                time.sleep(0.05)
    finally:
        stop(proc)
        drop_schema(dsn, schema)
    return {
        "worker_events_per_s": (n - first_sum) / (now - first_at),
        "worker_startup_s": first_at - launched,
        "worker_wall_s": now - launched,
    }


def freshness(kafka: KafkaSettings, dsn: str, rate: int, seconds: int) -> dict[str, float]:
    """Produce at ``rate`` events/s into an idle worker; produced -> fence commit latency."""
    topics = topic_settings(f"bench.agg.fresh.{uuid.uuid4().hex[:8]}")
    ensure_topics(kafka, topics)
    schema, conninfo = fresh_schema(dsn)
    env = WorkerEnv(kafka, dsn, schema, topics, f"bench-fresh-{uuid.uuid4().hex[:8]}")
    records = [schemas.to_record(e)[:2] for e in make_events(rate * seconds, USERS, seed=99)]
    proc = env.start(Path(os.devnull), BRAINSTREAM_WORKER_LOG_LEVEL="warning")
    observations: dict[int, list[tuple[int, float]]] = {}
    done = threading.Event()
    try:
        produce(kafka, topics.events, records[: PARTITIONS * 20])  # warm-up: worker assigned
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while fence_sum(conn, topics.events) < PARTITIONS * 20:
                time.sleep(0.1)
        poller = threading.Thread(
            target=_poll_fences, args=(conninfo, topics.events, observations, done)
        )
        poller.start()
        sent = _produce_at(kafka, topics.events, records[PARTITIONS * 20 :], rate)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _all_seen(sent, observations):
            time.sleep(0.1)
        done.set()
        poller.join()
    finally:
        stop(proc)
        drop_schema(dsn, schema)
        delete_topics(kafka, [topics.events, topics.dlq, topics.erasures])
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k events, 10 s freshness run")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    kafka, dsn = services()
    topics = topic_settings(f"bench.agg.{n}")
    prefill(kafka, topics, n)
    sample: list[tuple[int, int, bytes]] = []
    floor = decode_floor(kafka, topics.events, n, sample)
    figures: dict[str, Any] = {"events": n, "users": USERS, "partitions": PARTITIONS}
    figures["floor_decode_only_events_per_s"] = floor
    figures |= worker_rate(kafka, dsn, topics, n)
    figures["faust_noop_agent_events_per_s"] = faust_noop(kafka, topics.events, n)
    figures["ceiling_worker_processing_no_kafka_events_per_s"] = apply_ceiling(
        dsn, topics.events, sample
    )
    seconds = 10 if args.quick else 30
    figures |= freshness(kafka, dsn, 5_000, seconds)
    figures |= {f"{k}_at_1k": v for k, v in freshness(kafka, dsn, 1_000, seconds).items()}
    ratio = figures["worker_events_per_s"] / floor
    meets = ratio >= TARGET and figures["freshness_p99_s"] <= FRESHNESS_TARGET_P99_S
    result = {
        "name": "aggregate_throughput",
        "ratio": round(ratio, 4),
        "target": TARGET,
        "meets": meets,
        "figures": {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()},
        "quick": args.quick,
    }
    write_result(result)
    print(
        f"aggregate_throughput: worker {figures['worker_events_per_s']:.0f} ev/s vs decode-only "
        f"floor {floor:.0f} ev/s = {ratio:.3f}x (target {TARGET}x); freshness at "
        f"{figures['freshness_rate_achieved']:.0f} ev/s p50 {figures['freshness_p50_s']:.2f}s "
        f"p99 {figures['freshness_p99_s']:.2f}s (target <= {FRESHNESS_TARGET_P99_S}s), at 1k ev/s "
        f"p99 {figures['freshness_p99_s_at_1k']:.2f}s; the worker's processing without Kafka "
        f"{figures['ceiling_worker_processing_no_kafka_events_per_s']:.0f} ev/s, a no-op Faust "
        f"agent {figures['faust_noop_agent_events_per_s']:.0f} ev/s; "
        f"meets={meets}"
    )


if __name__ == "__main__":
    main()
