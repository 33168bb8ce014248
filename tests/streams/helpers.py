"""Test helpers: synthetic events, the raw table filled by COPY, worker subprocesses."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from schemas import Event, codec, new_event_id
from schemas.accepted import AcceptedBatch, encode_batch
from schemas.config import KafkaSettings, TopicSettings
from tests.fixtures.samples import sample_events
from tests.fixtures.services import fill

REPO = Path(__file__).resolve().parents[2]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def make_events(
    n: int,
    users: int,
    *,
    seed: int = 7,
    end: datetime | None = None,
    spread: timedelta = timedelta(hours=3),
    late_fraction: float = 0.02,
    late_by: timedelta = timedelta(hours=6),
) -> list[Event]:
    """``n`` events of every registered type over ``users`` users, ``spread`` before ``end``;
    ``late_fraction`` of them occurred ``late_by`` further back (late events)."""
    rnd = random.Random(seed)
    templates = sample_events()
    end = end or datetime.now(UTC)
    span = spread.total_seconds()
    out = []
    for _ in range(n):
        at = end - timedelta(seconds=rnd.random() * span)
        if rnd.random() < late_fraction:
            at -= late_by
        template = rnd.choice(templates)
        user = f"u{rnd.randrange(users)}"
        out.append(
            template.model_copy(
                update={"event_id": new_event_id(), "user_id": user, "occurred_at": at}
            )
        )
    return out


_COPY_RAW = (
    "COPY analytics_events (event_id, occurred_at, schema_version, event_type, user_id, source, "
    "properties, kafka_partition, kafka_offset) FROM STDIN"
)


@dataclass(frozen=True, slots=True)
class Placed:
    """An event at the source coordinates the sink stored it from."""

    partition: int
    offset: int
    event: Event


def place(
    events: Sequence[Event], partitions: int, nxt: dict[int, int] | None = None
) -> list[Placed]:
    """Source coordinates as the events topic gives them: keyed by user (a stable hash), offsets
    consecutive per partition from ``nxt`` (updated: the next offset of each partition)."""
    nxt = nxt if nxt is not None else {}
    out = []
    for e in events:
        p = zlib.crc32(e.user_id.encode()) % partitions
        offset = nxt.get(p, 0)
        nxt[p] = offset + 1
        out.append(Placed(p, offset, e))
    return out


def accepted_batches(
    placed: Sequence[Placed], topic: str, per_batch: int = 500
) -> list[AcceptedBatch]:
    """What the sink forwards for ``placed`` (each partition's events in ``per_batch`` runs);
    a run's range covers its offsets, so gaps (events the sink refused) fall inside it."""
    by_partition: dict[int, list[Placed]] = {}
    for p in sorted(placed, key=lambda x: (x.partition, x.offset)):
        by_partition.setdefault(p.partition, []).append(p)
    out = []
    for partition, items in sorted(by_partition.items()):
        for i in range(0, len(items), per_batch):
            run = items[i : i + per_batch]
            batch = AcceptedBatch(topic, partition, run[0].offset, run[-1].offset)
            for x in run:
                at = (x.event.occurred_at - _EPOCH) // timedelta(microseconds=1)
                batch.append(x.offset, x.event.type, x.event.user_id, at, x.event.schema_version)
            out.append(batch)
    return out


def produce_accepted(kafka: KafkaSettings, topic: str, batches: Sequence[AcceptedBatch]) -> None:
    """Produce each batch to its source partition's number, lz4-compressed, as the sink does."""
    conf = {"linger.ms": 5, "enable.idempotence": True, "compression.type": "lz4"}
    producer = Producer({**kafka.librdkafka(), **conf})
    for b in batches:
        producer.produce(topic, value=encode_batch(b), partition=b.partition)
        producer.poll(0)
    assert producer.flush(60) == 0


def copy_raw(conninfo: str, events: Sequence[Event] | Sequence[Placed]) -> None:
    """Insert ``events`` into ``analytics_events`` (the raw sink's job, done the simple way)."""
    with (
        psycopg.connect(conninfo) as conn,
        conn.cursor() as cur,
        cur.copy(_COPY_RAW) as copy,
    ):
        for item in events:
            e, where = (item.event, item) if isinstance(item, Placed) else (item, None)
            props = e.properties.model_dump_json(exclude_none=True)
            row = (e.event_id, e.occurred_at, e.schema_version, e.type, e.user_id)
            coords = (where.partition, where.offset) if where else (None, None)
            copy.write_row((*row, e.source, props, *coords))


def produce(kafka: KafkaSettings, topic: str, events: Sequence[Event] | Sequence[bytes]) -> None:
    producer = Producer({**kafka.librdkafka(), "linger.ms": 20, "enable.idempotence": True})
    records = (
        (b"junk", item, None) if isinstance(item, bytes) else codec.to_record(item)
        for item in events
    )
    fill(producer, topic, records, timeout=60)


def end_offsets(kafka: KafkaSettings, topic: str, partitions: int) -> dict[int, int]:
    """High watermarks; retried while a new topic's leaders are still being elected."""
    consumer = Consumer({**kafka.librdkafka(), "group.id": f"probe-{uuid.uuid4().hex}"})
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                return {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in range(partitions)
                }
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def fences(conninfo: str, topic: str, projection: str = "aggregates") -> dict[int, int]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT kafka_partition, next_offset FROM stream_offsets "
            "WHERE consumer_group = %s AND topic = %s",
            (projection, topic),
        ).fetchall()
    return {int(p): int(n) for p, n in rows}


def wait_caught_up(
    conninfo: str, topic: str, target: dict[int, int], timeout: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = fences(conninfo, topic)
        if all(got.get(p, 0) >= n for p, n in target.items() if n > 0):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"worker did not catch up: fences {got}, end offsets {target}")
        time.sleep(0.25)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WorkerEnv:
    kafka: KafkaSettings
    postgres_dsn: str
    schema: str
    topics: TopicSettings
    group_id: str
    log_dir: Path = Path("/tmp")
    source_next: dict[int, int] = field(default_factory=dict)
    """Next source offset per partition of the events the tests stored and forwarded."""
    reforwarded: int = 0
    """Events forwarded a second time (a sink crash between its commit and its produce)."""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "BRAINSTREAM_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "BRAINSTREAM_POSTGRES_DSN": self.postgres_dsn,
            "BRAINSTREAM_POSTGRES_SCHEMA": self.schema,
            "BRAINSTREAM_TOPIC_EVENTS": self.topics.events,
            "BRAINSTREAM_TOPIC_ACCEPTED": self.topics.accepted,
            "BRAINSTREAM_TOPIC_ERASURES": self.topics.erasures,
            "BRAINSTREAM_TOPIC_DLQ": self.topics.dlq,
            "BRAINSTREAM_WORKER_GROUP_ID": self.group_id,
            "BRAINSTREAM_WORKER_WEB_PORT": str(free_port()),
            "BRAINSTREAM_WORKER_SESSION_TIMEOUT_SECONDS": "6",
            "BRAINSTREAM_WORKER_HEARTBEAT_INTERVAL_SECONDS": "1",
            "BRAINSTREAM_WORKER_COMMIT_INTERVAL_SECONDS": "1",
            "BRAINSTREAM_WORKER_LOG_LEVEL": "warning",
            "BRAINSTREAM_WORKER_DATA_DIR": str(self.log_dir / "brainstream-faust"),
            **extra,
        }

    def start(self, log: Path, *options: str, **extra: str) -> subprocess.Popen[bytes]:
        """A worker logging to ``log``; ``options`` go before the command (``--log-format``)."""
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "brainstream.cli", *options, "worker"],
                env=self.env(**extra),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def committed(kafka: KafkaSettings, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The consumer group's committed offsets (-1001 when none)."""
    consumer = Consumer({**kafka.librdkafka(), "group.id": group})
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    finally:
        consumer.close()


def wait_progress(conninfo: str, topic: str, beyond: int, timeout: float = 90.0) -> int:
    """Wait until the fences together have moved beyond ``beyond``; returns their sum."""
    deadline = time.monotonic() + timeout
    while True:
        total = sum(fences(conninfo, topic).values())
        if total > beyond:
            return total
        if time.monotonic() > deadline:
            raise AssertionError(f"no progress beyond {beyond} (fences sum {total})")
        time.sleep(0.1)
