"""Events/s exported to Parquet from a pre-filled topic, against the floor measured in the same
run: a plain consumer reading the same range without decoding or writing anything. Peak memory
(max RSS of the measuring process) is measured at two range sizes to show it does not grow.

    python benchmarks/export_throughput.py [--quick]

Each measurement runs in a fresh subprocess (so its max RSS is its own); floor and export are
interleaved and the best of the repeats is kept for each. The export needs CPU where the floor
mostly waits on the broker, so other load on the machine lowers the ratio: the 1-minute load
average is recorded with the figures, and so is the CPU time (user + system, the process and
its workers, start-up included) per event, which load barely changes. The export is the full
code path of ``brainstream export run`` (decode + validate every record, erasure and filter
checks, Parquet columns, the typed file of each type, zstd row groups, SHA-256 of the files,
manifest, atomic publish) except the erased set, which is read from the erasures topic only (no
Postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _harness import services, write_result
from confluent_kafka import Consumer, Producer

import schemas
from brainstream.topic_admin import delete_topics, ensure_topics
from eventlog.reader import LogReader, plan, reader_conf
from schemas.config import KafkaSettings, TopicSettings
from sinks.export import ExportConfig, ExportRequest, LogRange, export

TARGET = 0.5
PARTITIONS = 3


def kafka_settings() -> KafkaSettings:
    return services()[0]


def topic_settings(events: int) -> TopicSettings:
    name = f"bench.export.{events}"
    return TopicSettings(
        events=name,
        dlq=f"{name}.dlq",
        erasures=f"{name}.erasures",
        events_partitions=PARTITIONS,
    )


def _records(count: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    from tests.fixtures.samples import SAMPLE_PROPERTIES, sample_event

    types = sorted(SAMPLE_PROPERTIES)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        schemas.to_record(
            sample_event(
                types[i % len(types)],
                user_id=f"user-{i % 5_000}",
                occurred_at=start + timedelta(milliseconds=37 * i),
            )
        )
        for i in range(count)
    ]


def prefill(kafka: KafkaSettings, topics: TopicSettings, events: int) -> None:
    """Fill the topic with ``events`` records unless a previous run already did."""
    if _stored(kafka, topics) == events:
        return
    delete_topics(kafka, [topics.events, topics.dlq, topics.accepted, topics.erasures])
    time.sleep(1)
    ensure_topics(kafka, topics)
    distinct = _records(20_000)
    producer = Producer(
        {
            **kafka.librdkafka(),
            "linger.ms": 100,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    for i in range(events):
        key, value, headers = distinct[i % len(distinct)]
        while True:
            try:
                producer.produce(topics.events, value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("pre-fill not acknowledged")
    if (stored := _stored(kafka, topics)) != events:
        raise RuntimeError(f"topic holds {stored} records, expected {events}")


def _stored(kafka: KafkaSettings, topics: TopicSettings) -> int:
    consumer = Consumer(reader_conf(kafka.librdkafka(), "bench-export"))
    try:
        reader = LogReader(consumer, topics.events, ExportConfig())
        return sum(high - low for low, high in reader.watermarks().values())
    except Exception:
        return -1
    finally:
        consumer.close()


def child(kind: str, events: int, per_partition: int, out: str) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    kafka, topics = KafkaSettings(), topic_settings(events)
    log_range = LogRange(end_offsets={p: per_partition for p in range(PARTITIONS)})
    # The log as it is (no sink runs here): the accepted filter only skips records undecoded.
    config = ExportConfig(output_dir=Path(out), parallel_min_records=0, source="log")
    start = time.perf_counter()
    if kind == "floor":
        consumer = Consumer(reader_conf(kafka.librdkafka(), "bench-export"))
        reader = LogReader(consumer, topics.events, config)
        count = 0
        for prange in plan(reader, log_range):
            for batch in reader.read(prange):
                for msg in batch:
                    msg.value()
                count += len(batch)
        consumer.close()
        size = 0
    else:
        request = ExportRequest(name=f"bench-{per_partition}", range=log_range, overwrite=True)
        manifest = export(request, config, kafka.librdkafka(), topics, None)
        count = manifest.records_read
        size = manifest.files[0].bytes
    seconds = time.perf_counter() - start
    own, workers = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    cpu = sum(u.ru_utime + u.ru_stime for u in (own, workers))
    return {
        "events": count,
        "seconds": seconds,
        "eps": count / seconds,
        "cpu_us_per_event": cpu / count * 1e6,
        "rss_mb": own.ru_maxrss / 1024,
        "worker_rss_mb": workers.ru_maxrss / 1024,
        "bytes": size,
    }


def measure(
    kind: str, events: int, per_partition: int, out: Path, kafka: KafkaSettings
) -> dict[str, Any]:
    env = {**os.environ, "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    args = [sys.executable, __file__, "--child", kind, "--events", str(events)]
    args += ["--per-partition", str(per_partition), "--out", str(out)]
    done = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", choices=["floor", "export"])
    parser.add_argument("--events", type=int)
    parser.add_argument("--per-partition", type=int)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.events, args.per_partition, args.out)))
        return

    events = 150_000 if args.quick else 1_200_000
    repeats = 1 if args.quick else 3
    kafka = kafka_settings()
    topics = topic_settings(events)
    prefill(kafka, topics, events)
    load_before = os.getloadavg()[0]
    per_partition = _min_partition(kafka, topics)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        floors, exports = [], []
        for _ in range(repeats):
            floors.append(measure("floor", events, per_partition, out, kafka))
            exports.append(measure("export", events, per_partition, out, kafka))
        small = measure("export", events, per_partition // 4, out, kafka)
    floor = max(floors, key=lambda m: m["eps"])
    best = max(exports, key=lambda m: m["eps"])
    ratio = best["eps"] / floor["eps"]
    growth = max(
        best["rss_mb"] / small["rss_mb"], best["worker_rss_mb"] / max(small["worker_rss_mb"], 1)
    )
    result = {
        "name": "export_throughput",
        "ratio": round(ratio, 3),
        "target": f">= {TARGET}x the plain-consumer floor; peak RSS not growing with the range",
        "meets": ratio >= TARGET and growth < 1.25,
        "quick": args.quick,
        "figures": {
            "topic_events": events,
            "range_events": best["events"],
            "floor_events_per_s": round(floor["eps"]),
            "export_events_per_s": round(best["eps"]),
            "floor_runs": floors,
            "export_runs": exports,
            "parquet_bytes": best["bytes"],
            "peak_rss_mb": {
                f"{small['events']}_events": round(small["rss_mb"], 1),
                f"{best['events']}_events": round(best["rss_mb"], 1),
                "floor": round(floor["rss_mb"], 1),
            },
            "peak_worker_rss_mb": {
                f"{small['events']}_events": round(small["worker_rss_mb"], 1),
                f"{best['events']}_events": round(best["worker_rss_mb"], 1),
            },
            "rss_growth_4x_range": round(growth, 3),
            "cpu_us_per_event": {
                "floor": round(floor["cpu_us_per_event"], 2),
                "export": round(best["cpu_us_per_event"], 2),
            },
            "cpus": os.cpu_count(),
            "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        },
    }
    write_result(result)
    print(
        f"export_throughput: {best['eps']:,.0f} ev/s to Parquet vs floor {floor['eps']:,.0f} ev/s "
        f"(ratio {ratio:.2f}, target >= {TARGET}); peak RSS (main + largest worker) "
        f"{small['rss_mb']:.0f}+{small['worker_rss_mb']:.0f} MB at {small['events']:,} events, "
        f"{best['rss_mb']:.0f}+{best['worker_rss_mb']:.0f} MB at {best['events']:,} "
        f"-> {'meets' if result['meets'] else 'MISSES'}"
    )


def _min_partition(kafka: KafkaSettings, topics: TopicSettings) -> int:
    """Read the same number of records from every partition (keyed traffic is uneven)."""
    consumer = Consumer(reader_conf(kafka.librdkafka(), "bench-export"))
    try:
        marks = LogReader(consumer, topics.events, ExportConfig()).watermarks()
    finally:
        consumer.close()
    return min(high for _low, high in marks.values())


if __name__ == "__main__":
    main()
